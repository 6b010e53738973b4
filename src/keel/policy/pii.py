"""Detection and redaction of personal data in free text.

Pattern recognisers for e-mail addresses, phone numbers, payment card numbers (Luhn
checked), IBANs, US social security numbers and IP addresses. Text is redacted
before it is written to traces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["PiiMatch", "find_pii", "redact"]


@dataclass(frozen=True, kw_only=True)
class PiiMatch:
    """One detected item: its kind and character span."""

    kind: str
    start: int
    end: int


_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")),
    ("card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b")),
    ("ssn", re.compile(r"\b\d{3}-\d{2}-\d{4}\b")),
    ("ip", re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")),
    ("phone", re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){2,4}(?!\w)")),
]


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def find_pii(text: str) -> list[PiiMatch]:
    """Non-overlapping PII matches in ``text``, in order."""
    found: list[PiiMatch] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            start, end = m.span()
            if any(start < e and end > s for s, e in taken):
                continue
            if kind == "card":
                digits = re.sub(r"\D", "", m.group())
                if not 13 <= len(digits) <= 19 or not _luhn(digits):
                    continue
            if kind == "phone" and len(re.sub(r"\D", "", m.group())) < 9:
                continue
            found.append(PiiMatch(kind=kind, start=start, end=end))
            taken.append((start, end))
    return sorted(found, key=lambda m: m.start)


def redact(text: str) -> str:
    """``text`` with each PII item replaced by ``[REDACTED:kind]``."""
    out: list[str] = []
    last = 0
    for match in find_pii(text):
        out.append(text[last : match.start])
        out.append(f"[REDACTED:{match.kind}]")
        last = match.end
    out.append(text[last:])
    return "".join(out)
