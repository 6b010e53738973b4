"""The shared text analyser."""

from __future__ import annotations

from keel.text import content_terms, numbers, sentences, terms


def test_terms_are_stemmed_lowercase_without_stop_words() -> None:
    assert terms("What are the Salary Bands?") == ["salari", "band"]


def test_numbers_are_normalised_in_terms_and_number_sets() -> None:
    assert "78000" in terms("EUR 78,000")
    assert numbers("between 78,000 and 96,000 in 2026. See [2].") == {"78000", "96000", "2026"}


def test_sentences_split_on_end_punctuation_but_not_abbreviations() -> None:
    text = "Staff get 27 days. E.g. bank holidays are extra! Ask HR."
    assert sentences(text) == ["Staff get 27 days.", "E.g. bank holidays are extra!", "Ask HR."]


def test_content_terms_is_a_set() -> None:
    assert content_terms("band band bands") == {"band"}


def test_a_citation_after_the_full_stop_stays_with_its_sentence() -> None:
    assert sentences("Staff get 27 days. [1] Carry over five days. [2][3]") == [
        "Staff get 27 days. [1]",
        "Carry over five days. [2][3]",
    ]
