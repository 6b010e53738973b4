"""Every request reaches a real OTLP receiver (Arize Phoenix) as OpenTelemetry spans with the GenAI attributes,
inside the caller's W3C trace, and the upstream model server receives the model call's span as its parent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import RunningServer, auth, small_project, start_server, stop_server
from tests.support.fault_upstream import FaultUpstream
from tests.support.phoenix import PhoenixServer, phoenix_server  # noqa: F401  (fixture)

CONTRACT = """
name: otel-acme
cost: {{max_usd_per_request: 1.0}}
models:
  - {{name: extractive, provider: extractive, tier: extractive}}
  - name: upstream
    provider: openai_compatible
    base_url: {url}
    upstream_model: fake-gpt
    tier: small
    timeouts: {{connect_s: 1, first_token_s: 5, stall_s: 5, total_s: 10}}
    retries: {{max_attempts: 1}}
    price: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}
routing:
  cache: {{exact: false, semantic: false}}
apps:
  - {{name: default}}
  - {{name: chat, retrieval: false}}
sources:
  - {{name: all-staff, path: all-staff, groups: [everyone]}}
"""

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with FaultUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Any,
    upstream: FaultUpstream,
    phoenix_server: PhoenixServer,  # noqa: F811
) -> Iterator[tuple[RunningServer, str]]:
    root = tmp_path_factory.mktemp("otel") / "p"
    small_project(root, embedder, folders=["all-staff"], contract=CONTRACT.format(url=upstream.base_url))
    from keel.identity import KeyStore
    from tests.support.database import database_at

    db = database_at(root / ".keel" / "keel.db")
    key = KeyStore(db).create(principal_id="ana@example.com", tenant="acme", groups=[], roles=["user"]).secret
    db.close()
    server = start_server(
        root,
        Path(tmp_path_factory.mktemp("logs")) / "otel.log",
        extra_env={"KEEL_OTLP_ENDPOINT": phoenix_server.otlp_endpoint},
    )
    yield server, key
    stop_server(server)


def test_a_request_arrives_as_a_span_tree_under_the_callers_span(
    served: tuple[RunningServer, str],
    phoenix_server: PhoenixServer,  # noqa: F811
    upstream: FaultUpstream,
) -> None:
    server, key = served
    headers = {**auth(key), "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
    body = {
        "model": "chat",
        "messages": [{"role": "user", "content": "Write one sentence about onboarding. My phone is +1 415 555 0100."}],
    }
    response = httpx.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    spans = phoenix_server.spans("default", trace_id=CALLER_TRACE, min_count=6, timeout_s=60)
    by_name = {s.name: s for s in spans}
    root = by_name["keel chat"]
    assert root.parent_id == CALLER_SPAN, "the request span hangs under the caller's span"
    chat = by_name["chat fake-gpt"]
    generate = by_name["keel.generate"]
    assert chat.parent_id == generate.span_id and generate.parent_id == root.span_id
    assert {"keel.identity", "keel.release", "keel.guard_in", "keel.respond"} <= set(by_name)
    attributes = chat.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == "fake-gpt"
    assert int(str(attributes["gen_ai.usage.input_tokens"])) == 100
    assert int(str(attributes["gen_ai.usage.output_tokens"])) > 0
    assert root.attributes["keel.app"] == "chat" and root.attributes["keel.mode"] == "answer"
    assert root.attributes["keel.request_id"] == response.json()["keel"]["request_id"]
    # The upstream model server was called with the model call's span as its parent.
    assert f"00-{CALLER_TRACE}-{chat.span_id}-01" in upstream.state.traceparents
    # Personal data never reaches the receiver.
    everything = repr([s.attributes for s in spans])
    assert "555 0100" not in everything and "ana@example.com" not in everything
    assert "[REDACTED:phone]" in str(root.attributes["keel.question"])


def test_a_retrieval_request_has_a_retrieval_span_and_a_trace_of_its_own(
    served: tuple[RunningServer, str],
    phoenix_server: PhoenixServer,  # noqa: F811
) -> None:
    server, key = served
    response = httpx.post(
        server.url + "/v1/ask",
        json={"question": "How do I book a meeting room?", "tags": ["otel-test"]},
        headers=auth(key),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    rid = response.json()["request_id"]
    trace = httpx.get(server.url + f"/v1/traces/{rid}", headers=auth(key), timeout=30).json()
    trace_id = trace["trace_id"]
    assert trace_id != CALLER_TRACE and len(trace_id) == 32, "no traceparent: a new trace"
    spans = phoenix_server.spans("default", trace_id=trace_id, min_count=5, timeout_s=60)
    by_name = {s.name: s for s in spans}
    retrieval = by_name["retrieval"].attributes
    assert retrieval["gen_ai.operation.name"] == "retrieval"
    assert retrieval["gen_ai.data_source.id"] == f"keel-index@{response.json()['index_version']}"
    assert int(str(retrieval["keel.retrieval.hits"])) >= 1
    root = by_name["keel ask"]
    assert root.parent_id is None
    assert root.attributes["keel.mode"] == response.json()["mode"]
    assert "otel-test" in str(root.attributes["keel.tags"])
    assert root.attributes["keel.release"] == trace["response"]["release"]
