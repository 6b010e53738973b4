"""Keeping only what the passages support.

A generated sentence stays in the answer only if one of the passages given to the
model supports it: most of its content terms occur in that passage and every number
it states appears there too. Its citation is the model's own ``[n]`` when that
passage supports it, otherwise the passage that supports it best. Unsupported
sentences are dropped, so a small model's inventions never reach the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel.text import content_terms, numbers

__all__ = ["GroundedSentence", "PassageFacts", "ground_sentence", "split_citations"]

_CITATION = re.compile(r"\s*\[(\d{1,2})\](?:\s*\[(\d{1,2})\])*")
_MARKER = re.compile(r"\[(\d{1,2})\]")
_FILLER_TERMS = content_terms(
    "answer passage passages question according based provided information document context source sources cited"
)
MIN_COVERAGE = 0.6
MIN_TERMS = 2


@dataclass(frozen=True, kw_only=True)
class PassageFacts:
    """The terms and numbers of one passage, computed once per request."""

    terms: frozenset[str]
    numbers: frozenset[str]

    @classmethod
    def of(cls, text: str) -> PassageFacts:
        """Facts of ``text``."""
        return cls(terms=frozenset(content_terms(text)), numbers=frozenset(numbers(text)))


@dataclass(frozen=True, kw_only=True)
class GroundedSentence:
    """A sentence kept in the answer and the passage (0-based) that supports it."""

    text: str
    passage: int
    coverage: float


def split_citations(sentence: str) -> tuple[str, list[int]]:
    """A sentence without its ``[n]`` markers, and the 1-based numbers it cited."""
    cited = [int(n) for n in _MARKER.findall(sentence)]
    text = _MARKER.sub("", sentence)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip(), cited


def ground_sentence(sentence: str, passages: list[PassageFacts]) -> GroundedSentence | None:
    """The sentence with its supporting passage, or ``None`` when no passage supports it."""
    text, cited = split_citations(sentence)
    sentence_terms = content_terms(text) - _FILLER_TERMS
    if len(sentence_terms) < MIN_TERMS:
        return None
    stated = numbers(text)
    best: tuple[float, int] | None = None
    for index, facts in enumerate(passages):
        if not stated <= facts.numbers:
            continue
        coverage = len(sentence_terms & facts.terms) / len(sentence_terms)
        if coverage < MIN_COVERAGE:
            continue
        preferred = 1.0 if (index + 1) in cited else 0.0
        key = (preferred + coverage, -index)
        if best is None or key > (best[0], -best[1]):
            best = (preferred + coverage, index)
    if best is None:
        return None
    index = best[1]
    coverage = len(sentence_terms & passages[index].terms) / len(sentence_terms)
    return GroundedSentence(text=text, passage=index, coverage=coverage)
