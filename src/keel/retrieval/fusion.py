"""Reciprocal-rank fusion of ranked lists."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["reciprocal_rank_fusion"]


def reciprocal_rank_fusion(rankings: Sequence[Sequence[tuple[int, float]]], *, k: int = 60) -> list[tuple[int, float]]:
    """Fuse ranked ``[(item, score)]`` lists: each item scores ``sum(1 / (k + rank))``.

    Ties break on the item id so the order is deterministic.
    """
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (item, _score) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))
