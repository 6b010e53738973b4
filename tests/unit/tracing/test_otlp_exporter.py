"""The OTLP exporter: spans leave off the request path, with the trace's ids; a full queue drops, never blocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from keel.policy.pii import redact
from keel.tracing import Trace, TraceRecord
from keel.tracing.otlp import OtlpExporter


def _record(n: int, *, sampled: bool = True) -> TraceRecord:
    trace = Trace(request_id=f"req_{n}", sampled=sampled)
    with trace.span("identity") as span:
        span.decide("key")
    data = trace.to_dict()
    data["request"], data["response"] = {"question": "q"}, {"mode": "answer"}
    return TraceRecord(
        request_id=f"req_{n}",
        created_at=time.time(),
        principal_id="p",
        tenant="t",
        app="default",
        endpoint="ask",
        mode="answer",
        status=200,
        latency_ms=trace.elapsed_ms(),
        data=data,
        trace_id=trace.trace_id,
    )


def _exporter(inner: SpanExporter, **kwargs: int) -> OtlpExporter:
    return OtlpExporter(
        "http://127.0.0.1:9/v1/traces",
        service_name="acme",
        service_version="0.1.0",
        redact=redact,
        exporter=inner,
        **kwargs,  # type: ignore[arg-type]
    )


def test_every_submitted_trace_arrives_with_its_ids_and_resource() -> None:
    memory = InMemorySpanExporter()
    exporter = _exporter(memory)
    records = [_record(n) for n in range(5)]
    for r in records:
        exporter.submit(r)
    exporter.close()
    spans = memory.get_finished_spans()
    assert len(spans) == 10 and exporter.exported == 10
    roots = {format(s.context.trace_id, "032x"): s for s in spans if s.name == "keel ask"}
    assert set(roots) == {r.trace_id for r in records}
    for span in spans:
        assert span.resource.attributes["service.name"] == "acme"
        if span.name == "keel.identity":
            root = roots[format(span.context.trace_id, "032x")]
            assert span.parent is not None and span.parent.span_id == root.context.span_id


def test_unsampled_requests_are_not_exported() -> None:
    memory = InMemorySpanExporter()
    exporter = _exporter(memory)
    exporter.submit(_record(1, sampled=False))
    exporter.close()
    assert memory.get_finished_spans() == ()


class _Stuck(SpanExporter):
    """A receiver that does not answer until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.received = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        self.received += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_a_stuck_receiver_makes_the_queue_drop_instead_of_blocking_requests() -> None:
    stuck = _Stuck()
    exporter = _exporter(stuck, max_queue=4, batch_size=1)
    started = time.perf_counter()
    for n in range(50):
        exporter.submit(_record(n))
    elapsed = time.perf_counter() - started
    assert exporter.dropped >= 40, "records beyond the queue are dropped"
    assert elapsed < 5, "submit never waits for the receiver"
    stuck.release.set()
    exporter.close()
    assert stuck.received == 2 * (50 - exporter.dropped)


def test_a_receiver_that_refuses_is_counted_not_raised() -> None:
    class Refusing(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.FAILURE

    exporter = _exporter(Refusing())
    exporter.submit(_record(1))
    exporter.close()
    assert exporter.failed == 2 and exporter.exported == 0


def test_shutdown_never_waits_long_for_a_receiver_that_is_away() -> None:
    stuck = _Stuck()
    exporter = _exporter(stuck, max_queue=8, batch_size=1)
    for n in range(8):
        exporter.submit(_record(n))
    started = time.perf_counter()
    exporter.close(timeout_s=0.5)
    assert time.perf_counter() - started < 9, "close gives up on the receiver after its deadline"
    exporter._thread.join(5)  # the receiver answers at last (shut down): what is left is not sent
    assert stuck.received <= 2
    assert exporter.dropped >= 1, "what could not be sent in time is counted as dropped"
