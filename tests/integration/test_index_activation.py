"""Index activation under concurrent load: no request fails or mixes versions.

A served project has two index versions that differ in one document (the leave
entitlement changes from 27 to 29 days, so that passage's id changes too). While a
thread pool asks questions over HTTP, `keel index activate` flips the active version
back and forth; every response must be a 200 served from one version, with an
answer and citations from that version only.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.pipeline.citations import snippet
from keel.retrieval.snapshot import PassageRecord, read_passages
from keel.retrieval.versions import IndexStore
from tests.integration.conftest import RunningServer, auth, ingest, small_project, start_server, stop_server

CONTRACT = """
models:
  - {name: extractive, provider: extractive, tier: extractive}
  - {name: smollm2-135m, max_output_tokens: 60}
routing:
  cache: {exact: false, semantic: false}
  clarify: {enabled: false}
apps:
  - {name: default, pins: {model: extractive}}   # no model queue: the load is on retrieval and the index
sources:
  - {name: all-staff, path: all-staff, groups: [everyone]}
"""

QUESTIONS = [
    "How many days of paid annual leave do permanent employees get?",
    "How many unused days of annual leave can be carried over?",
    "When must carried-over leave days be taken?",
    "How much is the yearly learning budget?",
]
FIGURE = {1: "27 days", 2: "29 days"}
WORKERS = 6
FLIPS = [1, 2, 1, 2]


@dataclass(frozen=True, kw_only=True)
class Served:
    root: Path
    server: RunningServer
    key: str
    passages: dict[int, dict[str, PassageRecord]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Served]:
    from keel.identity import KeyStore
    from tests.support.database import database_at

    root = tmp_path_factory.mktemp("activation") / "proj"
    first = small_project(root, embedder, folders=["all-staff"], contract=CONTRACT)
    policy = root / "docs" / "all-staff" / "annual-leave-policy.md"
    policy.write_text(policy.read_text(encoding="utf-8").replace("27 days", "29 days"), encoding="utf-8")
    second = ingest(root, embedder)
    assert (first.version, second.version) == (1, 2) and second.updated == ["all-staff/annual-leave-policy.md"]
    store = IndexStore(root / ".keel" / "index")
    passages = {v: {p.chunk_id: p for p in read_passages(store.folder(v))} for v in (1, 2)}
    db = database_at(root / ".keel" / "keel.db")
    key = KeyStore(db).create(principal_id="pat", tenant="larkspur", groups=[], roles=["user"]).secret
    db.close()
    server = start_server(root, root / "server.log")
    yield Served(root=root, server=server, key=key, passages=passages)
    stop_server(server)


def _activate(root: Path, version: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), "index", "activate", str(version)],
        check=True,
        capture_output=True,
        timeout=60,
    )


def test_index_activation_under_concurrent_load_fails_no_request_and_mixes_no_versions(served: Served) -> None:
    stop = threading.Event()
    responses: list[tuple[str, int, dict[str, Any]]] = []
    lock = threading.Lock()

    def ask(worker: int) -> None:
        with httpx.Client(base_url=served.server.url, timeout=60, headers=auth(served.key)) as client:
            n = worker
            while not stop.is_set():
                question = QUESTIONS[n % len(QUESTIONS)]
                reply = client.post("/v1/ask", json={"question": question})
                body = reply.json() if reply.headers.get("content-type", "").startswith("application/json") else {}
                with lock:
                    responses.append((question, reply.status_code, body))
                n += 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(ask, w) for w in range(WORKERS)]
        try:
            time.sleep(0.5)
            for version in FLIPS:
                _activate(served.root, version)
                time.sleep(0.3)
        finally:
            stop.set()
        for future in futures:
            future.result()
    elapsed = time.monotonic() - started

    assert elapsed < 60 and len(responses) >= 40, (elapsed, len(responses))
    failures = [(q, status, body.get("error")) for q, status, body in responses if status != 200]
    assert failures == []
    seen = {body["index_version"] for _, _, body in responses}
    assert seen == {1, 2}, "both versions must have served while the pointer moved"
    for question, _, body in responses:
        version = body["index_version"]
        own = served.passages[version]
        for citation in body["citations"]:
            passage = own.get(citation["id"])
            assert passage is not None, f"v{version} response cites {citation['id']}, not a v{version} passage"
            assert citation["snippet"] == snippet(passage.text)
        other_figure = FIGURE[3 - version]
        assert other_figure not in body["answer"], f"v{version} answer to {question!r} states {other_figure}"
    answered_leave = [b for q, _, b in responses if q == QUESTIONS[0] and b["mode"] == "answer"]
    assert {b["index_version"] for b in answered_leave} == {1, 2}
    assert all(FIGURE[b["index_version"]] in b["answer"] for b in answered_leave)

    store = IndexStore(served.root / ".keel" / "index")
    assert store.active_version() == FLIPS[-1]
    assert [a.version for a in store.history() if a.kind == "activate"] == FLIPS
