"""Running a suite: in process through the library, or against a running server.

In process, each case runs through the full pipeline as its asker (no API key
needed); against a server (``url``), each asker needs an API key and the trace is
read back over HTTP. Cases run concurrently up to ``concurrency``; the model calls
themselves still queue per model as the contract says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from keel.contract import Release
from keel.evals.scoring import Observation, RetrievedPassage, Similarity
from keel.evals.suite import Asker, Case, LoadedSuite
from keel.identity import Principal
from keel.retrieval.embedder import Embedder
from keel.retrieval.versions import IndexStore
from keel.runtime import Runtime
from keel.server.render import ask_body

__all__ = ["CaseRun", "run_cases", "strings_of"]

Progress = Callable[[int, int], None]
UNKNOWN_GROUPS = "?"
"""Groups of a cited passage the runner could not look up (a server without a local index)."""


def strings_of(value: Any) -> str:
    """Every string inside a JSON value, one per line."""
    if isinstance(value, str):
        return value + "\n"
    if isinstance(value, dict):
        return "".join(strings_of(k) + strings_of(v) for k, v in value.items())
    if isinstance(value, list):
        return "".join(strings_of(v) for v in value)
    return ""


def embedding_similarity(embedder: Embedder) -> Similarity:
    """Cosine similarity of two texts' embeddings."""

    def similarity(a: str, b: str) -> float:
        va, vb = embedder.embed([a, b])
        return float(np.dot(va, vb))

    return similarity


class CaseRun:
    """A case with its asker and what was observed."""

    def __init__(self, case: Case, asker: Asker, observation: Observation) -> None:
        self.case = case
        self.asker = asker
        self.observation = observation


async def run_cases(
    loaded: LoadedSuite,
    cases: list[Case],
    *,
    runtime: Runtime | None = None,
    url: str | None = None,
    keys: dict[str, str] | None = None,
    index: IndexStore | None = None,
    concurrency: int = 2,
    progress: Progress | None = None,
    release: Release | None = None,
) -> list[CaseRun]:
    """Run ``cases``; exactly one of ``runtime`` (in process) or ``url`` (a server) is given.

    In process, ``release`` serves every case (an evaluation of a candidate release).
    """
    if (runtime is None) == (url is None):
        raise ValueError("give runtime (in process) or url (a running server)")
    semaphore = asyncio.Semaphore(max(1, concurrency))
    done = 0
    results: list[CaseRun | None] = [None] * len(cases)
    client = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=300) if url else None

    async def one(position: int, case: Case) -> None:
        nonlocal done
        asker = loaded.asker_of(case)
        async with semaphore:
            if runtime is not None:
                observation = await _in_process(runtime, case, asker, release)
            else:
                assert client is not None
                observation = await _over_http(client, case, asker, keys or {}, index)
        results[position] = CaseRun(case, asker, observation)
        done += 1
        if progress is not None:
            progress(done, len(cases))

    try:
        await asyncio.gather(*(one(i, case) for i, case in enumerate(cases)))
    finally:
        if client is not None:
            await client.aclose()
    return [r for r in results if r is not None]


async def _in_process(runtime: Runtime, case: Case, asker: Asker, release: Release | None) -> Observation:
    app = runtime.contract.app(case.app) if case.app else None
    ctx = runtime.new_context(question=case.question, credential=None, endpoint="ask", app=app)
    if release is not None:
        ctx.release_override, ctx.release_role = release, "override"
    ctx.principal = Principal.of(id=asker.id, tenant=asker.tenant, groups=asker.groups, roles=asker.roles)
    started = time.perf_counter()
    error = None
    try:
        await runtime.pipeline.run(ctx)
    except Exception as exc:  # a failing case is a result, not a crash of the run
        error = getattr(exc, "code", type(exc).__name__)
    latency = (time.perf_counter() - started) * 1000
    record = runtime.traces.get(ctx.request_id)
    trace = record.data if record is not None else {}
    snapshot = runtime.index.snapshot(ctx.index_version)
    cited = []
    for citation in ctx.citations:
        passage = snapshot.passage_by_id(citation.chunk_id)
        if passage is not None:
            cited.append(_passage(passage.chunk_id, passage.path, passage.groups, passage.heading, passage.text))
    return Observation(
        request_id=ctx.request_id,
        mode=ctx.mode if error is None else None,
        answer=ctx.answer if error is None else "",
        retrieved=[
            _passage(h.passage.chunk_id, h.passage.path, h.passage.groups, h.passage.heading, h.passage.text)
            for h in ctx.hits
        ],
        cited=cited,
        latency_ms=latency,
        prompt_tokens=ctx.usage.prompt_tokens,
        completion_tokens=ctx.usage.completion_tokens,
        cost_usd=ctx.cost_usd,
        cache=ctx.cache,
        model=ctx.model,
        strategy=ctx.answer_strategy,
        degraded=[f"{d.component}: {d.reason}" for d in ctx.degraded],
        guard_output=ctx.guard_verdicts.get("output"),
        error=error,
        strings=strings_of(ask_body(ctx)) + strings_of(trace),
    )


