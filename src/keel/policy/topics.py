"""Blocked topics: subjects the contract refuses, matched on whole words and phrases."""

from __future__ import annotations

import re
import unicodedata

from keel.contract import BlockedTopic

__all__ = ["TopicMatcher"]


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


class TopicMatcher:
    """Finds the first blocked topic a text names (case-insensitive, whole words)."""

    def __init__(self, topics: list[BlockedTopic]) -> None:
        self._compiled = [
            (topic, re.compile(r"(?<!\w)(?:" + "|".join(re.escape(_fold(t)) for t in topic.terms) + r")(?!\w)"))
            for topic in topics
        ]

    def match(self, text: str) -> BlockedTopic | None:
        """The first topic named in ``text``, or ``None``."""
        folded = _fold(text)
        for topic, pattern in self._compiled:
            if pattern.search(folded):
                return topic
        return None
