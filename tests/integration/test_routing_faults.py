"""Every upstream failure ends in a coherent, labelled response; the breaker opens and recovers;
retries never charge twice. Keel in process, the upstream a real HTTP server that fails on cue."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keel.project import Project
from keel.runtime import Runtime
from keel.settings import Settings
from tests.integration.conftest import ingest
from tests.support.fault_upstream import FaultUpstream

CONTRACT = """
cost: {{max_usd_per_request: 1.0}}
models:
  - {{name: extractive, provider: extractive, tier: extractive}}
  - name: flaky
    provider: openai_compatible
    base_url: {url}
    tier: small
    max_concurrency: 4
    timeouts: {{connect_s: 1, first_token_s: 1, stall_s: 0.5, total_s: 5}}
    retries: {{max_attempts: 2, backoff_s: 0.05, max_backoff_s: 1.5}}
    breaker: {{failures: 3, window_s: 60, cooldown_s: 1}}
    price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}
routing:
  cache: {{exact: false, semantic: false}}
sources:
  - {{name: open, path: open, groups: [everyone]}}
"""

DOC = (
    "---\ntitle: Leave policy\n---\n# Leave policy\n\n"
    "Every employee is entitled to 31 days of paid annual leave per calendar year.\n\n"
    "## Carry-over\n\nUp to five unused days may be carried over until 31 March.\n"
)
QUESTION = "Why is every employee entitled to paid annual leave and how is it counted per calendar year?"


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultUpstream]:
    with FaultUpstream() as server:
        yield server


@pytest.fixture
def project(tmp_path: Path, embedder: Any, upstream: FaultUpstream) -> Project:
    root = tmp_path / "p"
    (root / "docs" / "open").mkdir(parents=True)
    (root / "keel.yaml").write_text(CONTRACT.format(url=upstream.base_url), encoding="utf-8")
    (root / "docs" / "open" / "leave.md").write_text(DOC, encoding="utf-8")
    ingest(root, embedder)
    (root / ".keel" / "cache").mkdir(parents=True, exist_ok=True)
    for onnx in Path(embedder.cache_dir).glob("*.onnx"):
        shutil.copy2(onnx, root / ".keel" / "cache" / onnx.name)
    upstream.state.mode, upstream.state.times, upstream.state.delay_s = "ok", None, 5.0
    return Project.open(Settings(project=root))


class Session:
    """One Runtime, several requests."""

    def __init__(self, project: Project) -> None:
        self.runtime = Runtime(project)
        self.key = ""

    async def __aenter__(self) -> Session:
        await self.runtime.warm_up()
        self.key = self.runtime.keys.create(principal_id="pat", tenant="t", groups=[], roles=["user"]).secret
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runtime.close()

    async def ask(self, question: str = QUESTION) -> Any:
        ctx = self.runtime.new_context(question=question, credential=self.key, endpoint="ask")
        await self.runtime.pipeline.run(ctx)
        return ctx


def spend_rows(project: Project) -> list[tuple[str, str, float]]:
    db = project.open_database()
    try:
        return [(r[0], r[1], r[2]) for r in db.connection().execute("SELECT request_id, model, cost_usd FROM spend")]
    finally:
        db.close()


def test_healthy_upstream_serves_and_is_charged_once(project: Project, upstream: FaultUpstream) -> None:
    async def run() -> Any:
        async with Session(project) as s:
            return await s.ask()

    ctx = asyncio.run(run())
    assert ctx.mode == "answer" and ctx.model == "flaky" and ctx.answer_strategy == "generated"
    assert "31 days" in ctx.answer and ctx.citations and ctx.degraded == []
    assert ctx.usage.prompt_tokens == 100
    assert spend_rows(project) == [(ctx.request_id, "flaky", pytest.approx(ctx.cost_usd))]
    assert ctx.cost_usd > 0


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("error_500", "upstream_unavailable"),
        ("rate_limited", "upstream_rate_limited"),
        ("slow_first_byte", "upstream_timeout"),
        ("stall", "upstream_timeout"),
        ("cut", "upstream_bad_response"),
        ("invalid_json", "upstream_bad_response"),
    ],
)
def test_each_failure_falls_back_with_a_label_and_no_charge(
    project: Project, upstream: FaultUpstream, mode: str, code: str
) -> None:
    upstream.state.mode = mode  # type: ignore[assignment]
    upstream.state.retry_after = "0.05"

    async def run() -> Any:
        async with Session(project) as s:
            return await s.ask()

    ctx = asyncio.run(run())
    assert ctx.mode == "answer" and ctx.model == "extractive"
    assert "31 days" in ctx.answer and ctx.citations
    assert [d.component for d in ctx.degraded] == ["model:flaky"]
    assert "limited mode" in ctx.answer
    generate = next(s for s in ctx.trace.spans if s.name == "generate")
    assert generate.attributes["attempts"][0] == {"model": "flaky", "outcome": code}
    assert spend_rows(project) == []


def test_refused_connection_falls_back(project: Project) -> None:
    dead = project.contract.model("flaky").base_url
    assert dead is not None
    text = (project.root / "keel.yaml").read_text(encoding="utf-8").replace(dead, "http://127.0.0.1:9/v1")
    (project.root / "keel.yaml").write_text(text, encoding="utf-8")
    refused = Project.open(Settings(project=project.root))

    async def run() -> Any:
        async with Session(refused) as s:
            return await s.ask()

    ctx = asyncio.run(run())
    assert ctx.mode == "answer" and ctx.model == "extractive"
    assert ctx.degraded[0].component == "model:flaky" and "unreachable" in ctx.degraded[0].reason


def test_a_retried_rate_limit_is_served_and_charged_once(project: Project, upstream: FaultUpstream) -> None:
    upstream.state.mode, upstream.state.times, upstream.state.retry_after = "rate_limited", 1, "0.1"
    before = upstream.state.requests

    async def run() -> Any:
        async with Session(project) as s:
            return await s.ask()

    ctx = asyncio.run(run())
    assert upstream.state.requests - before == 2
    assert ctx.model == "flaky" and ctx.degraded == []
    rows = spend_rows(project)
    assert len(rows) == 1 and rows[0][2] == pytest.approx(ctx.cost_usd)
    assert ctx.cost_usd == pytest.approx((100 * 1.0 + ctx.usage.completion_tokens * 2.0) / 1_000_000)


def test_breaker_opens_after_repeated_failures_and_closes_after_a_good_probe(
    project: Project, upstream: FaultUpstream
) -> None:
    upstream.state.mode = "error_500"

    async def run() -> list[Any]:
        results = []
        async with Session(project) as s:
            for _ in range(3):
                results.append(await s.ask())
            calls_when_open = upstream.state.requests
            results.append(await s.ask())
            assert upstream.state.requests == calls_when_open, "an open breaker must not call the upstream"
            assert s.runtime.models.health("flaky").breaker == "open"
            upstream.state.mode = "ok"
            await asyncio.sleep(1.1)
            assert s.runtime.models.health("flaky").breaker == "half_open"
            results.append(await s.ask())
            assert s.runtime.models.health("flaky").breaker == "closed"
        return results

    results = asyncio.run(run())
    assert all(r.mode == "answer" for r in results)
    assert [r.model for r in results] == ["extractive"] * 4 + ["flaky"]
    open_route = results[3].route
    assert ("flaky", "circuit breaker open") in open_route.skipped


def test_streamed_answer_is_kept_when_the_upstream_stalls_after_a_verified_sentence(
    project: Project, upstream: FaultUpstream
) -> None:
    upstream.state.mode, upstream.state.delay_s = "stall_after_sentence", 3.0
    pieces: list[str] = []

    async def run() -> Any:
        async with Session(project) as s:
            ctx = s.runtime.new_context(question=QUESTION, credential=s.key, endpoint="chat")

            async def sink(text: str) -> None:
                pieces.append(text)

            ctx.stream = sink
            await s.runtime.pipeline.run(ctx)
            return ctx

    ctx = asyncio.run(run())
    streamed = "".join(pieces)
    assert ctx.mode == "answer" and ctx.model != "extractive"
    assert "31 days" in streamed, "the verified sentence was streamed before the stall"
    assert streamed == ctx.answer and "limited mode" in streamed
    assert [d.component for d in ctx.degraded] == ["model:flaky"]
    assert ctx.answer_strategy == "generated (interrupted)"
