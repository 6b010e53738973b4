"""guard_in: clean the question and check it against the input policy."""

from __future__ import annotations

import re
import unicodedata
from typing import ClassVar

from keel.contract import PolicySettings
from keel.errors import InvalidRequest
from keel.pipeline.context import RequestContext

__all__ = ["InputGuardStage", "sanitize_question"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_INJECTION = [
    re.compile(p, re.IGNORECASE)
    for p in (
        r"\bignore (?:all |any )?(?:the )?(?:previous|prior|above|earlier) (?:instructions|rules|prompts?)\b",
        r"\b(?:reveal|print|show|repeat) (?:me )?(?:your|the) (?:system prompt|instructions|hidden prompt)\b",
        r"\byou are now (?:in )?(?:developer|dan|jailbreak) mode\b",
        r"\bdisregard (?:your|the|all) (?:rules|guidelines|instructions|policies)\b",
    )
]


def sanitize_question(text: str) -> str:
    """Normalise Unicode (NFKC), drop control and invisible characters, collapse white space."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


class InputGuardStage:
    """Rejects empty or oversized questions and flags known injection phrasing."""

    name: ClassVar[str] = "guard_in"
    always_runs: ClassVar[bool] = False

    def __init__(self, policy: PolicySettings) -> None:
        self._policy = policy

    async def run(self, ctx: RequestContext) -> None:
        """Sanitise ``ctx.question`` and record the verdict."""
        question = sanitize_question(ctx.question)
        if not question:
            raise InvalidRequest("The question is empty.", code="question_empty")
        if len(question) > self._policy.max_question_chars:
            raise InvalidRequest(
                f"The question is {len(question)} characters long; the limit is {self._policy.max_question_chars}.",
                code="question_too_long",
            )
        flagged = [p.pattern for p in _INJECTION if p.search(question)]
        verdict = "flag" if flagged else "pass"
        ctx.guard_verdicts["input"] = verdict
        changed = question != ctx.question
        ctx.question = question
        ctx.current_span.decide(
            verdict,
            chars=len(question),
            changed_by_sanitising=changed,
            injection_patterns=len(flagged),
        )
