"""W3C trace context: ids, the ``traceparent`` header, and the span that is current now.

A request joins the caller's distributed trace when it sends a valid ``traceparent``
header (https://www.w3.org/TR/trace-context/); otherwise it starts a new one. While a
stage or a model call runs, its span is the *current* one (a context variable, so it
follows the request across ``await``), and outgoing calls to upstream providers carry
``traceparent`` naming it, so the upstream's own spans hang under Keel's.
"""

from __future__ import annotations

import contextvars
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "TraceContext",
    "activate",
    "current_traceparent",
    "new_span_id",
    "new_trace_id",
    "parse_traceparent",
]

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16


def new_trace_id() -> str:
    """A random 16-byte trace id as 32 lower-case hex digits.

    Trace and span ids name spans, they grant nothing, so they come from the fast
    pseudo-random generator (reseeded after a fork) rather than the OS's: a request makes
    one per stage. Request ids, which callers present, stay cryptographically random.
    """
    while True:
        value = f"{random.getrandbits(128):032x}"
        if value != _INVALID_TRACE_ID:
            return value


def new_span_id() -> str:
    """A random 8-byte span id as 16 lower-case hex digits."""
    while True:
        value = f"{random.getrandbits(64):016x}"
        if value != _INVALID_SPAN_ID:
            return value


@dataclass(frozen=True, kw_only=True)
class TraceContext:
    """A position in a distributed trace: the trace, one span in it, and whether it is sampled."""

    trace_id: str
    span_id: str
    sampled: bool = True

    def traceparent(self) -> str:
        """This position as a ``traceparent`` header value."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def parse_traceparent(value: str | None) -> TraceContext | None:
    """The caller's trace position, or ``None`` when the header is missing or invalid.

    An invalid header is ignored rather than refused: the W3C recommendation is to
    start a new trace, and a tracing mistake must never fail a business request.
    Version ``ff`` and all-zero ids are invalid; a future version is read by its
    first four fields, as the specification asks.
    """
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
        return None
    return TraceContext(trace_id=trace_id, span_id=span_id, sampled=bool(int(flags, 16) & 1))


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar("keel_trace_context", default=None)


@contextmanager
def activate(context: TraceContext) -> Iterator[None]:
    """Make ``context`` the current span for the body (restored afterwards)."""
    token = _current.set(context)
    try:
        yield
    finally:
        _current.reset(token)


def current_traceparent() -> str | None:
    """The ``traceparent`` header for an outgoing call made now, or ``None`` outside any request."""
    context = _current.get()
    return context.traceparent() if context is not None else None
