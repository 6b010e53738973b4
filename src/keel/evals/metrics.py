"""Metric functions, each small and pure: retrieval ranking metrics and answer checks."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

__all__ = ["ndcg_at", "normalise_answer", "precision_at", "recall_at", "reciprocal_rank", "token_f1"]


def recall_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of ``relevant`` found in the first ``k`` of ``ranked``."""
    if not relevant:
        raise ValueError("recall needs at least one relevant item")
    return len(relevant & set(ranked[:k])) / len(relevant)


def precision_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    """Share of the first ``k`` of ``ranked`` that are relevant (0 when nothing was retrieved)."""
    top = ranked[:k]
    return sum(1 for item in top if item in relevant) / len(top) if top else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    """1/rank of the first relevant item, 0 when there is none."""
    for rank, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], grades: dict[str, int], k: int) -> float:
    """Normalised discounted cumulative gain with graded relevance (gain ``2^grade - 1``)."""
    dcg = sum((2 ** grades.get(item, 0) - 1) / math.log2(rank + 1) for rank, item in enumerate(ranked[:k], start=1))
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum((2**grade - 1) / math.log2(rank + 1) for rank, grade in enumerate(ideal, start=1))
    return dcg / idcg if idcg else 0.0


def normalise_answer(text: str) -> str:
    """Lower case, no citation markers, punctuation or extra spaces: for exact and token comparisons."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"\[\d+\]", " ", text)
    text = re.sub(r"[^\w\s.,%-]", " ", text)
    text = re.sub(r"(?<!\d)[.,](?!\d)", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def token_f1(answer: str, reference: str) -> float:
    """Token-level F1 between an answer and a reference (SQuAD style)."""
    a, r = normalise_answer(answer).split(), normalise_answer(reference).split()
    if not a or not r:
        return float(a == r)
    common = Counter(a) & Counter(r)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(a), overlap / len(r)
    return 2 * precision * recall / (precision + recall)
