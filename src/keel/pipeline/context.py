"""``RequestContext``: the only thing passed between pipeline stages."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from keel.contract import App, Release
from keel.identity import Principal
from keel.models.base import ChatMessage
from keel.retrieval.evidence import Evidence, PassageEvidence, QuestionTerms
from keel.retrieval.search import Hit
from keel.tracing.trace import Span, Trace

__all__ = [
    "CacheOutcome",
    "Citation",
    "Degradation",
    "Evidence",
    "Mode",
    "RequestContext",
    "RouteDecision",
    "StreamSink",
    "Usage",
]

Mode = Literal["answer", "no_answer", "sources_only", "clarify", "handoff", "refused"]
"""How a request was served."""

CacheOutcome = Literal["off", "miss", "exact", "semantic"]
"""Whether the answer came from a cache."""

StreamSink = Callable[[str], Awaitable[None]]
"""Receives answer text as it is verified, when the caller streams."""


@dataclass(frozen=True, kw_only=True)
class Citation:
    """A passage the answer relies on; every citation is readable by the caller."""

    number: int
    chunk_id: str
    doc_id: str
    title: str
    source: str
    snippet: str
    score: float


@dataclass(frozen=True, kw_only=True)
class Degradation:
    """A component that did not serve normally, and why."""

    component: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class RouteDecision:
    """Which models may serve the request, in order, or why none does."""

    model: str | None
    reason: str
    candidates: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@dataclass(kw_only=True)
class Usage:
    """Tokens used by the request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(kw_only=True)
class RequestContext:
    """Everything one request carries through the pipeline."""

    request_id: str
    endpoint: Literal["ask", "chat"]
    app: App
    question: str
    credential: str | None
    top_k: int
    trace: Trace
    history: list[ChatMessage] = field(default_factory=list)
    """Earlier chat turns (chat endpoint), oldest first; the question is the last user turn."""
    tags: tuple[str, ...] = ()
    """The caller's reporting labels (validated by the API)."""
    max_tokens: int | None = None
    temperature: float | None = None
    stream: StreamSink | None = None
    principal: Principal | None = None
    hits: list[Hit] = field(default_factory=list)
    query_vector: NDArray[np.float32] | None = None
    question_terms: QuestionTerms | None = None
    assessed: list[PassageEvidence] = field(default_factory=list)
    evidence: Evidence | None = None
    cache: CacheOutcome = "off"
    clarify_topics: list[Hit] = field(default_factory=list)
    handoff_id: str | None = None
    route: RouteDecision | None = None
    prompt_ref: str | None = None
    model: str | None = None
    answer: str = ""
    answer_strategy: str = ""
    citations: list[Citation] = field(default_factory=list)
    mode: Mode | None = None
    """Set by the stage that decides how the request is served; later stages read it."""
    degraded: list[Degradation] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    guard_verdicts: dict[str, str] = field(default_factory=dict)
    index_version: int | None = None
    release: str = ""
    """The release that served the request (its name; for an app's own pins, its prompt and index version)."""
    release_role: str = ""
    """Why that release: ``current``, ``canary``, ``shadow`` or ``override``."""
    release_override: Release | None = None
    """Serve with this release whatever the app's state (evaluations of a candidate, shadow runs)."""
    shadow: bool = False
    """A shadow copy: its answer is never returned, cached, handed off or charged to the ledger."""
    finish_reason: str = "stop"
    streamed_text: list[str] = field(default_factory=list)
    response_headers: dict[str, str] = field(default_factory=dict)
    """Headers for the HTTP response (rate-limit state)."""
    first_text_ms: float | None = None
    """Streaming only: when the first text reached the caller, since the request started."""
    token_estimate: int | None = None
    """Tokens reserved by the rate limiter, settled when the request ends."""
    span: Span | None = None
    """The current stage's span (set by the pipeline before each stage runs)."""

    @property
    def current_span(self) -> Span:
        """The running stage's span."""
        if self.span is None:  # pragma: no cover - the pipeline always sets it
            raise RuntimeError("no stage is running")
        return self.span

    async def emit(self, text: str) -> None:
        """Send verified answer text to a streaming caller (no-op otherwise)."""
        if self.stream is not None and text:
            if self.first_text_ms is None:
                self.first_text_ms = self.trace.elapsed_ms()
            self.streamed_text.append(text)
            await self.stream(text)
