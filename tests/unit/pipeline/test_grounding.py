"""Grounding keeps only sentences a passage supports, and fixes their citations."""

from __future__ import annotations

from keel.pipeline.grounding import PassageFacts, ground_sentence, split_citations

PASSAGES = [
    PassageFacts.of("Annual leave: staff are entitled to 27 days of paid annual leave per calendar year."),
    PassageFacts.of("The Leeds office opens at 08:00 and closes at 18:30 on weekdays."),
]


def test_supported_sentence_is_kept_with_its_passage() -> None:
    grounded = ground_sentence("Staff are entitled to 27 days of paid annual leave.", PASSAGES)
    assert grounded is not None and grounded.passage == 0


def test_wrong_model_citation_is_replaced_by_the_supporting_passage() -> None:
    grounded = ground_sentence("Staff are entitled to 27 days of paid annual leave [2].", PASSAGES)
    assert grounded is not None and grounded.passage == 0
    assert "[2]" not in grounded.text


def test_a_number_not_in_the_passage_makes_the_sentence_unsupported() -> None:
    assert ground_sentence("Staff are entitled to 30 days of paid annual leave.", PASSAGES) is None


def test_invented_content_is_dropped() -> None:
    assert ground_sentence("The canteen serves vegan curry every Friday.", PASSAGES) is None


def test_filler_without_substance_is_dropped() -> None:
    assert ground_sentence("The answer is in passage 1.", PASSAGES) is None


def test_split_citations_strips_markers_and_reports_numbers() -> None:
    assert split_citations("Opens at 08:00 [2][1].") == ("Opens at 08:00.", [2, 1])


def test_a_number_taken_from_another_table_row_is_unsupported() -> None:
    bands = PassageFacts.of(
        "Role: Senior Software Engineer; Level: L5; Band: EUR 78,000 - 96,000\n"
        "Role: Staff Engineer; Level: L6; Band: EUR 95,000 - 118,000",
        "Salary bands 2026 > Engineering",
    )
    wrong = "The salary band for a Senior Software Engineer (L5) is EUR 95,000."
    right = "The salary band for a Senior Software Engineer (L5) is EUR 78,000 - 96,000."
    assert ground_sentence(wrong, [bands]) is None
    assert ground_sentence(right, [bands]) is not None


def test_heading_terms_count_as_context_of_every_statement() -> None:
    leave = PassageFacts.of("Up to five unused days may be carried over.", "Annual leave policy > Carry over")
    assert ground_sentence("Up to five days of annual leave may be carried over.", [leave]) is not None


def test_questions_and_restatements_of_the_question_are_dropped() -> None:
    payroll = PassageFacts.of("Salaries are paid on the 25th of each month.", "Payroll")
    question_terms = frozenset({"salari", "paid"})
    assert ground_sentence("When are salaries paid?", [payroll], question_terms=question_terms) is None
    assert ground_sentence("Salaries are paid.", [payroll], question_terms=question_terms) is None
    assert ground_sentence("Salaries are paid on the 25th.", [payroll], question_terms=question_terms) is not None


def test_a_copied_passage_label_is_not_an_answer() -> None:
    policy = PassageFacts.of(
        "Every employee gets a Lockbox account, our password manager.", "Password policy > Manager"
    )
    assert ground_sentence("(Password policy > Manager).", [policy]) is None
    assert ground_sentence("Password policy > Manager", [policy]) is None
