"""A recorded trace as OpenTelemetry spans, named after the GenAI semantic conventions.

One request becomes a tree of spans in the request's W3C trace:

* the request span ``keel {endpoint}`` (kind ``SERVER``) under the caller's span,
  with Keel's attributes: app, mode, cache, release, prompt, index version, the
  route and its reason, every guard verdict, degradations, tags, cost;
* one span per pipeline stage (kind ``INTERNAL``), named ``keel.{stage}``, except
  retrieval, which follows the GenAI retrieval convention: ``retrieval`` with
  ``gen_ai.operation.name``, ``gen_ai.data_source.id`` and ``gen_ai.retrieval.top_k``;
* one span per model call (kind ``CLIENT``), ``chat {model}``, with
  ``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
  ``gen_ai.response.model``, ``gen_ai.usage.input_tokens`` and
  ``gen_ai.usage.output_tokens``.

Everything is built from the stored trace, which is already PII-redacted where it
holds text; every string attribute is passed through the redactor again, and the
question and answer are included only when content capture is on. Attribute values
are limited in size, and structured values are sent as JSON strings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from keel.tracing.store import TraceRecord

__all__ = ["SpanKind", "SpanRecord", "genai_spans"]

SpanKind = Literal["server", "internal", "client"]
AttributeValue = str | bool | int | float | list[str] | list[int] | list[float] | list[bool]

_MAX_STRING = 4096
_PROVIDER_NAMES = {"local": "llama.cpp", "openai_compatible": "openai", "extractive": "keel.extractive"}
"""``gen_ai.provider.name`` per provider kind (an OpenAI-compatible upstream speaks OpenAI's API)."""


@dataclass(frozen=True, kw_only=True)
class SpanRecord:
    """One span to export, independent of any OpenTelemetry SDK."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: SpanKind
    start_ns: int
    end_ns: int
    error: str | None = None
    """``None``: the operation succeeded; otherwise a short description of the failure."""
    attributes: dict[str, AttributeValue] = field(default_factory=dict)


def genai_spans(record: TraceRecord, *, redact: Callable[[str], str], capture_content: bool = True) -> list[SpanRecord]:
    """The request span, its stage spans and their model-call spans, parents first."""
    data = record.data
    trace_id = data.get("trace_id") or record.trace_id
    root_id = data.get("span_id")
    if not trace_id or not root_id:
        return []  # a trace recorded before trace ids existed
    started = float(data.get("started_at") or record.created_at - record.latency_ms / 1000)
    response: dict[str, Any] = data.get("response") or {}
    request: dict[str, Any] = data.get("request") or {}
    values = _Attributes(redact)

    def ns(offset_ms: float) -> int:
        return int((started + offset_ms / 1000.0) * 1e9)

    root = values.build(
        {
            "keel.request_id": record.request_id,
            "keel.app": record.app,
            "keel.endpoint": record.endpoint,
            "keel.tenant": record.tenant,
            "enduser.id": record.principal_id,
            "keel.mode": response.get("mode"),
            "keel.cache": response.get("cache"),
            "keel.release": response.get("release"),
            "keel.prompt": response.get("prompt"),
            "keel.index_version": response.get("index_version"),
            "keel.answer_strategy": response.get("answer_strategy"),
            "keel.route.model": (response.get("route") or {}).get("model"),
            "keel.route.reason": (response.get("route") or {}).get("reason"),
            "keel.route.candidates": (response.get("route") or {}).get("candidates"),
            "keel.degraded": [f"{d['component']}: {d['reason']}" for d in response.get("degraded") or []],
            "keel.tags": request.get("tags"),
            "keel.cost_usd": response.get("cost_usd"),
            "keel.citations": [c["chunk_id"] for c in response.get("citations") or []],
            "gen_ai.response.model": response.get("model"),
            "gen_ai.usage.input_tokens": (response.get("usage") or {}).get("prompt_tokens"),
            "gen_ai.usage.output_tokens": (response.get("usage") or {}).get("completion_tokens"),
            "http.response.status_code": record.status,
            "error.type": data.get("attributes", {}).get("error"),
            **{f"keel.guard.{k}": v for k, v in (response.get("guard_verdicts") or {}).items()},
            **(
                {"keel.question": request.get("question"), "keel.answer": response.get("answer")}
                if capture_content
                else {}
            ),
        }
    )
    error = data.get("attributes", {}).get("error")
    spans = [
        SpanRecord(
            name=f"keel {record.endpoint}",
            trace_id=trace_id,
            span_id=root_id,
            parent_span_id=data.get("parent_span_id"),
            kind="server",
            start_ns=ns(0.0),
            end_ns=ns(record.latency_ms),
            error=str(error) if error else None,
            attributes=root,
        )
    ]
    for stage in data.get("spans") or []:
        if stage.get("status") == "skipped" or not stage.get("span_id"):
            continue
        spans.append(_stage_span(stage, trace_id, root_id, ns, values, record))
        for call in stage.get("children") or []:
            spans.append(_model_span(call, trace_id, stage["span_id"], ns, values))
    return spans


def _stage_span(
    stage: Mapping[str, Any],
    trace_id: str,
    parent: str,
    ns: Callable[[float], int],
    values: _Attributes,
    record: TraceRecord,
) -> SpanRecord:
    attributes: dict[str, Any] = {"keel.stage": stage["name"], "keel.decision": stage.get("decision")}
    own = stage.get("attributes") or {}
    name = f"keel.{stage['name']}"
    if stage["name"] == "retrieve":
        name = "retrieval"
        hits = own.get("hits") or []
        attributes.update(
            {
                "gen_ai.operation.name": "retrieval",
                "gen_ai.data_source.id": f"keel-index@{own.get('index_version')}",
                "gen_ai.retrieval.top_k": (record.data.get("request") or {}).get("top_k"),
                "keel.retrieval.hits": len(hits),
                "keel.retrieval.chunk_ids": [h.get("chunk_id") for h in hits if isinstance(h, Mapping)],
                "keel.retrieval.scores": [
                    float(h["fused_score"]) for h in hits if isinstance(h, Mapping) and "fused_score" in h
                ],
            }
        )
        own = {k: v for k, v in own.items() if k != "hits"}
    attributes.update({f"keel.{k}": v for k, v in own.items() if k != "error"})
    start = float(stage.get("start_ms") or 0.0)
    return SpanRecord(
        name=name,
        trace_id=trace_id,
        span_id=stage["span_id"],
        parent_span_id=parent,
        kind="internal",
        start_ns=ns(start),
        end_ns=ns(start + float(stage.get("duration_ms") or 0.0)),
        error=str(own.get("error") or stage.get("decision")) if stage.get("status") == "error" else None,
        attributes=values.build(attributes),
    )


def _model_span(
    call: Mapping[str, Any], trace_id: str, parent: str, ns: Callable[[float], int], values: _Attributes
) -> SpanRecord:
    own = call.get("attributes") or {}
    model = own.get("upstream_model") or own.get("model") or "unknown"
    failed = call.get("status") == "error"
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _PROVIDER_NAMES.get(str(own.get("provider")), str(own.get("provider"))),
        "gen_ai.request.model": model,
        "gen_ai.response.model": None if failed else model,
        "gen_ai.request.max_tokens": own.get("max_tokens"),
        "gen_ai.request.temperature": own.get("temperature"),
        "gen_ai.usage.input_tokens": own.get("prompt_tokens"),
        "gen_ai.usage.output_tokens": own.get("completion_tokens"),
        "gen_ai.response.finish_reasons": None if failed else [own.get("finish_reason") or "stop"],
        "keel.model": own.get("model"),
        "keel.model_version": own.get("model_version"),
        "error.type": own.get("error") if failed else None,
    }
    start = float(call.get("start_ms") or 0.0)
    return SpanRecord(
        name=f"chat {model}",
        trace_id=trace_id,
        span_id=call["span_id"],
        parent_span_id=parent,
        kind="client",
        start_ns=ns(start),
        end_ns=ns(start + float(call.get("duration_ms") or 0.0)),
        error=str(own.get("error")) if failed else None,
        attributes=values.build(attributes),
    )


class _Attributes:
    """Turns loose values into OpenTelemetry attribute values: redacted, bounded, JSON for structures."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        self._redact = redact

    def build(self, raw: Mapping[str, Any]) -> dict[str, AttributeValue]:
        out: dict[str, AttributeValue] = {}
        for key, value in raw.items():
            converted = self._value(value)
            if converted is not None:
                out[key] = converted
        return out

    def _value(self, value: Any) -> AttributeValue | None:
        if value is None or value in ("", []):
            return None
        if isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return [self._text(v) for v in value]
        if isinstance(value, list | tuple) and all(isinstance(v, bool) for v in value):
            return list(value)
        if isinstance(value, list | tuple) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        ):
            return [float(v) for v in value] if any(isinstance(v, float) for v in value) else [int(v) for v in value]
        return self._text(json.dumps(value, default=str, sort_keys=True))

    def _text(self, value: str) -> str:
        clean = self._redact(value)
        return clean if len(clean) <= _MAX_STRING else clean[: _MAX_STRING - 1] + "…"
