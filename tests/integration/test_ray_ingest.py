"""keel ingest --engine ray on a real local Ray cluster writes the same index version as the local engine.

A Ray head is started on 127.0.0.1 with two CPUs (two tasks at once, the two workers
a 2-core machine can run), in its own temporary folder and process group; teardown
stops only that group. The sample knowledge base is ingested once with each engine
into its own project, through the real ``keel`` command.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import SAMPLE_PROJECT
from tests.integration.conftest import copy_project, free_port, share_embedder_cache

pytest.importorskip("ray", reason="Ray is installed by the test profile (requirements/ray.txt)")

RAY = Path(sys.executable).with_name("ray")
START_TIMEOUT_S = 120
INGEST_TIMEOUT_S = 600


def keel(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), *args],
        capture_output=True,
        text=True,
        timeout=INGEST_TIMEOUT_S,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _live_members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that are not zombies (which only their parent can reap)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _stop_group(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Stop every process of the cluster: they all stay in the process group of our ``ray start``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        deadline = time.monotonic() + grace_s
        while _live_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _live_members(process.pid):
            return


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Ray head on 127.0.0.1 with 2 CPUs; yields its address ``127.0.0.1:PORT``."""
    # Ray's unix socket paths must stay short: a short folder of our own, not pytest's deep one.
    temp = Path(f"/tmp/keel-ray-{os.getpid()}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    port = free_port()
    while 10000 <= port <= 19999:  # Ray's worker port range
        port = free_port()
    log = tmp_path_factory.mktemp("ray") / "ray-start.log"
    env = {**os.environ, "RAY_TMPDIR": str(temp), "RAY_USAGE_STATS_ENABLED": "0"}
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                str(RAY),
                "start",
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={port}",
                "--num-cpus=2",
                "--object-store-memory=100000000",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={temp}",
            ],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # the cluster's daemons inherit this group; teardown stops exactly it
        )
    try:
        try:
            code = process.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            pytest.fail(f"ray start failed ({code}):\n{log.read_text(errors='replace')[-3000:]}")
        yield f"127.0.0.1:{port}"
    finally:
        _stop_group(process)
        shutil.rmtree(temp, ignore_errors=True)


def _project(tmp_path_factory: pytest.TempPathFactory, name: str, embedder: Any) -> Path:
    root = copy_project(SAMPLE_PROJECT, tmp_path_factory.mktemp(name) / "acme")
    share_embedder_cache(root, embedder)
    return root


def _index(root: Path) -> tuple[dict[str, Any], list[tuple[str, ...]], np.ndarray[Any, Any]]:
    from keel.retrieval.snapshot import VECTORS, read_manifest, read_passages
    from keel.retrieval.versions import IndexStore

    store = IndexStore(root / ".keel" / "index")
    version = store.active_version()
    assert version is not None
    folder = store.folder(version)
    rows = [(p.chunk_id, p.doc_id, p.path, p.heading, p.text, *p.groups) for p in read_passages(folder)]
    return read_manifest(folder), rows, np.load(folder / VECTORS)


def test_ray_engine_writes_the_same_index_version_as_the_local_engine(
    tmp_path_factory: pytest.TempPathFactory, embedder: Any, ray_cluster: str
) -> None:
    local_root = _project(tmp_path_factory, "local", embedder)
    ray_root = _project(tmp_path_factory, "ray", embedder)

    local = keel(local_root, "ingest", "--json")
    assert local.returncode == 0, local.stderr
    started = time.perf_counter()
    on_ray = keel(ray_root, "ingest", "--engine", "ray", "--json", env={"RAY_ADDRESS": ray_cluster})
    ray_seconds = time.perf_counter() - started
    assert on_ray.returncode == 0, on_ray.stderr
    local_report, ray_report = json.loads(local.stdout), json.loads(on_ray.stdout)

    # The tasks really ran on the cluster, on more than one worker.
    assert local_report["engine"] == {"name": "local", "tasks": 0, "workers": []}
    engine = ray_report["engine"]
    assert engine["name"] == "ray"
    assert engine["tasks"] >= 2 and len(engine["workers"]) >= 2, engine
    assert not any(worker.endswith(f":{os.getpid()}") for worker in engine["workers"])

    # The same report and the same index version: passages, ids, texts, ACL groups and vectors.
    for key in ("version", "documents", "passages", "passages_embedded", "added", "no_acl", "duplicates"):
        assert ray_report[key] == local_report[key], key
    local_manifest, local_rows, local_vectors = _index(local_root)
    ray_manifest, ray_rows, ray_vectors = _index(ray_root)
    assert ray_rows == local_rows and len(local_rows) == local_report["passages"] > 0
    assert ray_manifest["fingerprint"] == local_manifest["fingerprint"]
    assert ray_vectors.shape == local_vectors.shape
    assert np.allclose(ray_vectors, local_vectors, rtol=0, atol=1e-6), np.abs(ray_vectors - local_vectors).max()
    print(f"ray ingest: {ray_seconds:.1f} s, {engine['tasks']} tasks on {engine['workers']}")

    # Incremental on Ray as well: nothing changed, nothing parsed or embedded, no task.
    again = keel(ray_root, "ingest", "--engine", "ray", "--json", "--ray-address", ray_cluster)
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["version"] == ray_report["version"] and report["passages_embedded"] == 0
    assert report["engine"]["tasks"] == 0


def test_an_unreachable_cluster_is_a_clear_error_not_a_traceback(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = copy_project(SAMPLE_PROJECT, tmp_path_factory.mktemp("unreachable") / "acme")
    result = keel(root, "ingest", "--engine", "ray", "--ray-address", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    assert "error (ray_unreachable):" in result.stderr and "Traceback" not in result.stderr
    assert "--ray-address" in result.stderr or "ray status" in result.stderr
