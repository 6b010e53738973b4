"""The OTLP receiver harness on its own: spans exported with the OpenTelemetry SDK come back from a real Phoenix."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

from tests.support.phoenix import PhoenixServer, phoenix_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def _provider(phoenix: PhoenixServer, resource: Mapping[str, str]) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create(dict(resource)))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=phoenix.otlp_endpoint, timeout=10)))
    return provider


@pytest.fixture
def phoenix(phoenix_server: PhoenixServer) -> PhoenixServer:  # noqa: F811
    """The session's Phoenix."""
    return phoenix_server


@pytest.fixture
def exported(phoenix: PhoenixServer) -> dict[str, str]:
    """A parent and a child span exported to project ``otlp-receiver``; their hex ids by name."""
    provider = _provider(phoenix, {"service.name": "keel", "openinference.project.name": "otlp-receiver"})
    tracer = provider.get_tracer("keel.tests")
    with (
        tracer.start_as_current_span(
            "keel.ask",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "smollm2-135m",
                "gen_ai.usage.input_tokens": 42,
                "keel.tenant": "acme",
            },
        ) as parent,
        tracer.start_as_current_span(
            "keel.retrieve", attributes={"gen_ai.operation.name": "embeddings", "keel.retrieval.chunks": 5}
        ) as child,
    ):
        child.set_status(Status(StatusCode.ERROR, "index unavailable"))
    provider.shutdown()
    return {
        "trace": format(parent.get_span_context().trace_id, "032x"),
        "keel.ask": format(parent.get_span_context().span_id, "016x"),
        "keel.retrieve": format(child.get_span_context().span_id, "016x"),
    }


def test_exported_spans_come_back_with_their_parentage(phoenix: PhoenixServer, exported: dict[str, str]) -> None:
    spans = phoenix.spans("otlp-receiver", trace_id=exported["trace"], min_count=2)

    assert [span.name for span in spans] == ["keel.ask", "keel.retrieve"]
    parent, child = spans
    assert {parent.trace_id, child.trace_id} == {exported["trace"]}
    assert (parent.span_id, child.span_id) == (exported["keel.ask"], exported["keel.retrieve"])
    assert parent.parent_id is None
    assert child.parent_id == parent.span_id
    assert parent.start_time <= child.start_time <= child.end_time <= parent.end_time
    assert (parent.status_code, child.status_code) == ("UNSET", "ERROR")
    assert child.status_message == "index unavailable"


def test_exported_attributes_come_back_with_their_types(phoenix: PhoenixServer, exported: dict[str, str]) -> None:
    parent, child = phoenix.spans("otlp-receiver", trace_id=exported["trace"], min_count=2)

    assert parent.attributes["gen_ai.operation.name"] == "chat"
    assert parent.attributes["gen_ai.request.model"] == "smollm2-135m"
    assert parent.attributes["keel.tenant"] == "acme"
    tokens = parent.attributes["gen_ai.usage.input_tokens"]
    assert tokens == 42 and isinstance(tokens, int)
    assert child.attributes["gen_ai.operation.name"] == "embeddings"
    assert child.attributes["keel.retrieval.chunks"] == 5
    # Phoenix derives OpenInference attributes and a span kind from the gen_ai.* ones.
    assert parent.attributes["llm.model_name"] == "smollm2-135m"
    assert parent.kind == "LLM"


def test_spans_without_a_project_attribute_land_in_default(phoenix: PhoenixServer) -> None:
    provider = _provider(phoenix, {"service.name": "keel-without-project"})
    with provider.get_tracer("keel.tests").start_as_current_span("keel.orphan") as span:
        pass
    provider.shutdown()

    trace_id = format(span.get_span_context().trace_id, "032x")
    [received] = phoenix.spans("default", trace_id=trace_id)
    assert received.name == "keel.orphan"
    assert "keel-without-project" not in phoenix.projects()
