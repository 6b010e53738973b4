"""A recorded trace becomes OpenTelemetry spans with the GenAI attributes, redacted."""

from __future__ import annotations

import time
from typing import Any

from keel.policy.pii import redact
from keel.tracing import Trace, TraceRecord
from keel.tracing.context import parse_traceparent
from keel.tracing.genai import genai_spans

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _record(*, model_fails: bool = False) -> TraceRecord:
    trace = Trace.joining("req_abc", parse_traceparent(CALLER))
    with trace.span("identity") as span:
        span.decide("key", principal="ana")
    with trace.span("retrieve") as span:
        span.decide(
            "evidence",
            index_version=7,
            hits=[
                {"chunk_id": "hr/leave.md#1", "fused_score": 0.031, "lexical_score": 3.2, "dense_score": 0.71},
                {"chunk_id": "hr/leave.md#2", "fused_score": 0.029, "lexical_score": 2.1, "dense_score": 0.64},
            ],
        )
    with trace.span("generate") as stage:
        try:
            with trace.span("chat smollm2", parent=stage) as call:
                call.set(
                    model="smollm2",
                    provider="local",
                    upstream_model="smollm2",
                    max_tokens=160,
                    temperature=0.1,
                    prompt_tokens=120,
                    completion_tokens=30,
                    finish_reason="stop",
                )
                if model_fails:
                    raise TimeoutError
        except TimeoutError:
            pass
        stage.decide("answer", note="mail ana@example.com for help")
    trace.skip("guard_out", "mode already decided")
    data: dict[str, Any] = trace.to_dict()
    data["request"] = {"question": "How much leave? call +1 415 555 0100", "top_k": 4, "tags": ["pilot"]}
    data["response"] = {
        "mode": "answer",
        "answer": "You get 25 days [1].",
        "cache": "miss",
        "release": "answer@2+index@7",
        "prompt": "answer@2",
        "index_version": 7,
        "model": "smollm2",
        "route": {"model": "smollm2", "reason": "explanation: small tier", "candidates": ["smollm2"]},
        "usage": {"prompt_tokens": 120, "completion_tokens": 30},
        "cost_usd": 0.000012,
        "degraded": [],
        "guard_verdicts": {"input": "pass", "output": "pass"},
        "citations": [{"chunk_id": "hr/leave.md#1"}],
    }
    return TraceRecord(
        request_id="req_abc",
        created_at=time.time(),
        principal_id="ana@example.com",
        tenant="acme",
        app="default",
        endpoint="ask",
        mode="answer",
        status=200,
        latency_ms=trace.elapsed_ms(),
        data=data,
        trace_id=trace.trace_id,
    )


def test_spans_form_one_tree_under_the_callers_span() -> None:
    record = _record()
    spans = genai_spans(record, redact=redact)
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"keel ask", "keel.identity", "retrieval", "keel.generate", "chat smollm2"}
    assert "keel.guard_out" not in by_name, "skipped stages are not exported"
    assert {s.trace_id for s in spans} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    root = by_name["keel ask"]
    assert root.parent_span_id == "00f067aa0ba902b7" and root.kind == "server"
    for name in ("keel.identity", "retrieval", "keel.generate"):
        assert by_name[name].parent_span_id == root.span_id
    assert by_name["chat smollm2"].parent_span_id == by_name["keel.generate"].span_id
    assert by_name["chat smollm2"].kind == "client"
    for span in spans:
        assert root.start_ns <= span.start_ns <= span.end_ns


def test_model_calls_and_retrieval_carry_the_genai_attributes() -> None:
    spans = {s.name: s for s in genai_spans(_record(), redact=redact)}
    chat = spans["chat smollm2"].attributes
    assert chat["gen_ai.operation.name"] == "chat"
    assert chat["gen_ai.provider.name"] == "llama.cpp"
    assert chat["gen_ai.request.model"] == chat["gen_ai.response.model"] == "smollm2"
    assert chat["gen_ai.usage.input_tokens"] == 120 and chat["gen_ai.usage.output_tokens"] == 30
    assert chat["gen_ai.response.finish_reasons"] == ["stop"]
    retrieval = spans["retrieval"].attributes
    assert retrieval["gen_ai.operation.name"] == "retrieval"
    assert retrieval["gen_ai.data_source.id"] == "keel-index@7"
    assert retrieval["gen_ai.retrieval.top_k"] == 4
    assert retrieval["keel.retrieval.chunk_ids"] == ["hr/leave.md#1", "hr/leave.md#2"]
    assert retrieval["keel.retrieval.scores"] == [0.031, 0.029]
    root = spans["keel ask"].attributes
    assert root["keel.mode"] == "answer" and root["keel.release"] == "answer@2+index@7"
    assert root["keel.route.reason"] == "explanation: small tier"
    assert root["keel.guard.input"] == "pass" and root["keel.tags"] == ["pilot"]
    assert root["gen_ai.usage.input_tokens"] == 120 and root["http.response.status_code"] == 200


def test_a_failed_model_call_is_an_error_span_without_a_response_model() -> None:
    spans = {s.name: s for s in genai_spans(_record(model_fails=True), redact=redact)}
    chat = spans["chat smollm2"]
    assert chat.error == "TimeoutError"
    assert chat.attributes["error.type"] == "TimeoutError"
    assert "gen_ai.response.model" not in chat.attributes


def test_personal_data_never_leaves_in_a_span() -> None:
    spans = genai_spans(_record(), redact=redact)
    text = repr([s.attributes for s in spans])
    assert "ana@example.com" not in text and "555 0100" not in text
    root = next(s for s in spans if s.name == "keel ask").attributes
    assert root["enduser.id"] == "[REDACTED:email]"
    assert "How much leave?" in str(root["keel.question"])


def test_content_capture_off_sends_no_question_or_answer() -> None:
    root = next(s for s in genai_spans(_record(), redact=redact, capture_content=False) if s.name == "keel ask")
    assert "keel.question" not in root.attributes and "keel.answer" not in root.attributes
    assert root.attributes["keel.mode"] == "answer"
