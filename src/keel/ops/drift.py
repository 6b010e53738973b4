"""Drift: does recent traffic still look like the reference window?

Five dimensions are compared, each as a distribution over a fixed set of bins:
question topics (the reference questions' embeddings clustered by k-means, current
questions assigned to the nearest centroid), the best dense retrieval score, answer
length, the mode mix, and the refusal rate. Each is compared with the KL divergence
``KL(current || reference)`` after add-one smoothing, so an empty bin never yields
infinity; a dimension drifts when its divergence exceeds the contract's threshold.
Questions come from the trace store, already PII-redacted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from keel.contract import DriftSettings
from keel.store import Database

__all__ = ["DriftReport", "compute_drift", "kl_divergence"]

MODES = ("answer", "no_answer", "sources_only", "clarify", "handoff", "refused", "error")
LENGTH_EDGES = (0, 1, 80, 160, 320, 640, 1280)
SCORE_EDGES = (-1.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


class QuestionEmbedder(Protocol):
    """Embeds questions (see :class:`keel.retrieval.embedder.MiniLMEmbedder`)."""

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One L2-normalised row per text."""
        ...


@dataclass(frozen=True, kw_only=True)
class _Request:
    question: str
    mode: str
    answer_chars: int
    top_score: float | None


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    """Per-dimension divergence between the windows, and which drifted."""

    reference_requests: int
    current_requests: int
    threshold: float
    divergence: dict[str, float]
    enough_data: bool

    @property
    def drifted(self) -> list[str]:
        """Dimensions whose divergence exceeds the threshold."""
        if not self.enough_data:
            return []
        return [name for name, value in self.divergence.items() if value > self.threshold]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "reference_requests": self.reference_requests,
            "current_requests": self.current_requests,
            "threshold": self.threshold,
            "enough_data": self.enough_data,
            "divergence": {k: round(v, 5) for k, v in self.divergence.items()},
            "drifted": self.drifted,
        }


def kl_divergence(current: Sequence[float], reference: Sequence[float]) -> float:
    """KL(current || reference) of two histograms over the same bins, add-one smoothed."""
    p = np.asarray(current, dtype=np.float64) + 1.0
    q = np.asarray(reference, dtype=np.float64) + 1.0
    p /= p.sum()
    q /= q.sum()
    return float(np.sum(p * np.log(p / q)))


def _requests(db: Database, start: float, end: float) -> list[_Request]:
    rows = db.connection().execute(
        "SELECT mode, data_json FROM traces WHERE created_at >= ? AND created_at < ? AND endpoint = 'ask'"
        " ORDER BY created_at",
        (start, end),
    )
    out = []
    for row in rows:
        data = json.loads(row["data_json"])
        top: float | None = None
        for span in data.get("spans", []):
            if span.get("name") == "retrieve":
                hits = span.get("attributes", {}).get("hits") or []
                scores = [h.get("dense_score") for h in hits if h.get("dense_score") is not None]
                top = max(scores) if scores else None
        out.append(
            _Request(
                question=str(data.get("request", {}).get("question") or ""),
                mode=row["mode"],
                answer_chars=len(str(data.get("response", {}).get("answer") or "")),
                top_score=top,
            )
        )
    return out


def _histogram(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    counts = np.histogram(np.asarray(values, dtype=np.float64), bins=[*edges, np.inf])[0]
    return [float(c) for c in counts]


def _categorical(values: Sequence[str], categories: Sequence[str]) -> list[float]:
    return [float(sum(1 for v in values if v == c)) for c in categories]


def _kmeans(vectors: NDArray[np.float32], k: int, *, iterations: int = 25) -> NDArray[np.float32]:
    """Centroids of ``vectors`` (k-means++ seeding with a fixed seed, cosine on unit vectors)."""
    rng = np.random.default_rng(0)
    k = min(k, len(vectors))
    centroids = [vectors[int(rng.integers(len(vectors)))]]
    for _ in range(1, k):
        distance = 1.0 - np.max(vectors @ np.stack(centroids).T, axis=1)
        weights = np.clip(distance, 0.0, None) ** 2
        total = weights.sum()
        pick = int(rng.choice(len(vectors), p=weights / total)) if total > 0 else int(rng.integers(len(vectors)))
        centroids.append(vectors[pick])
    c = np.stack(centroids)
    for _ in range(iterations):
        assign = np.argmax(vectors @ c.T, axis=1)
        for j in range(len(c)):
            members = vectors[assign == j]
            if len(members):
                mean = members.mean(axis=0)
                c[j] = mean / (np.linalg.norm(mean) or 1.0)
    return c


def _topics(
    reference: list[str], current: list[str], embedder: QuestionEmbedder, k: int
) -> tuple[list[float], list[float]]:
    ref_vectors = embedder.embed(reference)
    cur_vectors = embedder.embed(current)
    centroids = _kmeans(ref_vectors, k)
    ref_counts = np.bincount(np.argmax(ref_vectors @ centroids.T, axis=1), minlength=len(centroids))
    cur_counts = np.bincount(np.argmax(cur_vectors @ centroids.T, axis=1), minlength=len(centroids))
    return [float(c) for c in cur_counts], [float(c) for c in ref_counts]


def compute_drift(
    db: Database, settings: DriftSettings, *, embedder: QuestionEmbedder | None = None, now: float | None = None
) -> DriftReport:
    """Compare the current window with the reference window just before it."""
    now = time.time() if now is None else now
    split = now - settings.current_days * 86400
    reference = _requests(db, split - settings.reference_days * 86400, split)
    current = _requests(db, split, now)
    enough = min(len(reference), len(current)) >= settings.min_requests
    divergence: dict[str, float] = {}
    if reference and current:
        divergence["mode_mix"] = kl_divergence(
            _categorical([r.mode for r in current], MODES), _categorical([r.mode for r in reference], MODES)
        )
        divergence["refusal_rate"] = kl_divergence(
            _categorical(["refused" if r.mode == "refused" else "other" for r in current], ("refused", "other")),
            _categorical(["refused" if r.mode == "refused" else "other" for r in reference], ("refused", "other")),
        )
        divergence["answer_length"] = kl_divergence(
            _histogram([r.answer_chars for r in current], LENGTH_EDGES),
            _histogram([r.answer_chars for r in reference], LENGTH_EDGES),
        )
        cur_scores = [r.top_score for r in current if r.top_score is not None]
        ref_scores = [r.top_score for r in reference if r.top_score is not None]
        if cur_scores and ref_scores:
            divergence["top_score"] = kl_divergence(
                _histogram(cur_scores, SCORE_EDGES), _histogram(ref_scores, SCORE_EDGES)
            )
        questions_ref = [r.question for r in reference if r.question]
        questions_cur = [r.question for r in current if r.question]
        if embedder is not None and questions_ref and questions_cur:
            cur_topics, ref_topics = _topics(questions_ref, questions_cur, embedder, settings.topics)
            divergence["topics"] = kl_divergence(cur_topics, ref_topics)
    return DriftReport(
        reference_requests=len(reference),
        current_requests=len(current),
        threshold=settings.threshold,
        divergence=divergence,
        enough_data=enough,
    )
