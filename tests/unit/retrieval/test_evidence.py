"""The evidence gate: no readable evidence means no_answer, decided from readable statistics only."""

from __future__ import annotations

import hashlib

from keel.contract import RetrievalSettings
from keel.retrieval.evidence import QuestionTerms, assess_evidence
from keel.retrieval.search import Hit
from keel.retrieval.snapshot import Passage

SETTINGS = RetrievalSettings()


def _hit(text: str, dense: float | None, heading: str = "Doc") -> Hit:
    passage = Passage(
        row=0,
        chunk_id="c_" + hashlib.sha256(text.encode()).hexdigest()[:8],
        doc_id="d_1",
        title="Doc",
        path="doc.md",
        heading=heading,
        text=text,
        groups=("everyone",),
        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
    )
    return Hit(
        passage=passage,
        fused_score=0.03,
        fused_rank=1,
        lexical_score=1.0,
        lexical_rank=1,
        dense_score=dense,
        dense_rank=1 if dense is not None else None,
    )


def _terms(question: str, doc_freq: dict[str, int], readable: int = 100) -> QuestionTerms:
    return QuestionTerms.of(question, doc_freq, readable)


def test_high_similarity_alone_is_evidence() -> None:
    q = _terms("How much leave do I get?", {"leav": 5})
    evidence, _ = assess_evidence(q, [_hit("Staff get 27 days of annual leave.", 0.7)], SETTINGS, top_k=4)
    assert evidence.sufficient and len(evidence.passages) == 1


def test_moderate_similarity_needs_the_rare_question_terms() -> None:
    q = _terms("When is Larkspur Day?", {"larkspur": 3, "day": 40})
    matching = _hit("Larkspur Day is on 12 June, when offices close.", 0.35)
    generic = _hit("Every day the office opens at eight.", 0.35)
    assert assess_evidence(q, [matching], SETTINGS, top_k=4)[0].sufficient
    assert not assess_evidence(q, [generic], SETTINGS, top_k=4)[0].sufficient


def test_a_word_no_readable_passage_contains_demands_high_similarity() -> None:
    q = _terms("What is the salary band for a senior engineer?", {"salari": 2, "senior": 3, "engin": 20, "band": 0})
    assert q.unknown == {"band"}
    ladder = _hit("Senior engineers own the design of a service and mentor others.", 0.6, "Career ladder > Senior")
    evidence, _ = assess_evidence(q, [ladder], SETTINGS, top_k=4)
    assert not evidence.sufficient
    assert "no readable passage contains" in evidence.reason
    assert assess_evidence(q, [_hit("Senior engineer salary: band B.", 0.7)], SETTINGS, top_k=4)[0].sufficient


def test_question_words_and_numbers_are_never_unknown() -> None:
    q = _terms("How often is it reviewed in 2031?", {"review": 4})
    assert q.unknown == frozenset()


def test_lexical_only_search_needs_high_coverage_and_no_unknown_terms() -> None:
    q = _terms("Larkspur Day date", {"larkspur": 3, "day": 40, "date": 10})
    assert assess_evidence(q, [_hit("Larkspur Day date: 12 June.", None)], SETTINGS, top_k=4)[0].sufficient
    assert not assess_evidence(q, [_hit("Larkspur offices.", None)], SETTINGS, top_k=4)[0].sufficient


def test_weaker_passages_below_the_relative_cutoff_are_not_given_to_the_model() -> None:
    q = _terms("How much leave do I get?", {"leav": 5})
    strong, weak = _hit("Staff get 27 days of annual leave.", 0.8), _hit("Leave requests go through Harbor.", 0.56)
    evidence, assessed = assess_evidence(q, [strong, weak], SETTINGS, top_k=4)
    assert [h.passage.text for h in evidence.passages] == [strong.passage.text]
    assert all(a.relevant for a in assessed)


def test_no_hits_is_no_evidence_with_a_reason() -> None:
    evidence, _ = assess_evidence(_terms("anything", {}), [], SETTINGS, top_k=4)
    assert not evidence.sufficient and evidence.reason == "no readable passage matched the question"
