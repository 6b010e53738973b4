"""The extractive answer picks the passages' sentences that best answer the question."""

from __future__ import annotations

from keel.models.extractive import extract_answer

PASSAGES = [
    ("Handbook > Leave", "Leave requests go through Harbor. Staff are entitled to 27 days of annual leave per year."),
    ("Handbook > Offices", "The Leeds office opens at 08:00. Visitors sign in at reception."),
]


def test_best_sentence_answers_the_question() -> None:
    chosen = extract_answer("How many days of annual leave do staff get?", PASSAGES)
    assert chosen[0].text == "Staff are entitled to 27 days of annual leave per year."
    assert chosen[0].passage == 0


def test_table_rows_are_candidates_on_their_own() -> None:
    passages = [
        (
            "Bands > Engineering",
            "Role: Engineer; Level: L4; Band: EUR 60,000\nRole: Senior Engineer; Level: L5; Band: EUR 78,000",
        )
    ]
    chosen = extract_answer("What is the band for a Senior Engineer at level L5?", passages, max_sentences=1)
    assert chosen[0].text == "Engineering — Role: Senior Engineer; Level: L5; Band: EUR 78,000"


def test_nothing_is_extracted_without_overlap() -> None:
    assert extract_answer("Who won the football?", PASSAGES) == []
