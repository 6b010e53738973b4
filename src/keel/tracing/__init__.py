"""Traces of every request: model, persistence."""

from keel.tracing.store import TraceRecord, TraceStore
from keel.tracing.trace import Span, Trace

__all__ = ["Span", "Trace", "TraceRecord", "TraceStore"]
