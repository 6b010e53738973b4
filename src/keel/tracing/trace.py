"""A request's trace: one span per stage with its timing, decision and attributes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.tracing.context import TraceContext, activate, new_span_id, new_trace_id

__all__ = ["JSONValue", "Span", "Trace"]

JSONValue = Any
"""A value that serialises to JSON (str, number, bool, None, list, dict)."""

SpanStatus = Literal["ok", "error", "skipped"]


@dataclass(kw_only=True)
class Span:
    """One stage's record on the trace."""

    name: str
    start_ms: float
    duration_ms: float = 0.0
    status: SpanStatus = "ok"
    decision: str = ""
    attributes: dict[str, JSONValue] = field(default_factory=dict)
    span_id: str = field(default_factory=new_span_id)
    children: list[Span] = field(default_factory=list)
    """Operations inside this stage that have spans of their own (model calls)."""

    def decide(self, decision: str, **attributes: JSONValue) -> None:
        """Record what the stage decided and why."""
        self.decision = decision
        self.attributes.update(attributes)

    def set(self, **attributes: JSONValue) -> None:
        """Add attributes."""
        self.attributes.update(attributes)

    def to_dict(self) -> dict[str, JSONValue]:
        """JSON form."""
        out: dict[str, JSONValue] = {
            "name": self.name,
            "span_id": self.span_id,
            "start_ms": round(self.start_ms, 3),
            "duration_ms": round(self.duration_ms, 3),
            "status": self.status,
            "decision": self.decision,
            "attributes": self.attributes,
        }
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out


@dataclass(kw_only=True)
class Trace:
    """Every span of one request, in order, with request-level attributes.

    The trace has a W3C trace id (the caller's, when it sent ``traceparent``) and a
    root span of its own (``span_id``) under the caller's span (``parent_span_id``);
    stage spans are children of the root, model calls children of their stage.
    """

    request_id: str
    trace_id: str = field(default_factory=new_trace_id)
    span_id: str = field(default_factory=new_span_id)
    parent_span_id: str | None = None
    sampled: bool = True
    started_at: float = field(default_factory=time.time)
    spans: list[Span] = field(default_factory=list)
    attributes: dict[str, JSONValue] = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def elapsed_ms(self) -> float:
        """Milliseconds since the request started."""
        return (time.perf_counter() - self._t0) * 1000.0

    @classmethod
    def joining(cls, request_id: str, caller: TraceContext | None) -> Trace:
        """A trace for ``request_id``, inside the caller's distributed trace when there is one."""
        if caller is None:
            return cls(request_id=request_id)
        return cls(
            request_id=request_id, trace_id=caller.trace_id, parent_span_id=caller.span_id, sampled=caller.sampled
        )

    @contextmanager
    def span(self, name: str, *, parent: Span | None = None) -> Iterator[Span]:
        """Open a span (a stage's, or a child of ``parent``); it is closed with its duration.

        The span is marked ``error`` if the body raises, and is the current span for
        outgoing calls (``traceparent``) while the body runs.
        """
        span = Span(name=name, start_ms=self.elapsed_ms())
        (parent.children if parent is not None else self.spans).append(span)
        started = time.perf_counter()
        try:
            with activate(TraceContext(trace_id=self.trace_id, span_id=span.span_id, sampled=self.sampled)):
                yield span
        except BaseException as exc:
            span.status = "error"
            span.attributes.setdefault("error", getattr(exc, "code", type(exc).__name__))
            raise
        finally:
            span.duration_ms = (time.perf_counter() - started) * 1000.0

    def skip(self, name: str, reason: str) -> None:
        """Record a stage that did not run."""
        self.spans.append(Span(name=name, start_ms=self.elapsed_ms(), status="skipped", decision=reason))

    def to_dict(self) -> dict[str, JSONValue]:
        """JSON form."""
        return {
            "request_id": self.request_id,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "sampled": self.sampled,
            "started_at": self.started_at,
            "attributes": self.attributes,
            "spans": [s.to_dict() for s in self.spans],
        }
