"""Scoring a case: retrieval and generation separately, and the stage that failed."""

from __future__ import annotations

from keel.evals.scoring import Observation, RetrievedPassage, score_case
from keel.evals.suite import Asker, Case

HR = Asker(id="hana", tenant="t", groups=frozenset({"hr"}), roles=frozenset({"user"}))
STAFF = Asker(id="sam", tenant="t", groups=frozenset(), roles=frozenset({"user"}))
BANDS = RetrievedPassage(
    chunk_id="c_b",
    path="hr/bands.md",
    groups=("hr",),
    heading="Salary bands > Engineering",
    text="Role: Senior Engineer; Level: L5; Band: EUR 78,000 - 96,000",
)
LEAVE = RetrievedPassage(
    chunk_id="c_l", path="all/leave.md", groups=("everyone",), heading="Leave", text="Staff get 27 days of leave."
)


def case(**expect: object) -> Case:
    return Case.model_validate({"id": "c", "question": "What is the L5 band?", "asker": "x", "expect": expect})


def obs(**kw: object) -> Observation:
    base: dict[str, object] = {
        "request_id": "r",
        "mode": "answer",
        "answer": "",
        "retrieved": [],
        "cited": [],
        "latency_ms": 10.0,
    }
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


INSIDER = case(
    relevant=[{"doc": "hr/bands.md", "grade": 2}],
    answer={"contains": ["78,000"]},
    citations=["hr/bands.md"],
    mode="answer",
)


def test_a_correct_cited_answer_passes_with_full_scores() -> None:
    answer = "Senior Engineer L5: Band EUR 78,000 - 96,000 [1]."
    score = score_case(INSIDER, HR, obs(answer=answer, retrieved=[BANDS, LEAVE], cited=[BANDS]), k=5, similarity=None)
    assert score.passed and score.stage is None
    m = score.metrics
    assert m["retrieval.recall@k"] == 1.0 and m["retrieval.mrr"] == 1.0
    assert m["generation.correctness"] == 1.0 and m["generation.citation_recall"] == 1.0
    assert m["generation.groundedness"] == 1.0 and m["retrieval.acl_violations"] == 0.0


def test_a_missing_document_is_a_retrieval_failure() -> None:
    score = score_case(
        INSIDER, HR, obs(answer="Staff get 27 days [1].", retrieved=[LEAVE], cited=[LEAVE]), k=5, similarity=None
    )
    assert score.stage == "retrieval" and score.metrics["retrieval.recall@k"] == 0.0


def test_retrieved_but_refused_is_an_evidence_failure() -> None:
    score = score_case(
        INSIDER, HR, obs(mode="no_answer", answer="I could not find", retrieved=[BANDS]), k=5, similarity=None
    )
    assert score.stage == "evidence"


def test_retrieved_but_answered_wrongly_is_a_generation_failure() -> None:
    score = score_case(
        INSIDER, HR, obs(answer="Band EUR 95,000 [1].", retrieved=[BANDS], cited=[BANDS]), k=5, similarity=None
    )
    assert score.stage == "generation" and score.metrics["generation.groundedness"] == 0.0


def test_a_readable_passage_outside_the_askers_groups_is_an_acl_violation() -> None:
    outsider = case(forbidden=["78,000"], forbidden_docs=["hr/bands.md"])
    score = score_case(outsider, STAFF, obs(mode="no_answer", answer="none", retrieved=[BANDS]), k=5, similarity=None)
    assert score.stage == "acl" and score.metrics["retrieval.acl_violations"] == 1.0


def test_forbidden_content_anywhere_is_a_leak_but_the_askers_own_words_are_not() -> None:
    outsider = case(forbidden=["78,000", "L5 band"])
    leaked = score_case(
        outsider, STAFF, obs(mode="no_answer", answer="x", strings="... 78,000 ..."), k=5, similarity=None
    )
    assert leaked.stage == "leak"
    echoed = score_case(
        outsider, STAFF, obs(mode="no_answer", answer="x", strings="What is the L5 band?"), k=5, similarity=None
    )
    assert echoed.passed


def test_a_forbidden_figure_inside_a_random_id_is_not_a_leak() -> None:
    outsider = case(forbidden=["668"])
    ids = "req_3fa9c668e01b\n0b1d668a\n6680f2\nc_77a5e1668\n"
    clean = score_case(outsider, STAFF, obs(mode="no_answer", answer="x", strings=ids), k=5, similarity=None)
    assert clean.passed
    for leak in ("Headcount is 668.", "(668)", "668 roles", "total: 668\n"):
        found = score_case(outsider, STAFF, obs(mode="no_answer", answer="x", strings=leak), k=5, similarity=None)
        assert found.stage == "leak", leak


def test_semantic_and_regex_expectations() -> None:
    similar = case(answer={"similar": "Twenty seven days", "threshold": 0.8})
    assert score_case(similar, HR, obs(answer="27 days"), k=5, similarity=lambda a, b: 0.9).passed
    assert not score_case(similar, HR, obs(answer="27 days"), k=5, similarity=lambda a, b: 0.5).passed
    regex = case(answer={"regex": r"\b27\b"})
    assert score_case(regex, HR, obs(answer="You get 27 days."), k=5, similarity=None).passed


def test_latency_and_cost_limits_fail_at_the_ops_stage() -> None:
    limited = case(max_latency_ms=100, max_cost_usd=0.001)
    score = score_case(limited, HR, obs(latency_ms=500.0, cost_usd=0.01), k=5, similarity=None)
    assert score.stage == "ops" and len(score.failures) == 2
