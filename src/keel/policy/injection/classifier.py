"""A small logistic-regression classifier over hashed word and character n-grams.

Features (computed on normalised, lower-cased text): word unigrams and bigrams and
character 3-, 4- and 5-grams, each hashed with CRC-32 into ``DIMENSION`` buckets, present
or absent, and the vector scaled to unit length. The weights are trained by
``scripts/train_injection_classifier.py`` and shipped as ``model.json`` beside this module,
holding only the non-zero weights. Prediction is plain Python: no numpy at run time.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["DIMENSION", "MAX_CHARS", "MODEL_PATH", "InjectionClassifier", "default_classifier", "features"]

DIMENSION = 2**18
MAX_CHARS = 4000
MODEL_PATH = Path(__file__).with_name("model.json")
FORMAT = "keel-injection-logreg/1"

_WORD = re.compile(r"[a-z0-9']+|[^\sa-z0-9']+")
_SPACE = re.compile(r"\s+")


def features(text: str) -> dict[int, float]:
    """Hashed feature vector of ``text`` (already normalised): bucket -> value, unit length.

    Texts longer than ``MAX_CHARS`` are cut to their first ``MAX_CHARS`` characters.
    """
    lower = _SPACE.sub(" ", text[:MAX_CHARS].lower()).strip()
    buckets: set[int] = set()
    mask = DIMENSION - 1
    words = _WORD.findall(lower)
    for i, word in enumerate(words):
        buckets.add(zlib.crc32(f"w {word}".encode()) & mask)
        if i:
            buckets.add(zlib.crc32(f"b {words[i - 1]} {word}".encode()) & mask)
    padded = f" {lower} "
    for n in (3, 4, 5):
        for i in range(len(padded) - n + 1):
            buckets.add(zlib.crc32(f"c{padded[i : i + n]}".encode()) & mask)
    if not buckets:
        return {}
    value = 1.0 / math.sqrt(len(buckets))
    return dict.fromkeys(buckets, value)


@dataclass(frozen=True, kw_only=True)
class InjectionClassifier:
    """Trained weights: probability that a text is an injection or jailbreak attempt."""

    weights: Mapping[int, float]
    bias: float
    metadata: Mapping[str, Any]

    def predict(self, text: str) -> float:
        """Probability (0..1) that ``text`` (already normalised) is an attack."""
        weights = self.weights
        z = self.bias + sum(weights.get(bucket, 0.0) * value for bucket, value in features(text).items())
        if z < -30:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> InjectionClassifier:
        """Read weights written by ``save``."""
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or data.get("dimension") != DIMENSION:
            raise ValueError(f"{path} is not a {FORMAT} model with dimension {DIMENSION}")
        buckets: list[int] = []
        last = 0
        for delta in data["buckets"]:
            last += delta
            buckets.append(last)
        scale = float(data["scale"])
        weights = {b: q * scale for b, q in zip(buckets, data["weights"], strict=True)}
        return cls(weights=weights, bias=float(data["bias"]), metadata=data.get("metadata", {}))

    def save(self, path: Path = MODEL_PATH) -> None:
        """Write the non-zero weights, quantised to 16 bits, buckets delta-encoded."""
        nonzero = sorted((b, w) for b, w in self.weights.items() if w != 0.0)
        largest = max((abs(w) for _, w in nonzero), default=1.0) or 1.0
        scale = largest / 32767
        items = [(b, q) for b, q in ((b, round(w / scale)) for b, w in nonzero) if q != 0]
        deltas: list[int] = []
        last = 0
        for bucket, _ in items:
            deltas.append(bucket - last)
            last = bucket
        payload = {
            "format": FORMAT,
            "dimension": DIMENSION,
            "bias": round(self.bias, 6),
            "scale": scale,
            "buckets": deltas,
            "weights": [q for _, q in items],
            "metadata": dict(self.metadata),
        }
        path.write_text(json.dumps(payload, separators=(",", ":")) + "\n", encoding="utf-8")


@cache
def default_classifier() -> InjectionClassifier:
    """The classifier shipped with Keel, loaded once per process."""
    return InjectionClassifier.load(MODEL_PATH)
