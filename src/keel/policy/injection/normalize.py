"""Undo the obfuscations attackers use to slip instructions past pattern checks.

The normalised text is used for detection only; it is never shown or forwarded.
Steps, in order, each recorded in ``NormalizedText.changes`` when it altered the text:

* ``nfkc``: Unicode compatibility folding (ligatures, superscripts, other forms);
  fullwidth, mathematical and circled letters are reported as ``homoglyph``;
* ``unicode_tags``: invisible Unicode tag characters (U+E0020-U+E007E) decoded to the
  ASCII they smuggle;
* ``zero_width``: zero-width, bidirectional-control and other invisible characters removed;
* ``base64``: blobs of at least 16 base64 characters that decode to mostly printable
  text are replaced by their decoded text (twice, for double encoding);
* ``homoglyph``: Cyrillic and Greek look-alike letters inside Latin words mapped to Latin;
* ``spacing``: letters spelled out with separators (``i g n o r e``, ``r.e.v.e.a.l``) joined;
* ``leetspeak``: digits and symbols standing for letters mapped back (``1gn0r3`` -> ``ignore``):
  symbols only when the result is a word of the detection vocabulary, digits inside any
  word of four or more characters made of letters and the digits 0, 1, 3, 4, 5 and 7.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["VOCABULARY", "NormalizedText", "normalize"]


@dataclass(frozen=True, kw_only=True)
class NormalizedText:
    """De-obfuscated text used for detection, and the names of the steps that changed it."""

    text: str
    changes: tuple[str, ...]


# Words that matter for detection: leetspeak is only undone, and spelled-out letters are
# only re-segmented, into words of this list, so ordinary text is left alone.
# fmt: off
VOCABULARY = frozenset((
    "a", "about", "above", "access", "act", "activate", "admin", "administrator", "after", "ai", "all", "always",
    "an", "and", "any", "anything", "are", "as", "assistant", "at", "bank", "be", "before", "bound", "break", "but",
    "by", "bypass", "can", "card", "chat", "chatbot", "code", "command", "commands", "confidential", "conversation",
    "credentials", "dan", "data", "database", "delete", "developer", "directives", "disable", "disregard",
    "display", "do", "documents", "dump", "email", "employee", "employees", "everything", "evil", "exfiltrate",
    "export", "file", "files", "filter", "filters", "follow", "for", "forget", "free", "from", "full", "give",
    "guardrails", "guidelines", "hack", "hidden", "history", "i", "if", "ignore", "in", "initial", "instructions",
    "instruction", "internal", "is", "it", "jailbreak", "jailbroken", "key", "keys", "leak", "limits", "longer",
    "me", "message", "messages", "mode", "model", "must", "my", "new", "no", "not", "now", "obey", "of", "on",
    "only", "or", "original", "other", "output", "override", "password", "passwords", "payroll", "policy",
    "previous", "print", "prior", "private", "prompt", "prompts", "records", "repeat", "restricted", "restrictions",
    "reveal", "rules", "safety", "salary", "say", "secret", "secrets", "send", "share", "show", "system", "tell",
    "tenant", "tenants", "text", "that", "the", "then", "these", "this", "to", "token", "tokens", "told",
    "unfiltered", "unlock", "unrestricted", "url", "user", "users", "were", "what", "with", "you", "your",
))
# fmt: on

_ZERO_WIDTH_EXTRA = frozenset("\u034f\u115f\u1160\u3164\uffa0\u180e")

_HOMOGLYPHS = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "һ": "h", "ӏ": "l",
    "ɡ": "g", "ү": "y", "ո": "n", "ս": "u",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "У": "Y", "Ү": "Y", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    # Greek
    "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin look-alikes
    "ı": "i", "ȷ": "j", "ℓ": "l", "ſ": "s",
}  # fmt: skip

_LEET = {"0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s", "|": "l", "!": "i"}

_LEET_DIGITS = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t"}

_BASE64_BLOB = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
_LETTER_RUN = re.compile(r"[^\W\d_]+")
_LEET_TOKEN = re.compile(r"(?<![\w@$|!])[\w@$|!]*[A-Za-z][\w@$|!]*")
# Four or more single characters each followed by a short separator: "i g n o r e", "r.e.v.e.a.l".
_SPACED = re.compile(r"(?<![\w@$])(?:[A-Za-z0-9@$][ .\-_*|/]{1,4}){3,}[A-Za-z0-9@$](?![\w@$])")
_SEPARATOR = re.compile(r"[ .\-_*|/]+")


def normalize(text: str) -> NormalizedText:
    """The de-obfuscated form of ``text`` and the steps that changed it."""
    changes: list[str] = []
    out = _fold(text, changes)
    out = _decode_tags(out, changes)
    out = _strip_invisible(out, changes)
    for _ in range(2):
        decoded = _decode_base64(out)
        if decoded == out:
            break
        out = decoded
        if "base64" not in changes:
            changes.append("base64")
    out = _step(out, _map_homoglyphs(out), "homoglyph", changes)
    out = _step(out, _join_spaced(out), "spacing", changes)
    out = _step(out, _undo_leetspeak(out), "leetspeak", changes)
    return NormalizedText(text=out, changes=tuple(changes))


def _step(before: str, after: str, name: str, changes: list[str]) -> str:
    if after != before and name not in changes:
        changes.append(name)
    return after


def _fold(text: str, changes: list[str]) -> str:
    folded = unicodedata.normalize("NFKC", text)
    if folded == text:
        return text
    lookalike = any(
        0xFF01 <= ord(ch) <= 0xFF5E or 0x1D400 <= ord(ch) <= 0x1D7FF or 0x24B6 <= ord(ch) <= 0x24E9 for ch in text
    )
    changes.append("homoglyph" if lookalike else "nfkc")
    return folded


def _decode_tags(text: str, changes: list[str]) -> str:
    if not any(0xE0000 <= ord(ch) <= 0xE007F for ch in text):
        return text
    changes.append("unicode_tags")

    def decode(match: re.Match[str]) -> str:
        plain = "".join(chr(ord(ch) - 0xE0000) for ch in match.group() if 0xE0020 <= ord(ch) <= 0xE007E)
        return f" {plain} " if plain else ""

    return _TAG_RUN.sub(decode, text)


def _strip_invisible(text: str, changes: list[str]) -> str:
    kept = "".join(
        ch
        for ch in text
        if ch in "\n\t" or (unicodedata.category(ch) not in ("Cf", "Cc") and ch not in _ZERO_WIDTH_EXTRA)
    )
    if len(kept) != len(text):
        changes.append("zero_width")
    return kept


def _decode_base64(text: str) -> str:
    def decode(match: re.Match[str]) -> str:
        blob = match.group()
        plain = _b64_text(blob)
        return f" {plain} " if plain is not None else blob

    return _BASE64_BLOB.sub(decode, text)


def _b64_text(blob: str, *, nested: bool = True) -> str | None:
    if not any(ch.isdigit() or ch in "+/=" for ch in blob) and blob.isalpha() and (blob.islower() or blob.isupper()):
        return None  # a plain word, not a blob
    padded = blob.rstrip("=")
    padded += "=" * (-len(padded) % 4)
    try:
        raw = base64.b64decode(padded, altchars=b"-_" if ("-" in blob or "_" in blob) else None, validate=True)
        plain = raw.decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if len(plain) < 8:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in plain)
    wordy = sum(ch.isalpha() or ch == " " for ch in plain)
    if printable / len(plain) < 0.95 or wordy / len(plain) < 0.7 or " " not in plain.strip():
        inner = plain.strip()
        if nested and _BASE64_BLOB.fullmatch(inner) and _b64_text(inner, nested=False) is not None:
            return plain  # base64 of base64: decoded again on the next pass
        return None
    return plain


def _map_homoglyphs(text: str) -> str:
    if not any(ch in _HOMOGLYPHS for ch in text):
        return text
    letters = [ch for ch in text if ch.isalpha()]
    latin = sum(ch.isascii() for ch in letters)
    mostly_latin = latin * 2 > len(letters)

    def fix(match: re.Match[str]) -> str:
        word = match.group()
        mixed = any(ch.isascii() for ch in word)
        lookalikes_only = all(ch.isascii() or ch in _HOMOGLYPHS for ch in word)
        if (mixed or mostly_latin) and lookalikes_only:
            return "".join(_HOMOGLYPHS.get(ch, ch) for ch in word)
        return word

    return _LETTER_RUN.sub(fix, text)


def _join_spaced(text: str) -> str:
    def join(match: re.Match[str]) -> str:
        run = match.group()
        gaps = [m.group() for m in _SEPARATOR.finditer(run)]
        narrow = min(len(g) for g in gaps)
        words: list[str] = []
        current = ""
        for piece in re.split(r"([ .\-_*|/]+)", run):
            if piece and _SEPARATOR.fullmatch(piece):
                if len(piece) > narrow:
                    words.append(current)
                    current = ""
            else:
                current += piece
        words.append(current)
        return " ".join(_segment(w) for w in words if w)

    return _SPACED.sub(join, text)


def _segment(run: str) -> str:
    """``run`` split into vocabulary words when it is a concatenation of them."""
    lower = _undo_leet_word(run.lower()) or run.lower()
    if lower in VOCABULARY or len(lower) > 80:
        return lower if lower in VOCABULARY else run
    best: list[list[str] | None] = [None] * (len(lower) + 1)
    best[0] = []
    for end in range(1, len(lower) + 1):
        for start in range(max(0, end - 16), end):
            prefix = best[start]
            if prefix is not None and lower[start:end] in VOCABULARY:
                candidate = [*prefix, lower[start:end]]
                current = best[end]
                if current is None or len(candidate) < len(current):
                    best[end] = candidate
    found = best[len(lower)]
    return " ".join(found) if found else run


def _undo_leetspeak(text: str) -> str:
    def fix(match: re.Match[str]) -> str:
        token = match.group()
        if not any(ch in _LEET for ch in token):
            return token
        word = _undo_leet_word(token.lower())
        if word is not None:
            return word
        # Digits inside a word ("r35tr1c710n5"): mapped even when the word is not in the vocabulary.
        letters = sum(ch.isalpha() for ch in token)
        if (
            len(token) >= 4
            and letters >= 2
            and not token.isupper()  # identifiers such as AKIAIOSFODNN7EXAMPLE
            and all(ch.isalpha() or ch in _LEET_DIGITS for ch in token)
        ):
            return "".join(_LEET_DIGITS.get(ch, ch) for ch in token.lower())
        return token

    return _LEET_TOKEN.sub(fix, text)


@lru_cache(maxsize=4096)
def _undo_leet_word(token: str) -> str | None:
    """The vocabulary word ``token`` spells in leetspeak, if any."""
    stripped = token.rstrip("!")
    candidates = [""]
    for ch in stripped:
        options = _LEET.get(ch, ch)
        candidates = [c + o for c in candidates for o in options]
        if len(candidates) > 64:
            return None
    for candidate in candidates:
        if candidate in VOCABULARY:
            return candidate + token[len(stripped) :]
    return None
