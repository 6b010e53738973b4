"""A request's trace: one span per stage with its timing, decision and attributes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

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

    def decide(self, decision: str, **attributes: JSONValue) -> None:
        """Record what the stage decided and why."""
        self.decision = decision
        self.attributes.update(attributes)

    def set(self, **attributes: JSONValue) -> None:
        """Add attributes."""
        self.attributes.update(attributes)

    def to_dict(self) -> dict[str, JSONValue]:
        """JSON form."""
        return {
            "name": self.name,
            "start_ms": round(self.start_ms, 3),
            "duration_ms": round(self.duration_ms, 3),
            "status": self.status,
            "decision": self.decision,
            "attributes": self.attributes,
        }


@dataclass(kw_only=True)
class Trace:
    """Every span of one request, in order, with request-level attributes."""

    request_id: str
    started_at: float = field(default_factory=time.time)
    spans: list[Span] = field(default_factory=list)
    attributes: dict[str, JSONValue] = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def elapsed_ms(self) -> float:
        """Milliseconds since the request started."""
        return (time.perf_counter() - self._t0) * 1000.0

    @contextmanager
    def span(self, name: str) -> Iterator[Span]:
        """Open a span; it is closed with its duration, and marked ``error`` if the body raises."""
        span = Span(name=name, start_ms=self.elapsed_ms())
        self.spans.append(span)
        started = time.perf_counter()
        try:
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
            "started_at": self.started_at,
            "attributes": self.attributes,
            "spans": [s.to_dict() for s in self.spans],
        }
