"""How hard a question is, to choose the cheapest tier that can serve it.

A look-up (who, what, when, where, which, how many, how much...) that is short and
answered by a single document can be served extractively, without a model. Longer
questions, explanations (why, how does, explain, compare...) and evidence spread
over several documents need a model, and the largest of those prefer a larger tier.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from keel.contract import ComplexitySettings

__all__ = ["Complexity", "estimate_complexity"]

Level = Literal["lookup", "standard", "complex"]

_EXPLAIN = re.compile(
    r"^\s*(why|explain|describe|compare|summari[sz]e|what are the differences?|what is the difference|"
    r"how (do|does|did|should|would|could|can) (i|we|you|they|it)\b)",
    re.IGNORECASE,
)
_LOOKUP = re.compile(
    r"^\s*(who|what|when|where|which|whom|whose|how (many|much|long|often|old|far|soon)|"
    r"is|are|do|does|can|may|must|will|was|were)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True, kw_only=True)
class Complexity:
    """The estimate and what it rests on."""

    level: Level
    words: int
    question_type: Literal["lookup", "explanation", "other"]
    sources: int

    def describe(self) -> str:
        """One line for the trace."""
        return f"{self.level}: {self.question_type}, {self.words} words, {self.sources} source document(s)"


def estimate_complexity(question: str, source_documents: int, settings: ComplexitySettings) -> Complexity:
    """Classify ``question`` given how many documents its evidence comes from."""
    words = len(question.split())
    if _EXPLAIN.match(question):
        kind: Literal["lookup", "explanation", "other"] = "explanation"
    elif _LOOKUP.match(question):
        kind = "lookup"
    else:
        kind = "other"
    level: Level
    if words >= settings.large_min_words or source_documents >= settings.large_min_sources:
        level = "complex"
    elif kind == "lookup" and words <= settings.extractive_max_words and source_documents <= 1:
        level = "lookup"
    else:
        level = "standard"
    return Complexity(level=level, words=words, question_type=kind, sources=source_documents)
