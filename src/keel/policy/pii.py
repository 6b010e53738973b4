"""Detection and redaction of personal data and secrets in free text.

Pattern recognisers, offline and deterministic: e-mail addresses, phone numbers,
payment card numbers (Luhn checked), IBANs (mod-97 checked), US social security
numbers, IP addresses, and API-key-like secrets (well-known key formats, JWTs,
private-key blocks, ``password=...`` assignments). Person names are opt-in: a list of
common given names followed by a capitalised word (no statistical model runs here).

Text is always redacted before it is written to traces, logs, audit records, hand-offs
and exports (:func:`redact`); :class:`PiiRecognizer` applies a contract's choice of kinds.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ALL_KINDS", "PiiMatch", "PiiRecognizer", "find_pii", "redact", "replace_matches"]


@dataclass(frozen=True, kw_only=True)
class PiiMatch:
    """One detected item: its kind and character span."""

    kind: str
    start: int
    end: int


_SECRET = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|\bkeel_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}"
    r"|\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"
    r"|\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|\bwhsec_[A-Za-z0-9]{16,}"
    r"|\bglpat-[A-Za-z0-9_-]{16,}"
    r"|\bnpm_[A-Za-z0-9]{30,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bxox[abprs]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_-]{35}"
    r"|\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
)
# A value named as a password, secret, token or key: it must mix letters with digits or symbols.
_NAMED_SECRET = re.compile(
    r"(?i:\b(?:password|passwd|passphrase|secret|token|api[_ -]?key|access[_ -]?key)\b)"
    r"(?:[^.\n]{0,30}?(?:\bis\b|\bwas\b|[:=]))?\s*"
    r"(?P<value>(?=\S*[A-Za-z])(?=\S*[\d#$%&*!@^~+=_-])[^\s,;'\"]{7,}[^\s,;'\".!?])"
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?P<tld>[A-Za-z]{2,})\b")
_FILE_EXTENSIONS = frozenset(
    {"doc", "docx", "xls", "xlsx", "ppt", "pptx", "pdf", "txt", "csv", "md", "png", "jpg", "jpeg", "gif", "svg"}
    | {"zip", "tar", "gz", "json", "yaml", "yml", "xml", "html", "htm"}
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_PHONE_INTERNATIONAL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,6}\)?){1,6}(?!\w)")
_PHONE_NATIONAL = re.compile(r"(?<![\w+])(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,6}){1,4}(?!\w)")
_PHONE_CONTEXT = re.compile(
    r"(?i:\b(?:phone|tel|telephone|mobile|cell|call|ring|fax|text|whatsapp|sms|dial|number|hotline|helpline|"
    r"switchboard|reception|reach (?:me|us))\b)"
    r"[^\n\d]{0,24}$"
)
# Numbers introduced as something else are not personal data: order, reference, serial...
_OTHER_NUMBER = re.compile(
    r"(?i:\b(?:order|po|purchase order|ref|reference|invoice|tracking|serial|sku|item|part|case|ticket|budget|"
    r"code|duns|vat|version|build|release|firmware|section|chapter|page|article|clause|v)\b)[^\n\d]{0,16}$"
)
# Dotted numbers right after these words are versions or section numbers, not addresses.
_VERSION_BEFORE = re.compile(r"(?i:\b(?:version|firmware|release|build|section|chapter|page|clause|v)\.?\s*)$")
_HONORIFIC = r"(?:Dr|Mr|Mrs|Ms|Mx|Prof|Sir|Dame)\.?"
_PART = r"(?:[A-Z][a-z]+(?:-[A-Z][a-z]+)?|O'[A-Z][a-z]+|Mc[A-Z][a-z]+)"
_TITLED = re.compile(rf"\b{_HONORIFIC}\s+{_PART}(?:\s+{_PART})?")
# Overlapping candidates (a lookahead), so "Reimburse Elena Petrova" still yields "Elena Petrova".
_NAME = re.compile(rf"(?=\b(?P<first>{_PART})\s+(?P<last>(?:[A-Z]\.\s*)?{_PART})\b)")

_GIVEN_NAMES = frozenset(
    """
    aaron adam adrian ahmed aisha alan albert alex alexander alice amanda amy ana andrea andrew angela anna anne
    anthony antonio arjun barbara ben benjamin brian carlos carol caroline catherine charles charlotte chen chris
    christian christopher claire daniel david deborah dennis diana donald dorothy edward elena elizabeth emily emma
    eric ethan eva fatima fiona francesco frank gary george grace hannah hans harry helen henry hiroshi ian isabel
    jack jacob james jan jane jason jennifer jessica joao john jonathan jose joseph joshua juan julia karen kate
    kenji kevin laura lauren linda lisa lucas lucy luis maria mark martin mary matthew mei michael michelle mohamed
    mohammed nancy natalie nicholas nina olivia omar patricia paul peter priya rachel rahul raj rebecca richard
    robert ryan samuel sandra sarah sebastian sophie stephen steven susan thomas timothy tom victoria wei william
    yuki zoe abdul agnieszka aiko akira alessandro ali amir anders andreas anil ananya astrid beatriz bjorn camille
    chiara chloe dmitri emil emre enrique fernando finn florian freya giulia hamid hana hugo ines ivan jakob jean
    jens jorge kai karim katarzyna lars leila leon liam lina luca lukas magnus malik marco mariana marta mateo
    matteo mehmet mia mikhail nadia noah nora oliver oscar pablo pedro pierre piotr rafael ravi rosa sanjay sara
    sofia sven tariq tomasz valentina vikram yusuf zainab
    """.split()  # noqa: SIM905 - a word list reads better as text
)
# Capitalised words that follow a given name without making it a person ("Victoria Station").
_NOT_SURNAMES = frozenset({"Station", "Street", "Road", "Square", "Park", "Bridge", "Line", "Hall", "House", "Centre"})

ALL_KINDS: tuple[str, ...] = ("secret", "email", "iban", "card", "ssn", "ip", "phone", "person")

# Cheap necessary conditions, checked before a kind's patterns run over the text: most
# questions and answers have no '@', no key prefix, few digits, so most patterns are skipped.
_DIGIT = re.compile(r"\d")
_SECRET_HINT = re.compile(r"-----BEGIN|keel_|sk-|[spr]k_|whsec_|glpat-|npm_|AKIA|ASIA|gh[pousr]_|xox|AIza|eyJ")
_NAMED_SECRET_WORDS = ("pass", "secret", "token", "key")
_NEEDS_DIGIT = frozenset({"iban", "card", "ssn", "phone"})


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


def _iban_ok(value: str) -> bool:
    compact = re.sub(r"\s", "", value)
    rearranged = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def _digits(value: str) -> int:
    return sum(ch.isdigit() for ch in value)


def _before(text: str, start: int) -> str:
    return text[max(0, start - 40) : start]


def _candidates(text: str, kind: str) -> list[tuple[int, int]]:
    """Spans of one kind, before overlaps between kinds are resolved."""
    spans: list[tuple[int, int]] = []
    if kind == "secret":
        if _SECRET_HINT.search(text):
            spans += [m.span() for m in _SECRET.finditer(text)]
        lowered = text.lower().replace("\u017f", "s")  # the pattern's (?i) also matches a long s as 's'
        if any(word in lowered for word in _NAMED_SECRET_WORDS):
            spans += [m.span("value") for m in _NAMED_SECRET.finditer(text)]
    elif kind == "email":
        if "@" not in text:
            return spans
        spans += [m.span() for m in _EMAIL.finditer(text) if m.group("tld").lower() not in _FILE_EXTENSIONS]
    elif kind == "iban":
        spans += [m.span() for m in _IBAN.finditer(text) if _iban_ok(m.group())]
    elif kind == "card":
        for m in _CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            # No context rule here: a Luhn-valid number is redacted even when called an order number.
            if 13 <= len(digits) <= 19 and _luhn(digits):
                spans.append(m.span())
    elif kind == "ssn":
        spans += [m.span() for m in _SSN.finditer(text)]
    elif kind == "ip":
        if ":" not in text and not _DIGIT.search(text):
            return spans
        for m in _IPV4.finditer(text):
            if not _VERSION_BEFORE.search(_before(text, m.start())):
                spans.append(m.span())
        for m in _IPV6.finditer(text):
            value = m.group()
            if value.count(":") >= 2 and ("::" in value or value.count(":") == 7):
                try:
                    ipaddress.IPv6Address(value)
                except ValueError:
                    continue
                spans.append(m.span())
    elif kind == "phone":
        for m in _PHONE_INTERNATIONAL.finditer(text):
            if 8 <= _digits(m.group()) <= 15:
                spans.append((m.start(), len(m.group().rstrip(" .-")) + m.start()))
        for m in _PHONE_NATIONAL.finditer(text):
            before = _before(text, m.start())
            if 9 <= _digits(m.group()) <= 13 and _PHONE_CONTEXT.search(before) and not _OTHER_NUMBER.search(before):
                spans.append(m.span())
    elif kind == "person":
        spans += [m.span() for m in _TITLED.finditer(text)]
        for m in _NAME.finditer(text):
            first = m.group("first").split("-")[0].lower()
            if first in _GIVEN_NAMES and m.group("last") not in _NOT_SURNAMES:
                spans.append((m.start("first"), m.end("last")))
    return spans


_DEFAULT_KINDS = frozenset(ALL_KINDS) - {"person"}


def find_pii(text: str, kinds: frozenset[str] | None = None) -> list[PiiMatch]:
    """Non-overlapping PII matches in ``text``, in order (every kind but ``person`` unless given).

    Kinds are tried in :data:`ALL_KINDS` order; a later kind never claims text an
    earlier one matched (a card number is not also a phone number).
    """
    wanted = kinds if kinds is not None else _DEFAULT_KINDS
    found: list[PiiMatch] = []
    taken: list[tuple[int, int]] = []
    has_digit = _DIGIT.search(text) is not None
    for kind in ALL_KINDS:
        if kind not in wanted or (kind in _NEEDS_DIGIT and not has_digit):
            continue
        for start, end in _candidates(text, kind):
            if any(start < e and end > s for s, e in taken):
                continue
            found.append(PiiMatch(kind=kind, start=start, end=end))
            taken.append((start, end))
    return sorted(found, key=lambda m: m.start)


def replace_matches(text: str, matches: Sequence[PiiMatch]) -> str:
    """``text`` with each of ``matches`` (in order, not overlapping) replaced by ``[REDACTED:kind]``."""
    out: list[str] = []
    last = 0
    for match in matches:
        out.append(text[last : match.start])
        out.append(f"[REDACTED:{match.kind}]")
        last = match.end
    out.append(text[last:])
    return "".join(out)


_SHORT = 32
"""Strings up to this long (names, modes, ids: the bulk of audit and trace fields) are redacted through a cache."""


def redact(text: str) -> str:
    """``text`` with each PII item (every pattern kind) replaced by ``[REDACTED:kind]``."""
    if not text:
        return text
    if len(text) <= _SHORT:
        return _redact_short(text)
    return replace_matches(text, find_pii(text))


@functools.lru_cache(maxsize=4096)
def _redact_short(text: str) -> str:
    return replace_matches(text, find_pii(text))


class PiiRecognizer:
    """The contract's choice of PII kinds, for the request path."""

    def __init__(self, kinds: Sequence[str], *, person_names: bool = False) -> None:
        self.kinds = frozenset(kinds) | ({"person"} if person_names else frozenset())

    def find(self, text: str) -> list[PiiMatch]:
        """PII of the configured kinds in ``text``."""
        return find_pii(text, self.kinds)

    def redact(self, text: str, *, sources: Sequence[str] = ()) -> str:
        """``text`` with PII replaced, except items that appear word for word in one of ``sources``.

        One pass: each item is found once and kept only when a source the caller may
        read already contains it (an answer may repeat a phone number from its passage).
        """
        matches = [m for m in self.find(text) if not any(text[m.start : m.end] in s for s in sources)]
        return replace_matches(text, matches)
