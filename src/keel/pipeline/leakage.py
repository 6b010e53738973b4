"""System-prompt leakage: an answer that repeats the prompt templates' instructions.

The instructions of every prompt template are cut into overlapping runs of
``SHINGLE`` words; an answer sharing at least ``MIN_SHARED`` runs with them (so
repeating about ``SHINGLE + MIN_SHARED - 1`` words in a row) counts as a leak.
Deterministic and cheap: a set intersection per answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["MIN_SHARED", "SHINGLE", "LeakDetector"]

SHINGLE = 5
MIN_SHARED = 2
_WORD = re.compile(r"[a-z0-9]+")


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.casefold())
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


class LeakDetector:
    """Finds answers that quote the system instructions."""

    def __init__(self, instructions: Iterable[str]) -> None:
        self._shingles: set[tuple[str, ...]] = set()
        for text in instructions:
            self._shingles |= _shingles(text)

    def overlap(self, text: str) -> int:
        """How many instruction word-runs ``text`` repeats, when that is a leak; else 0."""
        shared = len(_shingles(text) & self._shingles)
        return shared if shared >= MIN_SHARED else 0
