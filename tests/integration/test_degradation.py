"""When a component fails, the request still completes, labelled, with a sourced answer."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from keel.errors import ModelUnavailable
from keel.project import Project
from keel.runtime import Runtime
from keel.settings import Settings
from tests.integration.conftest import ingest

CONTRACT = """
models:
  - name: extractive
    provider: extractive
    tier: extractive
  - name: tiny
    timeouts: {{first_token_s: {timeout}, total_s: 60}}
sources:
  - {{name: open, path: open, groups: [everyone]}}
apps:
  - name: default
  - name: pinned
    pins: {{model: tiny}}
  - name: chat
    retrieval: false
"""

LEAVE = (
    "---\ntitle: Leave policy\n---\n# Leave policy\n\n"
    "Every employee is entitled to 31 days of paid annual leave per calendar year.\n"
)


def _project(root: Path, embedder: Any, timeout: float) -> Project:
    (root / "docs" / "open").mkdir(parents=True)
    (root / "keel.yaml").write_text(CONTRACT.format(timeout=timeout), encoding="utf-8")
    (root / "docs" / "open" / "leave.md").write_text(LEAVE, encoding="utf-8")
    ingest(root, embedder)
    for onnx in Path(embedder.cache_dir).glob("*.onnx"):
        (root / ".keel" / "cache").mkdir(parents=True, exist_ok=True)
        shutil.copy2(onnx, root / ".keel" / "cache" / onnx.name)
    return Project.open(Settings(project=root))


async def _ask(project: Project, question: str, *, app: str = "default", **patches: Any) -> Any:
    runtime = Runtime(project)
    try:
        await runtime.warm_up()
        key = runtime.keys.create(principal_id="pat", tenant="t", groups=[], roles=["user"]).secret
        for target, replacement in patches.items():
            obj_name, attr = target.split(".")
            setattr(getattr(runtime, obj_name), attr, replacement)
        ctx = runtime.new_context(question=question, credential=key, endpoint="ask", app=runtime.contract.app(app))
        await runtime.pipeline.run(ctx)
        runtime.traces.flush()
        return ctx, runtime.traces.get(ctx.request_id)
    finally:
        await runtime.close()


EXPLAIN = "Why is every employee entitled to paid annual leave and how is it counted per calendar year?"


def test_model_timeout_falls_back_to_the_next_tier(tmp_path: Path, embedder: Any) -> None:
    project = _project(tmp_path / "p", embedder, timeout=0.001)
    ctx, trace = asyncio.run(_ask(project, EXPLAIN))
    assert ctx.route.candidates == ["tiny", "extractive"]
    assert ctx.mode == "answer" and ctx.model == "extractive"
    assert "31 days" in ctx.answer and ctx.citations
    assert [d.component for d in ctx.degraded] == ["model:tiny"]
    assert "limited mode" in ctx.answer
    attempts = next(s for s in trace.data["spans"] if s["name"] == "generate")["attributes"]["attempts"]
    assert attempts == [{"model": "tiny", "outcome": "upstream_timeout"}, {"model": "extractive", "outcome": "ok"}]
    assert trace.data["response"]["degraded"][0]["component"] == "model:tiny"


def test_a_failing_pinned_model_is_not_replaced_but_sources_are_returned(tmp_path: Path, embedder: Any) -> None:
    project = _project(tmp_path / "p", embedder, timeout=0.001)
    ctx, _ = asyncio.run(_ask(project, EXPLAIN, app="pinned"))
    assert ctx.route.candidates == ["tiny"]
    assert ctx.mode == "sources_only" and ctx.model is None
    assert ctx.citations and ctx.citations[0].source == "open/leave.md"
    assert "limited mode" in ctx.answer


def test_embedder_failure_degrades_to_lexical_search(tmp_path: Path, embedder: Any) -> None:
    project = _project(tmp_path / "p", embedder, timeout=60)

    def broken(text: str) -> Any:
        raise RuntimeError("onnxruntime crashed")

    ctx, trace = asyncio.run(_ask(project, "annual leave days entitled", **{"embedder.embed_one": broken}))
    assert [d.component for d in ctx.degraded] == ["embedder"]
    retrieve = next(s for s in trace.data["spans"] if s["name"] == "retrieve")
    assert retrieve["attributes"]["search"] == "lexical"
    assert ctx.mode in ("answer", "sources_only")
    assert ctx.citations and "limited mode" in ctx.answer


def test_plain_chat_app_skips_retrieval_and_citations(tmp_path: Path, embedder: Any) -> None:
    project = _project(tmp_path / "p", embedder, timeout=60)
    ctx, trace = asyncio.run(_ask(project, "Say hello.", app="chat"))
    assert ctx.mode == "answer" and ctx.answer and ctx.citations == []
    assert ctx.answer_strategy == "plain"
    retrieve = next(s for s in trace.data["spans"] if s["name"] == "retrieve")
    assert retrieve["decision"] == "off"


def test_model_failure_on_a_plain_chat_app_is_a_labelled_error(tmp_path: Path, embedder: Any) -> None:
    project = _project(tmp_path / "p", embedder, timeout=0.001)
    with pytest.raises(ModelUnavailable):
        asyncio.run(_ask(project, "Say hello.", app="chat"))
