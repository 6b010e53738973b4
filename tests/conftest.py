"""Shared fixtures: no outbound network, the real embedding model, a sample project."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PROJECT = REPO / "examples" / "acme"


# The suite's own PostgreSQL in PostgreSQL mode (KEEL_TEST_POSTGRES=1), under "server".
_SESSION_POSTGRES: dict[str, Any] = {}


def pytest_configure(config: pytest.Config) -> None:
    """With KEEL_TEST_POSTGRES=1 every store of every test lives in one real PostgreSQL (pgvector)."""
    if os.environ.get("KEEL_TEST_POSTGRES") == "1" and "server" not in _SESSION_POSTGRES:
        from tests.support.postgres_server import start_postgres

        server = start_postgres()
        _SESSION_POSTGRES["server"] = server
        os.environ["KEEL_DATABASE_URL"] = server.url
        os.environ["KEEL_DATABASE_SCHEMA"] = "auto"


def pytest_unconfigure(config: pytest.Config) -> None:
    server = _SESSION_POSTGRES.pop("server", None)
    if server is not None:
        from tests.support.postgres_server import stop_postgres

        stop_postgres(server)


def pytest_report_header(config: pytest.Config) -> str:
    url = os.environ.get("KEEL_DATABASE_URL")
    return f"stores: PostgreSQL at {url} (a schema per data directory)" if url else "stores: SQLite"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL with pgvector on 127.0.0.1: the session's own, or the suite's in PostgreSQL mode."""
    if "server" in _SESSION_POSTGRES:
        yield _SESSION_POSTGRES["server"].url
        return
    from tests.support.postgres_server import start_postgres, stop_postgres

    server = start_postgres()
    try:
        yield server.url
    finally:
        stop_postgres(server)


def _is_loopback(address: Any) -> bool:
    if isinstance(address, tuple) and address:
        host = address[0]
    else:
        return True  # unix sockets and the like
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_outbound_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests may talk to 127.0.0.1 only."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise OSError(f"tests may not connect to {address!r}: only 127.0.0.1")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield


@pytest.fixture(scope="session")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real all-MiniLM-L6-v2 embedder, warmed once per session."""
    from keel.retrieval.embedder import MiniLMEmbedder

    model = MiniLMEmbedder(cache_dir=tmp_path_factory.mktemp("embedder-cache"))
    model.warm_up()
    return model
