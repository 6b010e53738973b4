"""Index versions built from plain passages, without an embedding model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from keel.retrieval.snapshot import PassageRecord, SnapshotWriter
from keel.retrieval.versions import IndexStore
from keel.text import terms


def passage(
    path: str, text: str, *, n: int = 0, groups: tuple[str, ...] = ("everyone",), title: str = ""
) -> PassageRecord:
    """A passage of document ``path`` whose id, like the chunker's, changes with its text."""
    chunk = hashlib.sha256(f"{path}\x00{n}\x00{text}".encode()).hexdigest()[:16]
    return PassageRecord(
        chunk_id="c_" + chunk,
        doc_id="d_" + hashlib.sha256(path.encode()).hexdigest()[:16],
        title=title or path,
        path=path,
        heading=title or path,
        text=text,
        groups=groups,
        text_sha256=hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest(),
    )


def publish(store: IndexStore, passages: list[PassageRecord], *, actor: str = "ingest") -> int:
    """Publish ``passages`` as a new version (random unit vectors) and return its number."""
    rng = np.random.default_rng(len(passages))
    vectors = rng.normal(size=(len(passages), 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    def write(version: int, folder: Path) -> None:
        SnapshotWriter(folder).write(
            version=version,
            embedder="test",
            passages=passages,
            vectors=vectors,
            passage_terms=[terms(p.text) for p in passages],
            extra={"created_at": 1_000_000.0 + version},
        )

    return store.publish(write, actor=actor)
