"""Whether the retrieved passages are evidence enough to answer.

Keel, not the model, decides when there is nothing to answer from: a passage counts
as evidence when its dense similarity to the question is high, or moderately high
while it also contains most of the question's content terms. With no evidence the
request is answered ``no_answer`` and no model is asked to make one up.
"""

from __future__ import annotations

from keel.contract import RetrievalSettings
from keel.pipeline.context import Evidence
from keel.retrieval.search import Hit
from keel.text import content_terms

__all__ = ["assess_evidence", "term_coverage"]

_LEXICAL_ONLY_COVERAGE = 0.75


def term_coverage(question_terms: set[str], passage_text: str) -> float:
    """Share of the question's content terms found in the passage."""
    if not question_terms:
        return 0.0
    return len(question_terms & content_terms(passage_text)) / len(question_terms)


def assess_evidence(question: str, hits: list[Hit], settings: RetrievalSettings, *, top_k: int) -> Evidence:
    """Pick the passages that support answering, best first, at most ``top_k``."""
    q_terms = content_terms(question)
    relevant: list[tuple[Hit, float]] = []
    best_dense: float | None = None
    best_coverage = 0.0
    for hit in hits:
        coverage = term_coverage(q_terms, f"{hit.passage.heading}\n{hit.passage.text}")
        best_coverage = max(best_coverage, coverage)
        dense = hit.dense_score
        if dense is not None:
            best_dense = dense if best_dense is None else max(best_dense, dense)
            ok = dense >= settings.min_dense_score or (
                dense >= settings.min_support_dense_score and coverage >= settings.min_term_coverage
            )
        else:
            ok = coverage >= _LEXICAL_ONLY_COVERAGE
        if ok:
            relevant.append((hit, dense if dense is not None else coverage))
    if not relevant:
        return Evidence(
            sufficient=False,
            best_dense=best_dense,
            best_coverage=best_coverage,
            reason=_why_not(hits, best_dense, best_coverage, settings),
            passages=[],
        )
    top = max(score for _, score in relevant)
    chosen = [hit for hit, score in relevant if score >= top * settings.relative_cutoff][:top_k]
    return Evidence(
        sufficient=True,
        best_dense=best_dense,
        best_coverage=best_coverage,
        reason=f"{len(chosen)} passage(s) relevant",
        passages=chosen,
    )


def _why_not(hits: list[Hit], best_dense: float | None, best_coverage: float, settings: RetrievalSettings) -> str:
    if not hits:
        return "no readable passage matched the question"
    dense = f"{best_dense:.2f}" if best_dense is not None else "n/a"
    return (
        f"best dense similarity {dense} < {settings.min_dense_score:.2f} and no passage with "
        f"similarity >= {settings.min_support_dense_score:.2f} covers {settings.min_term_coverage:.0%} "
        f"of the question's terms (best coverage {best_coverage:.0%})"
    )
