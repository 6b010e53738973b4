"""PII detection and redaction for what Keel stores."""

from __future__ import annotations

import pytest

from keel.policy.pii import find_pii, redact


def test_common_pii_kinds_are_redacted() -> None:
    text = (
        "Mail jane.doe@example.com or call +44 20 7946 0958; card 4111 1111 1111 1111; "
        "IBAN NL91ABNA0417164300; SSN 078-05-1120; host 10.1.2.3."
    )
    out = redact(text)
    for raw in (
        "jane.doe@example.com",
        "7946 0958",
        "4111 1111 1111 1111",
        "NL91ABNA0417164300",
        "078-05-1120",
        "10.1.2.3",
    ):
        assert raw not in out
    assert {m.kind for m in find_pii(text)} == {"email", "phone", "card", "iban", "ssn", "ip"}


def test_card_numbers_must_pass_luhn() -> None:
    assert "card" not in {m.kind for m in find_pii("order 4111 1111 1111 1112")}
    assert "card" in {m.kind for m in find_pii("order 4111 1111 1111 1111")}


def test_ordinary_numbers_and_dates_are_left_alone() -> None:
    text = "Budget EUR 78,000 approved on 2026-03-31 for 27 days."
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "my pa\u017f\u017fword is Hunter2#xyz",  # a long s, which the pattern's case folding treats as 's'
        "the API \u212aEY: Zx9#abcdefgh",  # a Kelvin sign for K
        "TOKEN=ab12cd34ef",
    ],
)
def test_named_secrets_spelt_with_case_folding_look_alikes_are_still_found(text: str) -> None:
    assert [m.kind for m in find_pii(text)] == ["secret"]


def test_text_without_digits_at_signs_or_key_prefixes_is_scanned_for_ipv6_and_names_still() -> None:
    assert [m.kind for m in find_pii("reach the host at fe80::1 or ::ffff:aa")] == ["ip", "ip"]
    assert [m.kind for m in find_pii("ask Maria Lopez", frozenset({"person"}))] == ["person"]
