"""An immutable, persisted index version: vectors, lexical postings, ACL postings, passages.

A version lives in its own folder (``index/v000007/``) and is never modified after it
is written; a new ingest writes a new folder and then moves the ``ACTIVE`` pointer,
so requests in flight finish on the version they started with.

Files:

* ``manifest.json`` -- version, embedder, counts, BM25 statistics;
* ``vectors.npy`` -- float32 ``(rows, dim)``, L2-normalised, memory-mapped on load;
* ``lexical.npz`` -- vocabulary and CSR postings (term -> rows, term frequencies), row lengths;
* ``acl.npz`` -- CSR postings group -> rows;
* ``ann.npz`` -- the IVF index of :mod:`keel.retrieval.ann` (only above its size threshold);
* ``passages.db`` -- SQLite: one row per passage (id, document, title, path, heading, text, groups, and
  the fingerprint of the injection detector its text scanned clean under, if any).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keel.retrieval.ann import ANN_MIN_ROWS, IvfIndex, build_ivf
from keel.store.database import Row

__all__ = ["AclView", "IndexSnapshot", "Passage", "PassageRecord", "SnapshotWriter", "read_manifest", "read_passages"]

MANIFEST = "manifest.json"
VECTORS = "vectors.npy"
LEXICAL = "lexical.npz"
ACL = "acl.npz"
PASSAGES = "passages.db"


@dataclass(frozen=True, kw_only=True)
class PassageRecord:
    """What a snapshot stores for one passage."""

    chunk_id: str
    doc_id: str
    title: str
    path: str
    heading: str
    text: str
    groups: tuple[str, ...]
    text_sha256: str
    vetted_by: str | None = None
    """The fingerprint of the injection detector under which ``text`` scanned clean, if one did."""

    @staticmethod
    def fields_of(row: Row) -> dict[str, Any]:
        """Constructor arguments from a database row with the same column names (groups as JSON)."""
        return {
            "chunk_id": row["chunk_id"],
            "doc_id": row["doc_id"],
            "title": row["title"],
            "path": row["path"],
            "heading": row["heading"],
            "text": row["text"],
            "groups": tuple(json.loads(row["groups_json"])),
            "text_sha256": row["text_sha256"],
            # keys(): a row's ``in`` looks at its values; versions written before vetting lack the column
            "vetted_by": row["vetted_by"] if "vetted_by" in row.keys() else None,  # noqa: SIM118
        }


@dataclass(frozen=True, kw_only=True)
class Passage(PassageRecord):
    """A stored passage with its row in the snapshot."""

    row: int


@dataclass(frozen=True, kw_only=True)
class AclView:
    """The part of a snapshot one set of groups may read, with its own statistics.

    Lexical statistics (passage count, average length) are computed over the readable
    rows only, so scores are exactly those of an index holding only those passages and
    reveal nothing about passages outside them. ``rows`` lists the readable rows (for
    exact scoring of a narrow view); ``list_counts`` counts them per ANN list, when the
    snapshot has an ANN index.
    """

    mask: NDArray[np.bool_]
    count: int
    avg_length: float
    rows: NDArray[np.int32]
    list_counts: NDArray[np.int64] | None = None


class SnapshotWriter:
    """Writes one index version folder from passages, their vectors and their terms.

    Versions of at least ``ann_min_rows`` passages also get an ANN index (``ann.npz``).
    """

    def __init__(self, folder: Path, *, ann_min_rows: int = ANN_MIN_ROWS) -> None:
        self.folder = folder
        self.ann_min_rows = ann_min_rows

    def write(
        self,
        *,
        version: int,
        embedder: str,
        passages: Sequence[PassageRecord],
        vectors: NDArray[np.float32],
        passage_terms: Sequence[Sequence[str]],
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Write every file; the caller renames the folder into place afterwards."""
        self.folder.mkdir(parents=True, exist_ok=False)
        n = len(passages)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        np.save(self.folder / VECTORS, np.ascontiguousarray(vectors, dtype=np.float32))
        vocab, indptr, rows, tfs, lengths = _postings(passage_terms)
        np.savez(self.folder / LEXICAL, vocab=vocab, indptr=indptr, rows=rows, tfs=tfs, lengths=lengths)
        groups, g_indptr, g_rows = _acl_postings([p.groups for p in passages])
        np.savez(self.folder / ACL, groups=groups, indptr=g_indptr, rows=g_rows)
        ann_stats: dict[str, Any] | None = None
        if n and dim and n >= self.ann_min_rows:
            index, ann_stats = build_ivf(vectors)
            index.save(self.folder)
        conn = sqlite3.connect(self.folder / PASSAGES)
        try:
            conn.execute(
                "CREATE TABLE passages (row INTEGER PRIMARY KEY, chunk_id TEXT NOT NULL UNIQUE, doc_id TEXT NOT NULL,"
                " title TEXT NOT NULL, path TEXT NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL,"
                " groups_json TEXT NOT NULL, text_sha256 TEXT NOT NULL, vetted_by TEXT)"
            )
            conn.executemany(
                "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        i,
                        p.chunk_id,
                        p.doc_id,
                        p.title,
                        p.path,
                        p.heading,
                        p.text,
                        json.dumps(list(p.groups)),
                        p.text_sha256,
                        p.vetted_by,
                    )
                    for i, p in enumerate(passages)
                ],
            )
            conn.commit()
        finally:
            conn.close()
        manifest = {
            "version": version,
            "embedder": embedder,
            "dim": dim,
            "passages": n,
            "documents": len({p.doc_id for p in passages}),
            "avg_length": float(lengths.mean()) if n else 0.0,
            **({"ann": ann_stats} if ann_stats else {}),
            **(extra or {}),
        }
        (self.folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


class IndexSnapshot:
    """A loaded, read-only index version."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        self.version = int(self.manifest["version"])
        self.embedder = str(self.manifest["embedder"])
        self.vectors: NDArray[np.float32] = np.load(folder / VECTORS, mmap_mode="r")
        lexical = np.load(folder / LEXICAL)
        self.vocab: dict[str, int] = {str(t): i for i, t in enumerate(lexical["vocab"])}
        self.term_indptr: NDArray[np.int64] = lexical["indptr"]
        self.term_rows: NDArray[np.int32] = lexical["rows"]
        self.term_tfs: NDArray[np.float32] = lexical["tfs"]
        self.lengths: NDArray[np.float32] = lexical["lengths"]
        acl = np.load(folder / ACL)
        self._group_index: dict[str, int] = {str(g): i for i, g in enumerate(acl["groups"])}
        self._group_indptr: NDArray[np.int64] = acl["indptr"]
        self._group_rows: NDArray[np.int32] = acl["rows"]
        self.ann: IvfIndex | None = IvfIndex.load(folder)
        self._local = threading.local()
        self._view_cache: dict[frozenset[str], AclView] = {}
        self._mask_lock = threading.Lock()

    @property
    def size(self) -> int:
        """Number of passages."""
        return int(self.lengths.shape[0])

    def view(self, groups: frozenset[str]) -> AclView:
        """The rows readable by a member of ``groups`` (cached per group set)."""
        cached = self._view_cache.get(groups)
        if cached is not None:
            return cached
        mask = np.zeros(self.size, dtype=np.bool_)
        for group in groups:
            index = self._group_index.get(group)
            if index is not None:
                mask[self._group_rows[self._group_indptr[index] : self._group_indptr[index + 1]]] = True
        mask.setflags(write=False)
        rows = np.flatnonzero(mask).astype(np.int32)
        rows.setflags(write=False)
        count = int(rows.size)
        avg = float(self.lengths[rows].mean()) if count else 1.0
        list_counts = self.ann.readable_per_list(mask) if self.ann is not None else None
        view = AclView(mask=mask, count=count, avg_length=max(avg, 1.0), rows=rows, list_counts=list_counts)
        with self._mask_lock:
            if len(self._view_cache) > 1024:
                self._view_cache.clear()
            self._view_cache[groups] = view
        return view

    def passages(self, rows: Sequence[int]) -> list[Passage]:
        """The stored passages at ``rows``, in the order given."""
        if not rows:
            return []
        conn = self._conn()
        marks = ",".join("?" * len(rows))
        found = {
            r["row"]: r
            for r in conn.execute(f"SELECT * FROM passages WHERE row IN ({marks})", [int(r) for r in rows]).fetchall()
        }
        out = []
        for row in rows:
            r = found[int(row)]
            out.append(Passage(row=int(row), **PassageRecord.fields_of(r)))
        return out

    def passage_by_id(self, chunk_id: str) -> Passage | None:
        """The passage with ``chunk_id``, or ``None``."""
        row = self._conn().execute("SELECT row FROM passages WHERE chunk_id = ?", (chunk_id,)).fetchone()
        return self.passages([int(row["row"])])[0] if row else None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(f"file:{self.folder / PASSAGES}?mode=ro", uri=True, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of the version in ``folder``, without loading its vectors or postings."""
    data: dict[str, Any] = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    return data


def read_passages(folder: Path) -> list[PassageRecord]:
    """Every passage of the version in ``folder``, in row order (for reports and diffs, not for search)."""
    conn = sqlite3.connect(f"file:{folder / PASSAGES}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM passages ORDER BY row").fetchall()
    finally:
        conn.close()
    return [PassageRecord(**PassageRecord.fields_of(r)) for r in rows]


def _postings(
    passage_terms: Sequence[Sequence[str]],
) -> tuple[NDArray[np.str_], NDArray[np.int64], NDArray[np.int32], NDArray[np.float32], NDArray[np.float32]]:
    """CSR postings term -> (rows, term frequencies), terms sorted, rows ascending within a term."""
    n = len(passage_terms)
    ids: dict[str, int] = {}
    flat = np.fromiter(
        (ids.setdefault(term, len(ids)) for row_terms in passage_terms for term in row_terms), dtype=np.int64
    )
    counts = np.fromiter((len(row_terms) for row_terms in passage_terms), dtype=np.int64, count=n)
    vocab = sorted(ids)
    rank = np.empty(len(ids), dtype=np.int64)
    for position, term in enumerate(vocab):
        rank[ids[term]] = position
    keys = rank[flat] * max(n, 1) + np.repeat(np.arange(n, dtype=np.int64), counts)
    unique, tfs = np.unique(keys, return_counts=True)
    indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
    np.cumsum(np.bincount(unique // max(n, 1), minlength=len(vocab)), out=indptr[1:])
    return (
        np.array(vocab, dtype=np.str_),
        indptr,
        (unique % max(n, 1)).astype(np.int32),
        tfs.astype(np.float32),
        counts.astype(np.float32),
    )


def _acl_postings(
    groups_per_row: Sequence[Sequence[str]],
) -> tuple[NDArray[np.str_], NDArray[np.int64], NDArray[np.int32]]:
    per_group: dict[str, list[int]] = {}
    for row, groups in enumerate(groups_per_row):
        for group in groups:
            per_group.setdefault(group, []).append(row)
    names = sorted(per_group)
    indptr = np.zeros(len(names) + 1, dtype=np.int64)
    rows: list[int] = []
    for i, name in enumerate(names):
        rows.extend(per_group[name])
        indptr[i + 1] = len(rows)
    return np.array(names, dtype=np.str_), indptr, np.array(rows, dtype=np.int32)
