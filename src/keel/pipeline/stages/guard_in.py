"""guard_in: clean the question and hold it to the input policy.

Order: sanitise (Unicode normalisation, control and invisible characters), size
limits in characters and tokens, prompt-injection detection with the contract's
action (block, flag or strip), then blocked topics. A refused question never reaches
retrieval or a model; the caller gets mode ``refused`` with the policy's message.
"""

from __future__ import annotations

import re
import unicodedata
from typing import ClassVar

from keel.contract import PolicySettings
from keel.errors import InvalidRequest
from keel.pipeline.context import RequestContext
from keel.policy.injection import InjectionDetector
from keel.policy.topics import TopicMatcher

__all__ = ["InputGuardStage", "count_tokens", "sanitize_question"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def sanitize_question(text: str) -> str:
    """Normalise Unicode (NFKC), drop control and invisible characters, collapse white space."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def count_tokens(text: str) -> int:
    """Tokens as a model counts them, to within a small factor: words, numbers and punctuation marks."""
    return sum(1 + len(m.group()) // 8 for m in _TOKEN.finditer(text))


class InputGuardStage:
    """Rejects empty or oversized questions, and refuses, flags or strips attacks and blocked topics."""

    name: ClassVar[str] = "guard_in"
    always_runs: ClassVar[bool] = False

    def __init__(self, policy: PolicySettings, *, detector: InjectionDetector, topics: TopicMatcher) -> None:
        self._policy = policy
        self._detector = detector
        self._topics = topics

    async def run(self, ctx: RequestContext) -> None:
        """Sanitise ``ctx.question`` and record the verdict."""
        span = ctx.current_span
        original = ctx.question
        question = sanitize_question(original)
        if not question:
            raise InvalidRequest("The question is empty.", code="question_empty")
        if len(question) > self._policy.max_question_chars:
            raise InvalidRequest(
                f"The question is {len(question)} characters long; the limit is {self._policy.max_question_chars}.",
                code="question_too_long",
            )
        tokens = count_tokens(question)
        if tokens > self._policy.max_question_tokens:
            raise InvalidRequest(
                f"The question is about {tokens} tokens long; the limit is {self._policy.max_question_tokens}.",
                code="question_too_long",
            )
        ctx.question = question
        scan = self._detector.scan(question)
        details: dict[str, object] = {
            "chars": len(question),
            "tokens": tokens,
            "changed_by_sanitising": question != original,
            "injection_score": round(scan.score, 3),
            "injection_reasons": list(scan.reasons),
        }
        verdict = "pass"
        if scan.is_attack:
            action = self._policy.injection.action
            if action == "block":
                self._refuse(ctx, "blocked:injection", self._policy.refusal_message)
                span.decide("blocked:injection", **details)
                return
            if action == "strip":
                stripped = scan.stripped(question).strip()
                if not stripped or self._detector.scan(stripped).is_attack:
                    self._refuse(ctx, "blocked:injection", self._policy.refusal_message)
                    span.decide("blocked:injection", stripped_to_nothing=True, **details)
                    return
                ctx.question = stripped
                verdict = "stripped:injection"
            else:
                verdict = "flagged:injection"
        topic = self._topics.match(ctx.question)
        if topic is not None:
            self._refuse(ctx, f"blocked:topic:{topic.name}", topic.message)
            span.decide(f"blocked:topic:{topic.name}", **details)
            return
        ctx.guard_verdicts["input"] = verdict
        span.decide(verdict, **details)

    @staticmethod
    def _refuse(ctx: RequestContext, verdict: str, message: str) -> None:
        ctx.guard_verdicts["input"] = verdict
        ctx.mode = "refused"
        ctx.answer = message
