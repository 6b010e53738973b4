"""Asking back only for short questions matching several documents of one kind."""

from __future__ import annotations

import hashlib

from keel.contract import ClarifySettings
from keel.retrieval.evidence import PassageEvidence, QuestionTerms
from keel.retrieval.search import Hit
from keel.retrieval.snapshot import Passage
from keel.routing.clarify import ambiguous_topics


def item(title: str, dense: float, coverage: float = 1.0) -> PassageEvidence:
    passage = Passage(
        row=0,
        chunk_id="c_" + title,
        doc_id="d_" + title,
        title=title,
        path=title,
        heading=title,
        text="x",
        groups=("everyone",),
        text_sha256=hashlib.sha256(title.encode()).hexdigest(),
    )
    hit = Hit(
        passage=passage,
        fused_score=0.1,
        fused_rank=1,
        lexical_score=1.0,
        lexical_rank=1,
        dense_score=dense,
        dense_rank=1,
    )
    return PassageEvidence(hit=hit, coverage=coverage, relevant=True)


SHORT = QuestionTerms.of("When does the office open?", {"offic": 3, "open": 3}, 50)


def test_parallel_documents_with_close_scores_are_ambiguous() -> None:
    topics = ambiguous_topics(
        SHORT, [item("Office guide Leeds", 0.7), item("Office guide Porto", 0.68)], ClarifySettings()
    )
    assert [t.hit.passage.title for t in topics] == ["Office guide Leeds", "Office guide Porto"]


def test_unrelated_kinds_of_document_are_not() -> None:
    assert ambiguous_topics(SHORT, [item("Glossary", 0.7), item("On-call runbook", 0.69)], ClarifySettings()) == []


def test_a_clear_winner_or_a_specific_question_is_not() -> None:
    assert (
        ambiguous_topics(SHORT, [item("Office guide Leeds", 0.8), item("Office guide Porto", 0.6)], ClarifySettings())
        == []
    )
    long_q = QuestionTerms.of("When does the Leeds office open on Fridays in summer?", {}, 50)
    assert (
        ambiguous_topics(long_q, [item("Office guide Leeds", 0.7), item("Office guide Porto", 0.69)], ClarifySettings())
        == []
    )


def test_a_one_word_question_matching_unrelated_documents_is_ambiguous() -> None:
    vague = QuestionTerms.of("What is the limit?", {"limit": 4}, 50)
    topics = ambiguous_topics(vague, [item("API rate limits", 0.6), item("Code of conduct", 0.58)], ClarifySettings())
    assert len(topics) == 2
