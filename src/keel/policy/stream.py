"""PII redaction of streamed text with a short hold-back.

A PII item can arrive split across stream pieces, so the last ``HOLD`` characters
are held until more text arrives (or the stream ends); text before that is redacted
and released, never cutting through an item that may still be growing.
"""

from __future__ import annotations

from keel.policy.pii import PiiRecognizer, replace_matches

__all__ = ["HOLD", "StreamRedactor"]

HOLD = 64
"""Longest tail held back: longer than any phone number, card number, IBAN or e-mail seen in practice."""


class StreamRedactor:
    """Feeds stream pieces in, gets redacted text out, in order."""

    def __init__(self, recognizer: PiiRecognizer) -> None:
        self._recognizer = recognizer
        self._buffer = ""

    def feed(self, piece: str) -> str:
        """Add ``piece``; return the text that is now safe to release."""
        self._buffer += piece
        if len(self._buffer) <= HOLD:
            return ""
        cut = len(self._buffer) - HOLD
        matches = self._recognizer.find(self._buffer)
        for m in matches:
            if m.start < cut < m.end:
                cut = m.start
                break
        released = self._buffer[:cut]
        self._buffer = self._buffer[cut:]
        # The items found in the whole buffer, seen with the text around them, that lie in the released part.
        return replace_matches(released, [m for m in matches if m.end <= cut])

    def finish(self) -> str:
        """The rest of the text, redacted."""
        rest, self._buffer = self._buffer, ""
        return self._recognizer.redact(rest)
