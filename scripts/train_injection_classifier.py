"""Train the prompt-injection classifier and write its weights into the package.

Reads ``data/injection/train.jsonl``. Questions are training units as they are; passages
are split into sentences the way ``InjectionDetector.scan_passage`` splits them, and a
sentence is an attack when it overlaps one of the passage's labelled ``spans``. Every
unit is normalised with ``keel.policy.injection.normalize`` and hashed with
``keel.policy.injection.classifier.features``, exactly as at run time.

The model is L2-regularised logistic regression with balanced class weights, fitted by
full-batch Adam on the sparse feature matrix (numpy only). Training is deterministic and
takes a few seconds. The result goes to ``src/keel/policy/injection/model.json``.

    .venv/bin/python scripts/train_injection_classifier.py [--epochs 300] [--l2 1e-4] [--heldout]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from keel.policy.injection.classifier import DIMENSION, MODEL_PATH, InjectionClassifier, features
from keel.policy.injection.detector import sentence_spans
from keel.policy.injection.normalize import normalize

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "injection"


def load(path: Path) -> list[dict[str, Any]]:
    """The labelled records of a JSON-lines file."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def units(records: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(normalised text, label) training units: whole questions, passage sentences."""
    out: list[tuple[str, int]] = []
    for record in records:
        if record["kind"] == "question":
            out.append((normalize(record["text"]).text, int(record["label"])))
            continue
        spans = [tuple(s) for s in record.get("spans", [])]
        for start, end in sentence_spans(record["text"]):
            attack = any(start < e and end > s for s, e in spans)
            out.append((normalize(record["text"][start:end]).text, int(attack)))
    return out


def matrix(texts: list[str]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Sparse rows in coordinate form: row ids, column ids, values."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, text in enumerate(texts):
        for bucket, value in sorted(features(text).items()):
            rows.append(i)
            cols.append(bucket)
            vals.append(value)
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64), np.asarray(vals, dtype=np.float64)


def fit(
    texts: list[str], labels: list[int], *, epochs: int, l2: float, rate: float
) -> tuple[npt.NDArray[np.float64], float]:
    """Weights and bias of balanced, L2-regularised logistic regression fitted with Adam."""
    rows, cols, vals = matrix(texts)
    n = len(texts)
    y = np.asarray(labels, dtype=np.float64)
    positives = max(float(y.sum()), 1.0)
    sample_weight = np.where(y == 1, n / (2 * positives), n / (2 * max(n - positives, 1.0))) / n
    w = np.zeros(DIMENSION)
    b = 0.0
    m_w = np.zeros(DIMENSION)
    v_w = np.zeros(DIMENSION)
    m_b = v_b = 0.0
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    for step in range(1, epochs + 1):
        z = np.bincount(rows, weights=vals * w[cols], minlength=n) + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        err = (p - y) * sample_weight
        g_w = np.bincount(cols, weights=vals * err[rows], minlength=DIMENSION) + l2 * w
        g_b = float(err.sum())
        m_w = beta1 * m_w + (1 - beta1) * g_w
        v_w = beta2 * v_w + (1 - beta2) * g_w * g_w
        m_b = beta1 * m_b + (1 - beta1) * g_b
        v_b = beta2 * v_b + (1 - beta2) * g_b * g_b
        correction1 = 1 - beta1**step
        correction2 = 1 - beta2**step
        w -= rate * (m_w / correction1) / (np.sqrt(v_w / correction2) + eps)
        b -= rate * (m_b / correction1) / (np.sqrt(v_b / correction2) + eps)
    return w, b


def report(name: str, model: InjectionClassifier, data: list[tuple[str, int]]) -> None:
    tp = fp = fn = tn = 0
    for text, label in data:
        hit = model.predict(text) >= 0.5
        tp += hit and label == 1
        fp += hit and label == 0
        fn += (not hit) and label == 1
        tn += (not hit) and label == 0
    precision = tp / max(tp + fp, 1)
    recall = tp / max(tp + fn, 1)
    print(f"  {name:<8} units={len(data):>4}  precision={precision:.3f}  recall={recall:.3f}  (fp={fp}, fn={fn})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=Path, default=DATA / "train.jsonl")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--rate", type=float, default=0.05)
    parser.add_argument("--prune", type=float, default=1e-3, help="drop weights smaller than this in magnitude")
    parser.add_argument("--heldout", action="store_true", help="also print classifier-only scores on heldout.jsonl")
    args = parser.parse_args()

    started = time.perf_counter()
    records = load(args.train)
    train = units(records)
    texts = [t for t, _ in train]
    labels = [label for _, label in train]
    w, b = fit(texts, labels, epochs=args.epochs, l2=args.l2, rate=args.rate)
    keep = np.flatnonzero(np.abs(w) >= args.prune)
    model = InjectionClassifier(
        weights={int(i): float(w[i]) for i in keep},
        bias=float(b),
        metadata={
            "trained_on": str(args.train.relative_to(REPO)) if args.train.is_relative_to(REPO) else args.train.name,
            "train_sha256": hashlib.sha256(args.train.read_bytes()).hexdigest(),
            "units": len(train),
            "attack_units": sum(labels),
            "epochs": args.epochs,
            "l2": args.l2,
            "learning_rate": args.rate,
            "prune": args.prune,
        },
    )
    model.save(args.out)
    saved = InjectionClassifier.load(args.out)
    print(
        f"trained on {len(train)} units ({sum(labels)} attacks) from {len(records)} records "
        f"in {time.perf_counter() - started:.1f}s; {len(saved.weights)} weights, "
        f"{args.out.stat().st_size / 1024:.0f} KiB -> {args.out}"
    )
    report("train", saved, train)
    if args.heldout:
        report("heldout", saved, units(load(DATA / "heldout.jsonl")))


if __name__ == "__main__":
    main()
