"""Durations as the contract writes them, and ages as tables show them."""

from __future__ import annotations

import pytest

from keel.durations import format_age, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("6h", 21600), ("1d", 86400), ("7d", 604800), ("2w", 1209600), ("1h30m", 5400)],
)
def test_durations_in_the_contract_form_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "d", "daily", "1.5h", "-1d", "1 d", "1D", "1d1d", "0m", "1y"])
def test_anything_but_a_positive_duration_is_rejected_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match=r"duration|zero|twice"):
        parse_duration(text)


def test_ages_are_short_and_round_down() -> None:
    assert [format_age(s) for s in (0, 59.9, 60, 3599, 3600, 5400, 86400, 90000 + 3600)] == [
        "0s",
        "59s",
        "1m",
        "59m",
        "1h",
        "1h 30m",
        "1d",
        "1d 2h",
    ]
    assert format_age(-5) == "0s"