async def _over_http(
    client: httpx.AsyncClient, case: Case, asker: Asker, keys: dict[str, str], index: IndexStore | None
) -> Observation:
    key = keys.get(asker.id)
    if key is None:
        return Observation(
            request_id="-",
            mode=None,
            answer="",
            retrieved=[],
            cited=[],
            latency_ms=0.0,
            error=f"no API key for asker {asker.id}",
        )
    headers = {"Authorization": f"Bearer {key}"}
    payload: dict[str, Any] = {"question": case.question}
    if case.app:
        payload["app"] = case.app
    started = time.perf_counter()
    response = await client.post("/v1/ask", json=payload, headers=headers)
    latency = (time.perf_counter() - started) * 1000
    body = response.json()
    if response.status_code >= 400:
        error = body.get("error", {}).get("code", str(response.status_code))
        return Observation(
            request_id=body.get("error", {}).get("request_id", "-"),
            mode=None,
            answer="",
            retrieved=[],
            cited=[],
            latency_ms=latency,
            error=error,
            strings=strings_of(body),
        )
    trace_response = await client.get(f"/v1/traces/{body['request_id']}", headers=headers)
    trace = trace_response.json() if trace_response.status_code == 200 else {}
    spans: list[dict[str, Any]] = trace.get("spans", [])
    retrieve: dict[str, Any] = next((s for s in spans if s.get("name") == "retrieve"), {})
    snapshot = index.current() if index is not None else None

    def passage(chunk_id: str, path: str, groups: tuple[str, ...], fallback: str) -> RetrievedPassage:
        stored = snapshot.passage_by_id(chunk_id) if snapshot is not None else None
        if stored is not None:
            return _passage(chunk_id, stored.path, stored.groups, stored.heading, stored.text)
        return _passage(chunk_id, path, groups, "", fallback)

    hits = retrieve.get("attributes", {}).get("hits", [])
    hit_groups = {h["chunk_id"]: tuple(h.get("groups", [])) for h in hits}
    retrieved = [passage(h["chunk_id"], h["source"], tuple(h.get("groups", [])), "") for h in hits]
    cited = [
        passage(c["id"], c["source"], hit_groups.get(c["id"], (UNKNOWN_GROUPS,)), c.get("snippet", ""))
        for c in body.get("citations", [])
    ]
    outcome: dict[str, Any] = next((s for s in spans if s.get("name") == "guard_out"), {})
    return Observation(
        request_id=body["request_id"],
        mode=body.get("mode"),
        answer=body.get("answer", ""),
        retrieved=retrieved,
        cited=cited,
        latency_ms=latency,
        prompt_tokens=body.get("usage", {}).get("prompt_tokens", 0),
        completion_tokens=body.get("usage", {}).get("completion_tokens", 0),
        cost_usd=body.get("cost_usd", 0.0),
        cache=body.get("cache", "off"),
        model=body.get("model"),
        strategy=trace.get("response", {}).get("answer_strategy", ""),
        degraded=[f"{d['component']}: {d['reason']}" for d in body.get("degraded", [])],
        guard_output=outcome.get("decision"),
        strings=strings_of(body) + strings_of(trace),
    )


def _passage(chunk_id: str, path: str, groups: tuple[str, ...], heading: str, text: str) -> RetrievedPassage:
    return RetrievedPassage(chunk_id=chunk_id, path=path, groups=tuple(groups), heading=heading, text=text)
