"""Keeping only what the passages support.

A generated sentence stays in the answer only if one statement of the passages
given to the model supports it: a sentence, list item or table row of a passage
(or two adjacent sentences of one paragraph), read with the passage's heading, must
contain most of the sentence's content terms and every number it states. Checking
statements rather than whole passages stops a right-looking sentence that takes its
number from the wrong row. The citation is the model's own ``[n]`` when that passage
supports the sentence, otherwise the passage that supports it best. Unsupported
sentences are dropped, so a small model's inventions never reach the caller.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from keel.text import content_terms, numbers, sentences

__all__ = ["GroundedSentence", "PassageFacts", "Statement", "ground_sentence", "split_citations"]

_CITATION = re.compile(r"\s*\[(\d{1,2})\](?:\s*\[(\d{1,2})\])*")
_MARKER = re.compile(r"\[(\d{1,2})\]")
_FILLER_TERMS = content_terms(
    "answer passage passages question according based provided information document context source sources cited yes no"
)
_LABEL = re.compile(r"^\(?[^()]*>[^()]*\)?\.?$|^\([^()]*\)\.?$")
"""A passage label such as "(Handbook > Leave)" copied from the prompt: never an answer."""
MIN_COVERAGE = 0.75
MIN_TERMS = 2


@dataclass(frozen=True, kw_only=True)
class Statement:
    """The terms and numbers of one statement of a passage (heading terms included)."""

    terms: frozenset[str]
    numbers: frozenset[str]


@dataclass(frozen=True, kw_only=True)
class PassageFacts:
    """The statements of one passage, computed once per request."""

    statements: tuple[Statement, ...]

    @classmethod
    def of(cls, text: str, heading: str = "") -> PassageFacts:
        """Facts of a passage ``text`` under ``heading``."""
        heading_terms = content_terms(heading)
        units: list[str] = []
        for line in text.split("\n"):
            parts = sentences(line)
            units.extend(parts)
            units.extend(f"{a} {b}" for a, b in itertools.pairwise(parts))
        return cls(
            statements=tuple(
                Statement(terms=frozenset(content_terms(u) | heading_terms), numbers=frozenset(numbers(u)))
                for u in units
            )
        )

    def support(self, sentence_terms: set[str], stated: set[str]) -> float:
        """The best coverage of ``sentence_terms`` by a statement that states every number in ``stated``."""
        best = 0.0
        for statement in self.statements:
            if stated <= statement.numbers:
                best = max(best, len(sentence_terms & statement.terms) / len(sentence_terms))
        return best


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


def ground_sentence(
    sentence: str, passages: list[PassageFacts], *, question_terms: frozenset[str] = frozenset()
) -> GroundedSentence | None:
    """The sentence with its supporting passage, or ``None`` when no passage supports it.

    A question, or a sentence that only restates the question's own terms, is never kept:
    it would be "supported" while telling the caller nothing.
    """
    text, cited = split_citations(sentence)
    sentence_terms = content_terms(text) - _FILLER_TERMS
    if len(sentence_terms) < MIN_TERMS or text.endswith("?") or sentence_terms <= question_terms:
        return None
    if _LABEL.match(text):
        return None
    stated = numbers(text)
    best: tuple[float, int] | None = None
    for index, facts in enumerate(passages):
        coverage = facts.support(sentence_terms, stated)
        if coverage < MIN_COVERAGE:
            continue
        key = coverage + (1.0 if (index + 1) in cited else 0.0)
        if best is None or key > best[0]:
            best = (key, index)
    if best is None:
        return None
    index = best[1]
    return GroundedSentence(text=text, passage=index, coverage=passages[index].support(sentence_terms, stated))
