"""Ranking and answer metrics."""

from __future__ import annotations

import pytest

from keel.evals.metrics import ndcg_at, normalise_answer, precision_at, recall_at, reciprocal_rank, token_f1


def test_recall_precision_and_reciprocal_rank() -> None:
    ranked = ["a", "x", "b", "y"]
    assert recall_at(ranked, {"a", "b"}, 2) == 0.5
    assert recall_at(ranked, {"a", "b"}, 3) == 1.0
    assert precision_at(ranked, {"a", "b"}, 2) == 0.5
    assert precision_at([], {"a"}, 5) == 0.0
    assert reciprocal_rank(ranked, {"b"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, {"z"}) == 0.0


def test_ndcg_rewards_graded_relevance_at_the_top() -> None:
    grades = {"a": 2, "b": 1}
    assert ndcg_at(["a", "b"], grades, 10) == pytest.approx(1.0)
    assert ndcg_at(["b", "a"], grades, 10) < 1.0
    assert ndcg_at(["x", "y"], grades, 10) == 0.0


def test_token_f1_ignores_case_punctuation_and_citation_markers() -> None:
    assert token_f1("Staff get 27 days [1].", "staff get 27 days") == pytest.approx(1.0)
    assert token_f1("27 days", "Staff get 27 days") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert token_f1("nothing", "Staff get 27 days") == 0.0
    assert normalise_answer("EUR 78,000 - 96,000 [2].") == "eur 78,000 - 96,000"


def test_recall_needs_relevant_items() -> None:
    with pytest.raises(ValueError):
        recall_at(["a"], set(), 5)
