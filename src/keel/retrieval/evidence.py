"""Whether the retrieved passages are evidence enough to answer.

Keel, not the model, decides when there is nothing to answer from. A passage counts
as evidence when

* its dense similarity to the question is at least ``min_dense_score``, or
* its similarity is at least ``min_support_dense_score`` and it contains at least
  ``min_term_coverage`` of the question's content terms, weighted by how rare each
  term is among the passages the caller may read (IDF), so that matching the rare
  words of a question counts more than matching "policy" or "employee";

and, when the question names something no readable passage mentions at all (a
content word with no readable occurrence), only a passage at least
``min_dense_with_unknown_terms`` similar counts: otherwise a question about a salary
band could be "answered" from a passage that merely shares the job title.

All statistics are over the caller's readable passages, so the decision reveals
nothing about documents outside them. With no evidence the request is answered
``no_answer`` and no model is asked to make one up.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from keel.contract import RetrievalSettings
from keel.retrieval.search import Hit
from keel.text import QUESTION_WORDS, content_terms

__all__ = ["Evidence", "PassageEvidence", "QuestionTerms", "assess_evidence"]


@dataclass(frozen=True, kw_only=True)
class Evidence:
    """How well the retrieved passages support answering."""

    sufficient: bool
    best_dense: float | None
    best_coverage: float
    reason: str
    passages: list[Hit]
    """The passages given to generation (relevant ones, best first)."""


_LEXICAL_ONLY_COVERAGE = 0.75


@dataclass(frozen=True, kw_only=True)
class QuestionTerms:
    """The question's content terms with their weight among the caller's readable passages."""

    weights: dict[str, float]
    unknown: frozenset[str]
    """Content words of the question that no readable passage contains."""

    @classmethod
    def of(cls, question: str, doc_freq: Mapping[str, int], readable: int) -> QuestionTerms:
        """Weights ``log(1 + (N - df + 0.5) / (df + 0.5))`` over ``readable`` passages."""
        q_terms = content_terms(question)
        weights = {
            t: math.log(1.0 + (readable - doc_freq.get(t, 0) + 0.5) / (doc_freq.get(t, 0) + 0.5)) for t in q_terms
        }
        unknown = frozenset(
            t for t in q_terms if doc_freq.get(t, 0) == 0 and not t[0].isdigit() and t not in QUESTION_WORDS
        )
        return cls(weights=weights, unknown=unknown)

    def coverage(self, passage_terms: set[str] | frozenset[str]) -> float:
        """IDF-weighted share of the question's terms found in ``passage_terms``."""
        total = sum(self.weights.values())
        if total <= 0:
            return 0.0
        return sum(w for t, w in self.weights.items() if t in passage_terms) / total


@dataclass(frozen=True, kw_only=True)
class PassageEvidence:
    """How one retrieved passage bears on the question."""

    hit: Hit
    coverage: float
    relevant: bool


def assess_evidence(
    question: QuestionTerms, hits: list[Hit], settings: RetrievalSettings, *, top_k: int
) -> tuple[Evidence, list[PassageEvidence]]:
    """The passages that support answering (best first, at most ``top_k``), and every hit's assessment."""
    assessed: list[PassageEvidence] = []
    best_dense: float | None = None
    best_coverage = 0.0
    for hit in hits:
        coverage = question.coverage(content_terms(f"{hit.passage.heading}\n{hit.passage.text}"))
        best_coverage = max(best_coverage, coverage)
        dense = hit.dense_score
        if dense is not None:
            best_dense = dense if best_dense is None else max(best_dense, dense)
            relevant = dense >= settings.min_dense_score or (
                dense >= settings.min_support_dense_score and coverage >= settings.min_term_coverage
            )
            if question.unknown and dense < settings.min_dense_with_unknown_terms:
                relevant = False
        else:
            relevant = coverage >= _LEXICAL_ONLY_COVERAGE and not question.unknown
        assessed.append(PassageEvidence(hit=hit, coverage=coverage, relevant=relevant))
    relevant_hits = [
        (a.hit, a.hit.dense_score if a.hit.dense_score is not None else a.coverage) for a in assessed if a.relevant
    ]
    if not relevant_hits:
        return (
            Evidence(
                sufficient=False,
                best_dense=best_dense,
                best_coverage=best_coverage,
                reason=_why_not(hits, best_dense, best_coverage, question, settings),
                passages=[],
            ),
            assessed,
        )
    top = max(score for _, score in relevant_hits)
    chosen = [hit for hit, score in relevant_hits if score >= top * settings.relative_cutoff][:top_k]
    evidence = Evidence(
        sufficient=True,
        best_dense=best_dense,
        best_coverage=best_coverage,
        reason=f"{len(chosen)} passage(s) relevant",
        passages=chosen,
    )
    return evidence, assessed


def _why_not(
    hits: list[Hit],
    best_dense: float | None,
    best_coverage: float,
    question: QuestionTerms,
    settings: RetrievalSettings,
) -> str:
    if not hits:
        return "no readable passage matched the question"
    dense = f"{best_dense:.2f}" if best_dense is not None else "n/a"
    if question.unknown and best_dense is not None and best_dense < settings.min_dense_with_unknown_terms:
        return (
            f"the question names {len(question.unknown)} term(s) no readable passage contains, and the best "
            f"similarity {dense} is below {settings.min_dense_with_unknown_terms:.2f}"
        )
    return (
        f"best dense similarity {dense} < {settings.min_dense_score:.2f}, and no passage with similarity >= "
        f"{settings.min_support_dense_score:.2f} covers {settings.min_term_coverage:.0%} of the question's "
        f"weighted terms (best {best_coverage:.0%})"
    )
