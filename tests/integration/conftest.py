"""Integration fixtures: the sample project ingested for real, demo keys, and a real server on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
import yaml

from tests.conftest import SAMPLE_PROJECT


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True, kw_only=True)
class SampleProject:
    """The sample project copied to a temporary folder and ingested."""

    root: Path
    keys: dict[str, str]
    principals: dict[str, dict[str, Any]]
    tenant: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_project(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".keel", "__pycache__"))
    return target


def ingest(root: Path, embedder: Any) -> Any:
    from keel.contract import load_contract
    from keel.ingest.ingestor import Ingestor
    from keel.retrieval.versions import IndexStore
    from tests.support.database import database_at

    db = database_at(root / ".keel" / "keel.db")
    try:
        return Ingestor(
            contract=load_contract(root / "keel.yaml"),
            docs_dir=root / "docs",
            db=db,
            index_store=IndexStore(root / ".keel" / "index"),
            embedder=embedder,
        ).run()
    finally:
        db.close()


def share_embedder_cache(root: Path, embedder: Any) -> None:
    """Give a project the embedding model's compiled graph instead of letting its server rebuild it."""
    cache = root / ".keel" / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    for onnx in Path(embedder.cache_dir).glob("*.onnx"):
        shutil.copy2(onnx, cache / onnx.name)


def small_project(root: Path, embedder: Any, *, folders: list[str], contract: str) -> Any:
    """A project of some sample folders under ``contract``, ingested; returns the ingest report."""
    (root / "docs").mkdir(parents=True)
    for folder in folders:
        shutil.copytree(SAMPLE_PROJECT / "docs" / folder, root / "docs" / folder)
    (root / "keel.yaml").write_text(contract, encoding="utf-8")
    report = ingest(root, embedder)
    share_embedder_cache(root, embedder)
    return report


def create_keys(root: Path, principals_file: Path) -> tuple[dict[str, str], dict[str, dict[str, Any]], str]:
    from keel.identity import KeyStore
    from tests.support.database import database_at

    data = yaml.safe_load(principals_file.read_text(encoding="utf-8"))
    tenant = str(data["tenant"])
    db = database_at(root / ".keel" / "keel.db")
    store = KeyStore(db)
    keys: dict[str, str] = {}
    principals: dict[str, dict[str, Any]] = {}
    for entry in data["principals"]:
        created = store.create(
            principal_id=entry["id"], tenant=tenant, groups=entry.get("groups", []), roles=entry.get("roles", ["user"])
        )
        keys[entry["id"]] = created.secret
        principals[entry["id"]] = {**entry, "groups": sorted({*entry.get("groups", []), "everyone"})}
    db.close()
    return keys, principals, tenant


@pytest.fixture(scope="session")
def sample_project(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> SampleProject:
    """The bundled sample knowledge base, ingested, with a key per demo principal."""
    root = copy_project(SAMPLE_PROJECT, tmp_path_factory.mktemp("sample") / "acme")
    report = ingest(root, embedder)
    assert report.failed == [], report.failed
    keys, principals, tenant = create_keys(root, root / "principals.yaml")
    share_embedder_cache(root, embedder)
    return SampleProject(root=root, keys=keys, principals=principals, tenant=tenant)


@dataclass(frozen=True, kw_only=True)
class RunningServer:
    """A ``keel serve`` process on 127.0.0.1."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    log_handle: IO[bytes]


def start_server(root: Path, log: Path, *, extra_env: dict[str, str] | None = None) -> RunningServer:
    port = free_port()
    env = {**os.environ, "KEEL_LOG_LEVEL": "warning", **(extra_env or {})}
    handle = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", "--project", str(root), "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            handle.close()
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return RunningServer(url=url, process=process, log=log, log_handle=handle)
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    process.kill()
    process.wait()
    handle.close()
    raise RuntimeError(f"server did not become ready:\n{log.read_text(errors='replace')}")


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    server.log_handle.close()


@pytest.fixture(scope="session")
def server(sample_project: SampleProject, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A real server for the sample project."""
    running = start_server(sample_project.root, tmp_path_factory.mktemp("logs") / "server.log")
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=180) as c:
        yield c


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
