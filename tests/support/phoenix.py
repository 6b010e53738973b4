"""A real OTLP trace receiver for the tests: Arize Phoenix on free 127.0.0.1 ports, read back by its REST API.

Phoenix lives in its own virtualenv, ``.venv-phoenix``, which ``scripts/ensure-phoenix``
makes (pinned by ``requirements/phoenix.txt``). ``PhoenixServer.start`` runs that script
first: it returns at once when the virtualenv is current and installs it otherwise, so
``pytest`` alone works. The server is a child process
(``tests/support/phoenix_launcher.py`` under ``.venv-phoenix/bin/python``, which runs
``phoenix serve``), ready once ``GET /readyz`` answers, and stopped by its PID.

Exporters send OTLP/HTTP protobuf to ``otlp_endpoint`` (``http://127.0.0.1:PORT/v1/traces``);
``spans()`` polls ``GET /v1/projects/{project}/spans`` until the spans are stored (Phoenix
inserts them in the background, so an export returns before they can be read).

How Phoenix files spans under projects: each exported batch of spans of one resource
(an OTLP ``ResourceSpans``) goes to the project named by the resource attribute
``openinference.project.name``; an ``x-project-name`` header on the export request
overrides it; with neither, to ``default``. ``service.name`` plays no part. A project is
created by its first span.

What comes back is what Phoenix stored, which is more than was sent: from ``gen_ai.*``
attributes it derives OpenInference ones (``llm.model_name`` from ``gen_ai.request.model``,
``llm.token_count.prompt`` from ``gen_ai.usage.input_tokens``, ...) and a span kind.

Isolation: the database, pid files and anything written to ``$HOME`` stay in the
directory given to ``start``; telemetry, external resources (fonts, sandbox downloads),
the agent assistant and the MCP server are off; both ports are bound to 127.0.0.1 and
the launcher refuses any connection beyond loopback. The fixture is registered where it
is imported.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast, get_args
from urllib.parse import quote

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
PHOENIX_VENV = REPO / ".venv-phoenix"
ENSURE_PHOENIX = REPO / "scripts" / "ensure-phoenix"
LAUNCHER = Path(__file__).resolve().with_name("phoenix_launcher.py")

_READY_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 15.0
_PAGE_SIZE = 1000
_LOG_TAIL_CHARS = 3000

SpanStatus = Literal["UNSET", "OK", "ERROR"]


@dataclass(frozen=True, kw_only=True)
class ReceivedSpan:
    """One span as Phoenix stored it; ids are lowercase hex as in OTLP/JSON."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    start_time: datetime
    end_time: datetime
    status_code: SpanStatus
    status_message: str
    kind: str
    """The OpenInference span kind Phoenix assigned (``LLM``, ``CHAIN``, ``UNKNOWN``, ...)."""
    attributes: dict[str, object]
    """Flat: dotted OpenTelemetry names (``gen_ai.request.model``) to values."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@functools.cache
def ensure_phoenix() -> Path:
    """Run ``scripts/ensure-phoenix`` once per test process; return ``.venv-phoenix``'s Python."""
    done = subprocess.run([str(ENSURE_PHOENIX)], cwd=REPO, capture_output=True, text=True, check=False)
    python = PHOENIX_VENV / "bin" / "python"
    if done.returncode != 0 or not python.exists():
        raise RuntimeError(
            f"scripts/ensure-phoenix failed (exit {done.returncode}):\n{done.stdout[-_LOG_TAIL_CHARS:]}"
            f"{done.stderr[-_LOG_TAIL_CHARS:]}"
        )
    return python


