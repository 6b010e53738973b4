"""Principals never get anything of a document outside their groups: not in answers,
citations, snippets, streamed chunks, traces or error messages, also for paraphrased
and indirect questions. And those inside the groups do get it, cited."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.integration.conftest import SampleProject, auth
from tests.integration.corpus import (
    Document,
    distinctive_markers,
    documents,
    leaks,
    question_cases,
    sse_strings,
    strings_of,
)

HR_QUESTION = "What is the salary band for a Senior Software Engineer (L5)?"


def _ask(client: httpx.Client, key: str, question: str) -> tuple[dict[str, Any], dict[str, Any]]:
    response = client.post("/v1/ask", json={"question": question}, headers=auth(key))
    assert response.status_code == 200, response.text
    body = response.json()
    trace = client.get(f"/v1/traces/{body['request_id']}", headers=auth(key))
    assert trace.status_code == 200
    return body, trace.json()


def _stream(client: httpx.Client, key: str, question: str) -> str:
    body = {"model": "default", "stream": True, "messages": [{"role": "user", "content": question}]}
    with client.stream("POST", "/v1/chat/completions", json=body, headers=auth(key)) as response:
        assert response.status_code == 200
        return "".join(response.iter_text())


@pytest.fixture(scope="module")
def corpus(sample_project: SampleProject) -> list[Document]:
    return documents(sample_project.root)


def _restricted_cases(sample_project: SampleProject, corpus: list[Document]) -> list[tuple[dict[str, Any], Document]]:
    by_path = {d.path: d for d in corpus}
    out = []
    for case in question_cases(sample_project.root):
        doc = by_path.get(case.get("doc") or "")
        if doc is not None and "everyone" not in doc.groups:
            out.append((case, doc))
    return out


def _outsiders(sample_project: SampleProject, doc: Document) -> list[str]:
    return [pid for pid, p in sample_project.principals.items() if not doc.readable_by(frozenset(p["groups"]))]


def test_every_restricted_document_is_covered_by_questions(
    sample_project: SampleProject, corpus: list[Document]
) -> None:
    restricted = {d.path for d in corpus if "everyone" not in d.groups}
    covered = {doc.path for _, doc in _restricted_cases(sample_project, corpus)}
    assert restricted and restricted == covered


def test_outsiders_never_see_restricted_documents(
    client: httpx.Client, sample_project: SampleProject, corpus: list[Document]
) -> None:
    failures: list[str] = []
    asked = 0
    for case, doc in _restricted_cases(sample_project, corpus):
        for principal in _outsiders(sample_project, doc):
            groups = frozenset(sample_project.principals[principal]["groups"])
            readable = [d for d in corpus if d.readable_by(groups)]
            markers = distinctive_markers(doc, readable, case["answer_contains"], case["question"])
            body, trace = _ask(client, sample_project.keys[principal], case["question"])
            asked += 1
            for where, text in (("response", strings_of(body)), ("trace", strings_of(trace))):
                leaked = leaks(text, markers)
                if leaked:
                    failures.append(f"{case['id']} as {principal}: {doc.path} leaked in {where}: {leaked[:5]}")
    assert asked >= 50
    assert failures == []


def test_outsiders_streaming_never_see_restricted_documents(
    client: httpx.Client, sample_project: SampleProject, corpus: list[Document]
) -> None:
    seen: set[str] = set()
    failures: list[str] = []
    for case, doc in _restricted_cases(sample_project, corpus):
        if doc.path in seen:
            continue
        seen.add(doc.path)
        principal = "sam.staff"
        groups = frozenset(sample_project.principals[principal]["groups"])
        readable = [d for d in corpus if d.readable_by(groups)]
        markers = distinctive_markers(doc, readable, case["answer_contains"], case["question"])
        raw = _stream(client, sample_project.keys[principal], case["question"])
        leaked = leaks(sse_strings(raw), markers)
        if leaked:
            failures.append(f"{case['id']}: {doc.path} leaked in stream: {leaked[:5]}")
    assert failures == []


def test_hr_gets_a_cited_answer_and_engineering_gets_no_answer(
    client: httpx.Client, sample_project: SampleProject, corpus: list[Document]
) -> None:
    bands = next(d for d in corpus if d.groups == {"hr"} and "salary" in d.title.lower())
    hr, _ = _ask(client, sample_project.keys["hana.hr"], HR_QUESTION)
    assert hr["mode"] == "answer"
    assert hr["citations"] and all(c["doc_id"] == bands.doc_id for c in hr["citations"])
    assert all(f"[{c['number']}]" in hr["answer"] for c in hr["citations"])
    eng, trace = _ask(client, sample_project.keys["eli.eng"], HR_QUESTION)
    assert eng["mode"] == "no_answer"
    assert eng["citations"] == []
    readable = [d for d in corpus if d.readable_by(frozenset({"engineering", "everyone"}))]
    markers = distinctive_markers(bands, readable, ["78,000", "96,000"], HR_QUESTION)
    assert leaks(strings_of(eng) + strings_of(trace), markers) == []


def test_insiders_get_their_documents_cited(
    client: httpx.Client, sample_project: SampleProject, corpus: list[Document]
) -> None:
    results = []
    for case, doc in _restricted_cases(sample_project, corpus):
        if "paraphrase" in case.get("tags", []) or "indirect" in case.get("tags", []):
            continue
        insider = next(pid for pid, p in sample_project.principals.items() if doc.readable_by(frozenset(p["groups"])))
        body, _ = _ask(client, sample_project.keys[insider], case["question"])
        results.append(body["mode"] == "answer" and any(c["doc_id"] == doc.doc_id for c in body["citations"]))
    assert len(results) >= 10
    assert sum(results) / len(results) >= 0.8, f"{sum(results)}/{len(results)} direct questions cited their document"


def test_one_users_trace_is_not_found_for_another(client: httpx.Client, sample_project: SampleProject) -> None:
    body, _ = _ask(client, sample_project.keys["hana.hr"], HR_QUESTION)
    other = client.get(f"/v1/traces/{body['request_id']}", headers=auth(sample_project.keys["eli.eng"]))
    assert other.status_code == 404
    assert body["request_id"] in other.json()["error"]["message"]
    assert "salary" not in other.text.lower()
    admin = next(pid for pid, p in sample_project.principals.items() if "admin" in p.get("roles", []))
    assert client.get(f"/v1/traces/{body['request_id']}", headers=auth(sample_project.keys[admin])).status_code == 200


def test_trace_listing_shows_only_your_own_requests(client: httpx.Client, sample_project: SampleProject) -> None:
    _ask(client, sample_project.keys["eli.eng"], "How do I request new hardware?")
    listed = client.get("/v1/traces", headers=auth(sample_project.keys["eli.eng"])).json()["data"]
    assert listed and {t["principal_id"] for t in listed} == {"eli.eng"}
