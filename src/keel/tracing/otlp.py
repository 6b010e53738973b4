"""Export finished traces over OTLP/HTTP to any OpenTelemetry receiver.

The request path only queues the trace record (a bounded queue: when the receiver is
slow or away, the newest records are dropped and counted, never waited for). One
thread turns queued records into spans (:mod:`keel.tracing.genai`) and sends them in
batches with the OpenTelemetry SDK's OTLP exporter, which retries transient failures.
``close`` sends what is queued before the process exits, within a deadline. Telemetry is best effort by
design: the trace store, not this export, is the record of every request.

The OpenTelemetry SDK is imported only when an exporter is built, so a Keel without
``KEEL_OTLP_ENDPOINT`` never loads it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from keel.tracing.genai import SpanRecord, genai_spans
from keel.tracing.store import TraceRecord

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["OtlpExporter"]

log = logging.getLogger(__name__)

_STOP = object()


class OtlpExporter:
    """Sends every finished trace as OpenTelemetry spans, off the response path."""

    def __init__(
        self,
        endpoint: str,
        *,
        service_name: str,
        service_version: str,
        redact: Callable[[str], str],
        headers: Mapping[str, str] | None = None,
        capture_content: bool = True,
        max_queue: int = 4096,
        batch_size: int = 256,
        timeout_s: float = 10.0,
        exporter: SpanExporter | None = None,
    ) -> None:
        from opentelemetry.sdk.resources import Resource

        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=endpoint, headers=dict(headers or {}), timeout=timeout_s)
        self._exporter = exporter
        self._resource = Resource.create(
            {"service.name": service_name, "service.version": service_version, "telemetry.sdk.name": "keel"}
        )
        self._redact = redact
        self._capture_content = capture_content
        self._batch_size = batch_size
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self.dropped = 0
        """Records not exported because the queue was full."""
        self.failed = 0
        """Spans the receiver did not accept (after the exporter's own retries)."""
        self.exported = 0
        """Spans the receiver accepted."""
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._loop, name="keel-otlp-exporter", daemon=True)
        self._thread.start()

    def submit(self, record: TraceRecord) -> None:
        """Queue ``record`` for export; returns at once (drops it when the queue is full)."""
        if not record.data.get("sampled", True):
            return
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._lock:
                self.dropped += 1

    def flush(self) -> None:
        """Block until everything queued so far has been sent (or has failed)."""
        self._queue.join()

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued within ``timeout_s``, then stop: a receiver that is away never holds up a shutdown."""
        self._deadline = time.monotonic() + timeout_s
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=timeout_s)
            self._thread.join(timeout=max(0.0, self._deadline - time.monotonic()) + 1.0)
        self._exporter.shutdown()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [item for item in batch if item is not _STOP]
            try:
                if records:
                    self._send(records)
            except Exception:  # telemetry must never take the service down
                log.exception("OTLP export of %d trace(s) failed", len(records))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(records) != len(batch):
                return

    def _send(self, records: Sequence[TraceRecord]) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        if self._deadline is not None and time.monotonic() > self._deadline:
            with self._lock:
                self.dropped += len(records)  # shutting down and out of time: not waiting for the receiver
            return

        spans = [
            self._readable(span)
            for record in records
            for span in genai_spans(record, redact=self._redact, capture_content=self._capture_content)
        ]
        if not spans:
            return
        result = self._exporter.export(spans)
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        if result is not SpanExportResult.SUCCESS:
            log.warning("the OTLP receiver did not accept %d span(s)", len(spans))

    def _readable(self, span: SpanRecord) -> Any:
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        flags = TraceFlags(TraceFlags.SAMPLED)
        context = SpanContext(int(span.trace_id, 16), int(span.span_id, 16), is_remote=False, trace_flags=flags)
        parent = (
            SpanContext(int(span.trace_id, 16), int(span.parent_span_id, 16), is_remote=True, trace_flags=flags)
            if span.parent_span_id
            else None
        )
        kind = {"server": SpanKind.SERVER, "client": SpanKind.CLIENT, "internal": SpanKind.INTERNAL}[span.kind]
        status = Status(StatusCode.ERROR, span.error) if span.error else Status(StatusCode.OK)
        return ReadableSpan(
            name=span.name,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=span.attributes,
            kind=kind,
            status=status,
            start_time=span.start_ns,
            end_time=max(span.end_ns, span.start_ns),
        )
