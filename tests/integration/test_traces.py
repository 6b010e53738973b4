"""Every request is traced: each stage with its timing and decision, retrieval scores, versions, usage."""

from __future__ import annotations

import httpx

from tests.integration.conftest import SampleProject, auth

STAGES = ["identity", "release", "guard_in", "retrieve", "route", "generate", "guard_out", "respond"]


def test_answer_trace_has_every_stage_with_timing_and_decision(
    client: httpx.Client, sample_project: SampleProject
) -> None:
    key = sample_project.keys["fiona.fin"]
    question = "How much is the home office allowance?"  # asked nowhere else: no cache hit
    body = client.post("/v1/ask", json={"question": question}, headers=auth(key)).json()
    assert body["mode"] == "answer" and body["cache"] == "miss"
    trace = client.get(f"/v1/traces/{body['request_id']}", headers=auth(key)).json()
    spans = trace["spans"]
    assert [s["name"] for s in spans] == STAGES
    for span in spans:
        assert span["status"] == "ok"
        assert span["decision"]
        assert span["duration_ms"] >= 0 and span["start_ms"] >= 0
    retrieve = next(s for s in spans if s["name"] == "retrieve")
    hits = retrieve["attributes"]["hits"]
    assert hits and {"lexical_score", "dense_score", "fused_score", "chunk_id"} <= set(hits[0])
    assert retrieve["attributes"]["index_version"] == body["index_version"]
    response = trace["response"]
    assert response["mode"] == "answer"
    assert response["model"] == body["model"] and response["prompt"] == "answer@2"
    assert response["route"]["candidates"][0] == "extractive", "a short look-up starts at the extractive tier"
    assert "lookup" in response["route"]["reason"]
    assert response["usage"] == body["usage"]
    assert response["cost_usd"] == body["cost_usd"]
    assert [c["chunk_id"] for c in response["citations"]] == [c["id"] for c in body["citations"]]


def test_no_answer_trace_shows_skipped_stages_and_the_reason(
    client: httpx.Client, sample_project: SampleProject
) -> None:
    key = sample_project.keys["sam.staff"]
    body = client.post(
        "/v1/ask", json={"question": "What is the name of the chief executive's pet iguana?"}, headers=auth(key)
    ).json()
    assert body["mode"] == "no_answer"
    trace = client.get(f"/v1/traces/{body['request_id']}", headers=auth(key)).json()
    by_name = {s["name"]: s for s in trace["spans"]}
    assert by_name["route"]["decision"] == "no_answer"
    assert "no evidence" in by_name["route"]["attributes"]["reason"]
    assert by_name["generate"]["status"] == "skipped"
    assert body["usage"] == {"prompt_tokens": 0, "completion_tokens": 0}


def test_failed_request_is_traced_too(client: httpx.Client, sample_project: SampleProject) -> None:
    key = sample_project.keys["sam.staff"]
    response = client.post("/v1/ask", json={"question": "   "}, headers={**auth(key), "X-Request-ID": "trace-failed-1"})
    assert response.status_code == 400
    trace = client.get("/v1/traces/trace-failed-1", headers=auth(key)).json()
    assert trace["status"] == 400
    assert trace["attributes"]["error"] == "question_empty"
    assert next(s for s in trace["spans"] if s["name"] == "guard_in")["status"] == "error"


def test_pii_in_the_question_is_redacted_in_the_trace(client: httpx.Client, sample_project: SampleProject) -> None:
    key = sample_project.keys["sam.staff"]
    question = "My email is jane.roe@example.com and my phone +44 20 7946 0958: how much leave do I get?"
    body = client.post("/v1/ask", json={"question": question}, headers=auth(key)).json()
    trace = client.get(f"/v1/traces/{body['request_id']}", headers=auth(key))
    assert "jane.roe@example.com" not in trace.text and "7946 0958" not in trace.text
    assert "[REDACTED:email]" in trace.json()["request"]["question"]


def test_readyz_reports_each_component(client: httpx.Client) -> None:
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert {"store", "index", "embedder", "model:smollm2-135m"} <= set(ready["components"])
    assert client.get("/healthz").json() == {"status": "ok"}
