"""Asking back: a short question whose evidence comes from several unrelated topics.

"When does the office open?" matches the Rotterdam, Leeds and Porto office guides
about equally; answering from one of them would be a guess. Keel asks back when the
question has few content words, the best passages of two or more documents score
within a small margin of each other and each contains every term of the question,
and those documents are instances of one kind (their titles share a word, like
"Office guide ..."). A vaguer question still ("What is the limit?", one content word)
is ambiguous whenever several documents answer it about equally, whatever they are.
The clarifying question lists those documents, all of them readable by the caller.
Otherwise, different kinds of document that merely mention the same term (a
glossary and a runbook) are not a reason to ask back.
"""

from __future__ import annotations

from keel.contract import ClarifySettings
from keel.retrieval.evidence import PassageEvidence, QuestionTerms
from keel.text import content_terms

__all__ = ["ambiguous_topics"]

MAX_TOPICS = 5
FULL_COVERAGE = 0.99
VAGUE_TERMS = 1


def ambiguous_topics(
    question: QuestionTerms, assessed: list[PassageEvidence], settings: ClarifySettings
) -> list[PassageEvidence]:
    """The best passage of each competing document when the question is ambiguous; else empty."""
    if not settings.enabled or len(question.weights) > settings.max_question_terms:
        return []
    best_per_doc: dict[str, PassageEvidence] = {}
    for item in assessed:
        if not item.relevant or item.hit.dense_score is None:
            continue
        doc = item.hit.passage.doc_id
        current = best_per_doc.get(doc)
        if current is None or (item.hit.dense_score or 0) > (current.hit.dense_score or 0):
            best_per_doc[doc] = item
    if len(best_per_doc) < 2:
        return []
    ranked = sorted(best_per_doc.values(), key=lambda a: -(a.hit.dense_score or 0))
    top = ranked[0].hit.dense_score or 0
    close = [
        a for a in ranked if (a.hit.dense_score or 0) >= top - settings.score_margin and a.coverage >= FULL_COVERAGE
    ]
    if len(close) < 2 or len({a.hit.passage.title for a in close}) < 2:
        return []
    vague = len(question.weights) <= VAGUE_TERMS
    shared = set.intersection(*(content_terms(a.hit.passage.title) for a in close))
    return close[:MAX_TOPICS] if vague or shared else []
