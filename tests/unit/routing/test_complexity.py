"""Question complexity decides the cheapest tier."""

from __future__ import annotations

from keel.contract import ComplexitySettings
from keel.routing.complexity import estimate_complexity

S = ComplexitySettings()


def test_short_lookup_from_one_document_is_extractive_material() -> None:
    c = estimate_complexity("How many days of leave do I get?", 1, S)
    assert c.level == "lookup" and c.question_type == "lookup"


def test_explanations_and_several_sources_need_a_model() -> None:
    assert estimate_complexity("Why do we rotate keys?", 1, S).level == "standard"
    assert estimate_complexity("What is the leave policy?", 2, S).level == "standard"
    assert estimate_complexity("What is the leave policy?", 3, S).level == "complex"


def test_long_questions_are_complex() -> None:
    assert estimate_complexity("what " * 40, 1, S).level == "complex"