def _flatten(attributes: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested attribute objects to dotted names; lists of objects get their index as a segment."""
    flat: dict[str, object] = {}
    for key, value in attributes.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        elif isinstance(value, list) and value and all(isinstance(item, Mapping) for item in value):
            for index, item in enumerate(value):
                flat.update(_flatten(item, f"{name}.{index}."))
        else:
            flat[name] = value
    return flat


def _span_from_json(data: Mapping[str, Any]) -> ReceivedSpan:
    status = data["status_code"]
    if status not in get_args(SpanStatus):
        raise ValueError(f"Phoenix returned an unknown status code {status!r}")
    return ReceivedSpan(
        name=data["name"],
        trace_id=data["context"]["trace_id"],
        span_id=data["context"]["span_id"],
        parent_id=data.get("parent_id"),
        start_time=datetime.fromisoformat(data["start_time"]),
        end_time=datetime.fromisoformat(data["end_time"]),
        status_code=cast(SpanStatus, status),
        status_message=data.get("status_message") or "",
        kind=data["span_kind"],
        attributes=_flatten(data.get("attributes") or {}),
    )


class PhoenixServer:
    """One Phoenix process on 127.0.0.1; use ``with PhoenixServer.start(directory) as phoenix:``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.grpc_port = _free_port()
        self.ready_in_s: float | None = None
        """Seconds from launch until ``/readyz`` answered, once started."""
        self._process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    @classmethod
    def start(cls, directory: Path, *, ready_timeout_s: float = _READY_TIMEOUT_S) -> Self:
        """Install Phoenix if needed, start it with its state in ``directory`` and wait until it is ready."""
        server = cls(directory)
        server._launch(ensure_phoenix(), ready_timeout_s)
        return server

    @property
    def url(self) -> str:
        """The base URL of the web UI, the REST API (``/v1``) and GraphQL (``/graphql``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def otlp_endpoint(self) -> str:
        """The full URL OTLP/HTTP exporters post traces to."""
        return f"{self.url}/v1/traces"

    @property
    def grpc_endpoint(self) -> str:
        """Where OTLP/gRPC exporters send traces."""
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int | None:
        """The server's PID while it runs."""
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path:
        """Phoenix's stdout and stderr."""
        return self.directory / "phoenix.log"

    def log_tail(self) -> str:
        """The end of Phoenix's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-_LOG_TAIL_CHARS:]
        except OSError:
            return "(no log)"

    def spans(
        self,
        project: str = "default",
        *,
        trace_id: str | None = None,
        min_count: int = 1,
        timeout_s: float = 30,
    ) -> list[ReceivedSpan]:
        """The spans of ``project`` (of one trace if ``trace_id`` is given), oldest first.

        Polls until at least ``min_count`` are stored; raises ``TimeoutError`` with the
        count found and the log tail when they are not there within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            found = self._read_spans(project, trace_id)
            if len(found) >= min_count:
                return found
            if time.monotonic() > deadline:
                where = f"project {project!r}" + (f", trace {trace_id}" if trace_id else "")
                raise TimeoutError(
                    f"Phoenix holds {len(found)} span(s) in {where} after {timeout_s:g} s, "
                    f"expected at least {min_count}; projects: {self.projects()}\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def projects(self) -> list[str]:
        """The names of the projects Phoenix has (``default`` always exists)."""
        names: list[str] = []
        cursor: str | None = None
        while True:
            page = self._get("/v1/projects", {"limit": 100} | ({"cursor": cursor} if cursor else {}))
            names.extend(project["name"] for project in page["data"])
            if not (cursor := page.get("next_cursor")):
                return names

    def close(self) -> None:
        """Stop the server (SIGTERM to its PID, SIGKILL if it lingers) and reap it."""
        client, self._client = self._client, None
        if client is not None:
            client.close()
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_STOP_TIMEOUT_S)
        else:
            process.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _environment(self) -> dict[str, str]:
        home, tmp, work = (self.directory / name for name in ("home", "tmp", "work"))
        for folder in (home, tmp, work):
            folder.mkdir(parents=True, exist_ok=True)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
        return inherited | {
            "HOME": str(home),
            "TMPDIR": str(tmp),  # Phoenix keeps pid files under $TMPDIR/.arize-phoenix
            "PHOENIX_WORKING_DIR": str(work),  # the SQLite database and exports
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(self.port),
            "PHOENIX_GRPC_PORT": str(self.grpc_port),
            "PHOENIX_TELEMETRY_ENABLED": "false",
            "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
            "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
            "PHOENIX_ENABLE_MCP_SERVER": "false",
            "PHOENIX_LOG_MIGRATIONS": "false",
        }

    def _launch(self, python: Path, ready_timeout_s: float) -> None:
        environment = self._environment()
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(python), "-I", str(LAUNCHER)],
                cwd=self.directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._client = httpx.Client(base_url=self.url, timeout=10)
        deadline = started + ready_timeout_s
        while not self._ready():
            if self._process.poll() is not None or time.monotonic() > deadline:
                exit_code = self._process.poll()
                self.close()
                state = f"exited with {exit_code}" if exit_code is not None else f"not ready in {ready_timeout_s:g} s"
                raise RuntimeError(f"Phoenix on 127.0.0.1:{self.port} {state}:\n{self.log_tail()}")
            time.sleep(0.2)
        self.ready_in_s = time.monotonic() - started

    def _ready(self) -> bool:
        assert self._client is not None
        try:
            return self._client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def _get(self, path: str, params: Mapping[str, Any]) -> Any:
        if self._client is None or self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"Phoenix is not running:\n{self.log_tail()}")
        response = self._client.get(path, params=dict(params))
        response.raise_for_status()
        return response.json()

    def _read_spans(self, project: str, trace_id: str | None) -> list[ReceivedSpan]:
        path = f"/v1/projects/{quote(project, safe='')}/spans"
        params: dict[str, Any] = {"limit": _PAGE_SIZE, "sort": "start_time", "order": "asc"}
        if trace_id is not None:
            params["trace_id"] = trace_id
        spans: list[ReceivedSpan] = []
        while True:
            try:
                page = self._get(path, params)
            except httpx.HTTPStatusError as error:
                if error.response.status_code == 404:  # the project has no span yet
                    return []
                raise
            spans.extend(_span_from_json(span) for span in page["data"])
            if not (cursor := page.get("next_cursor")):
                return spans
            params["cursor"] = cursor


@pytest.fixture(scope="session")
def phoenix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PhoenixServer]:
    """A Phoenix shared by the session; tests keep apart by project name or trace id."""
    with PhoenixServer.start(tmp_path_factory.mktemp("phoenix")) as server:
        yield server
