"""Where an ingest's heavy work runs: parsing and chunking files, and embedding passages.

The :class:`~keel.ingest.ingestor.Ingestor` decides what to read, resolves ACLs,
removes embedded instructions, reuses stored vectors and writes the database and the
index version itself, in the calling process. An :class:`IngestEngine` only does the
pure, heavy steps in between, and returns their results in input order, so any engine
produces the same passages, ids and vectors:

* :class:`LocalEngine` (the default) runs them in this process with the ingest's
  embedder, as Keel always has;
* :class:`keel.ingest.ray_engine.RayEngine` runs them as Ray tasks on a Ray cluster
  (``keel ingest --engine ray``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from keel.contract import ChunkingSettings
from keel.ingest.chunker import ChunkDraft, chunk_document
from keel.ingest.document import ParsedDocument
from keel.ingest.parsers import ParseError, parse_bytes, parse_file
from keel.retrieval.embedder import Embedder

__all__ = ["EngineName", "EngineStats", "IngestEngine", "LocalEngine", "ParseJob", "Parsed", "parse_and_chunk"]

EngineName = Literal["local", "ray"]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, as :data:`keel.ingest.ingestor.Progress`."""


@dataclass(frozen=True, kw_only=True)
class ParseJob:
    """One file to parse: its path under ``docs/`` and where it is on this machine."""

    rel_path: str
    path: Path


@dataclass(frozen=True, kw_only=True)
class Parsed:
    """One file parsed and cut into passages, or why it could not be."""

    rel_path: str
    document: ParsedDocument | None = None
    drafts: list[ChunkDraft] = field(default_factory=list)
    error: str | None = None


@dataclass(kw_only=True)
class EngineStats:
    """What an engine ran during one ingest: how many tasks, and on which workers (``node:pid``)."""

    engine: EngineName
    tasks: int = 0
    workers: list[str] = field(default_factory=list)


class IngestEngine(Protocol):
    """Runs the heavy, side-effect-free steps of an ingest; results come back in input order."""

    @property
    def name(self) -> EngineName:
        """``local`` or ``ray``."""
        ...

    def parse(self, jobs: Sequence[ParseJob], *, chunking: ChunkingSettings, progress: Progress) -> list[Parsed]:
        """Each job's file parsed and chunked (stage ``parse``)."""
        ...

    def embed(self, texts: Sequence[str], *, batch: int, progress: Progress) -> NDArray[np.float32]:
        """``(len(texts), dim)`` vectors, embedded ``batch`` texts at a time (stage ``embed``)."""
        ...

    def take_stats(self) -> EngineStats:
        """What ran since the last call (then starts counting again)."""
        ...


def parse_and_chunk(rel_path: str, data: bytes | Path, chunking: ChunkingSettings) -> Parsed:
    """Parse one file (its bytes, or its path) and cut it into passages; a parse failure is returned, not raised."""
    try:
        document = parse_file(data) if isinstance(data, Path) else parse_bytes(data, name=rel_path)
    except (ParseError, OSError) as exc:
        return Parsed(rel_path=rel_path, error=str(exc))
    return Parsed(
        rel_path=rel_path, document=document, drafts=chunk_document(document, doc_path=rel_path, settings=chunking)
    )


class LocalEngine:
    """Parses and embeds in this process, one file and one batch at a time, with the ingest's own embedder."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    @property
    def name(self) -> EngineName:
        """``local``."""
        return "local"

    def parse(self, jobs: Sequence[ParseJob], *, chunking: ChunkingSettings, progress: Progress) -> list[Parsed]:
        """Each job's file parsed and chunked, read from disk as it comes."""
        results = []
        for done, job in enumerate(jobs, start=1):
            results.append(parse_and_chunk(job.rel_path, job.path, chunking))
            progress("parse", done, len(jobs))
        return results

    def embed(self, texts: Sequence[str], *, batch: int, progress: Progress) -> NDArray[np.float32]:
        """The texts' vectors, ``batch`` at a time."""
        out = np.empty((len(texts), self._embedder.dim), dtype=np.float32)
        for start in range(0, len(texts), batch):
            out[start : start + batch] = self._embedder.embed(texts[start : start + batch])
            progress("embed", min(start + batch, len(texts)), len(texts))
        return out

    def take_stats(self) -> EngineStats:
        """Always ``local`` with no tasks."""
        return EngineStats(engine="local")
