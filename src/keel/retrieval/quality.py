"""Index quality of one version: duplicates, chunk sizes, ACL gaps and documents nobody retrieves.

Measured, for ``keel index report``:

* **Exact duplicates**: passages whose normalised text (``text_sha256``: whitespace
  collapsed, lower-cased) repeats an earlier passage's. The ratio is the share of
  passages that are such repeats.
* **Near duplicates**: pairs of distinct texts whose word 3-shingles have a Jaccard
  similarity of at least :data:`NEAR_DUPLICATE_JACCARD` (0.8). Candidates come from
  MinHash (64 hashes) with locality-sensitive hashing (16 bands of 4 rows: a pair at
  Jaccard 0.8 is a candidate with probability above 99.9%), and every candidate is
  confirmed by its exact Jaccard, so no reported pair is a false positive. The ratio is
  the share of passages whose text has at least one near duplicate.
* **Chunk sizes** in words (whitespace-separated, as the chunker counts): min, p50,
  p95 (nearest rank), max and a histogram whose bins follow the contract's
  ``chunking.min_words`` and ``max_words``; passages under ``min_words`` are *tiny*,
  those over ``max_words`` *oversized*.
* **Documents without an ACL of their own**: readable by no one (no groups), or by the
  contract's ``access.default_groups`` only (ACL origin ``default``).
* **Documents never retrieved** in the last ``days`` days: no passage of theirs (by
  chunk id or document id) among the hits of any ``retrieve`` span of the traces
  recorded in that window, whoever asked.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from keel.contract import ChunkingSettings
from keel.errors import IndexVersionError, NotReady
from keel.retrieval.snapshot import PassageRecord, read_manifest, read_passages
from keel.retrieval.versions import IndexStore
from keel.store import Database

__all__ = [
    "NEAR_DUPLICATE_JACCARD",
    "AclGap",
    "HistogramBin",
    "NearDuplicate",
    "QualityReport",
    "SizeStats",
    "UnretrievedDocuments",
    "acl_gaps",
    "near_duplicates",
    "quality_report",
    "size_stats",
    "unretrieved_documents",
]

NEAR_DUPLICATE_JACCARD = 0.8
"""Jaccard similarity of word 3-shingles at which two passages are near duplicates."""

_SHINGLE = 3
_BANDS, _ROWS = 16, 4
_PRIME = (1 << 31) - 1
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, kw_only=True)
class HistogramBin:
    """Passages whose word count is in ``[low, high]`` (``high`` ``None``: no upper bound)."""

    low: int
    high: int | None
    count: int


@dataclass(frozen=True, kw_only=True)
class SizeStats:
    """The distribution of passage sizes in words."""

    min: int
    p50: int
    p95: int
    max: int
    mean: float
    histogram: list[HistogramBin]


@dataclass(frozen=True, kw_only=True)
class NearDuplicate:
    """Two passages with nearly the same text."""

    a: str
    b: str
    a_path: str
    b_path: str
    jaccard: float


@dataclass(frozen=True, kw_only=True)
class AclGap:
    """A document without an ACL of its own."""

    doc_id: str
    path: str
    title: str
    acl: str
    """``none`` (readable by no one) or ``default`` (the contract's default groups only)."""
    groups: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class UnretrievedDocuments:
    """Documents none of whose passages was retrieved in the window."""

    days: float
    since: float
    requests: int
    """Requests with a ``retrieve`` span in the window: with none, every document is unretrieved."""
    documents: list[tuple[str, str]]
    """``(doc_id, path)`` of each such document."""


@dataclass(frozen=True, kw_only=True)
class QualityReport:
    """The quality of one index version."""

    version: int
    created_at: float | None
    documents: int
    passages: int
    exact_duplicate_ratio: float
    exact_duplicates: list[list[str]]
    """Groups of passage ids with the same text."""
    near_duplicate_ratio: float
    near_duplicates: list[NearDuplicate]
    sizes: SizeStats
    min_words: int
    max_words: int
    tiny: list[str]
    oversized: list[str]
    acl_gaps: list[AclGap]
    unretrieved: UnretrievedDocuments | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form shown by ``keel index report --json``."""
        passages = max(self.passages, 1)
        return {
            "version": self.version,
            "created_at": self.created_at,
            "documents": self.documents,
            "passages": self.passages,
            "duplicates": {
                "exact_ratio": round(self.exact_duplicate_ratio, 4),
                "exact_groups": self.exact_duplicates,
                "near_ratio": round(self.near_duplicate_ratio, 4),
                "near_threshold": NEAR_DUPLICATE_JACCARD,
                "near_pairs": [
                    {"a": n.a, "b": n.b, "a_path": n.a_path, "b_path": n.b_path, "jaccard": round(n.jaccard, 3)}
                    for n in self.near_duplicates
                ],
            },
            "sizes": {
                "min": self.sizes.min,
                "p50": self.sizes.p50,
                "p95": self.sizes.p95,
                "max": self.sizes.max,
                "mean": round(self.sizes.mean, 1),
                "histogram": [{"low": b.low, "high": b.high, "count": b.count} for b in self.sizes.histogram],
                "min_words": self.min_words,
                "max_words": self.max_words,
                "tiny": {"count": len(self.tiny), "ratio": round(len(self.tiny) / passages, 4), "ids": self.tiny},
                "oversized": {
                    "count": len(self.oversized),
                    "ratio": round(len(self.oversized) / passages, 4),
                    "ids": self.oversized,
                },
            },
            "acl": [
                {"doc_id": g.doc_id, "path": g.path, "title": g.title, "acl": g.acl, "groups": list(g.groups)}
                for g in self.acl_gaps
            ],
            "unretrieved": None
            if self.unretrieved is None
            else {
                "days": self.unretrieved.days,
                "since": self.unretrieved.since,
                "requests": self.unretrieved.requests,
                "count": len(self.unretrieved.documents),
                "ratio": round(len(self.unretrieved.documents) / max(self.documents, 1), 4),
                "documents": [{"doc_id": d, "path": p} for d, p in self.unretrieved.documents],
            },
            "notes": self.notes,
        }


def quality_report(
    store: IndexStore,
    *,
    chunking: ChunkingSettings,
    default_groups: Sequence[str] = (),
    db: Database | None = None,
    version: int | None = None,
    days: float = 30.0,
    now: float | None = None,
) -> QualityReport:
    """The quality of ``version`` (default: the active one); with ``db``, ACL origins and retrieval from traces."""
    if version is None:
        version = store.active_version()
        if version is None:
            raise NotReady("No index has been built yet: run `keel ingest` first.")
    folder = store.folder(version)
    if not folder.is_dir():
        available = ", ".join(f"v{v}" for v in store.versions()) or "none"
        raise IndexVersionError(f"index version {version} does not exist; available: {available}")
    passages = read_passages(folder)
    created = read_manifest(folder).get("created_at")
    words = [len(p.text.split()) for p in passages]
    origins: dict[str, str] = {}
    unretrieved = None
    notes: list[str] = []
    if db is not None:
        origins = {
            str(r["doc_id"]): str(r["acl_origin"])
            for r in db.connection().execute("SELECT doc_id, acl_origin FROM documents")
        }
        moment = time.time() if now is None else now
        unretrieved = unretrieved_documents(passages, db, since=moment - days * 86400, days=days)
        if unretrieved.requests == 0:
            notes.append(f"no request retrieved anything in the last {days:g} days: every document counts as unused")
    by_text: dict[str, list[str]] = {}
    for p in passages:
        by_text.setdefault(p.text_sha256, []).append(p.chunk_id)
    groups = [ids for ids in by_text.values() if len(ids) > 1]
    pairs = near_duplicates(passages)
    near_texts = {t for n in pairs for t in (n.a, n.b)}
    text_of = {p.chunk_id: p.text_sha256 for p in passages}
    near_hashes = {text_of[c] for c in near_texts}
    return QualityReport(
        version=version,
        created_at=float(created) if created is not None else None,
        documents=len({p.doc_id for p in passages}),
        passages=len(passages),
        exact_duplicate_ratio=sum(len(g) - 1 for g in groups) / len(passages) if passages else 0.0,
        exact_duplicates=groups,
        near_duplicate_ratio=sum(1 for p in passages if p.text_sha256 in near_hashes) / len(passages)
        if passages
        else 0.0,
        near_duplicates=pairs,
        sizes=size_stats(words, chunking),
        min_words=chunking.min_words,
        max_words=chunking.max_words,
        tiny=[p.chunk_id for p, n in zip(passages, words, strict=True) if n < chunking.min_words],
        oversized=[p.chunk_id for p, n in zip(passages, words, strict=True) if n > chunking.max_words],
        acl_gaps=acl_gaps(passages, origins, default_groups),
        unretrieved=unretrieved,
        notes=notes,
    )


def size_stats(words: Sequence[int], chunking: ChunkingSettings) -> SizeStats:
    """Min, p50, p95, max and a histogram of passage sizes, binned around the contract's bounds."""
    lo, hi = chunking.min_words, chunking.max_words
    step = max(1, math.ceil((hi - lo + 1) / 4))
    edges = [(0, lo - 1)] + [(s, min(s + step - 1, hi)) for s in range(lo, hi + 1, step)]
    bins = [HistogramBin(low=a, high=b, count=sum(1 for n in words if a <= n <= b)) for a, b in edges]
    bins.append(HistogramBin(low=hi + 1, high=None, count=sum(1 for n in words if n > hi)))
    if not words:
        return SizeStats(min=0, p50=0, p95=0, max=0, mean=0.0, histogram=bins)
    ordered = sorted(words)
    return SizeStats(
        min=ordered[0],
        p50=_nearest_rank(ordered, 0.50),
        p95=_nearest_rank(ordered, 0.95),
        max=ordered[-1],
        mean=sum(ordered) / len(ordered),
        histogram=bins,
    )


def near_duplicates(
    passages: Sequence[PassageRecord], *, threshold: float = NEAR_DUPLICATE_JACCARD
) -> list[NearDuplicate]:
    """Pairs of passages with different texts and shingle Jaccard >= ``threshold``, most similar first.

    One passage stands for each distinct text, so exact duplicates are not counted again.
    """
    firsts: dict[str, PassageRecord] = {}
    for p in passages:
        firsts.setdefault(p.text_sha256, p)
    reps = list(firsts.values())
    shingles = [_shingles(p.text) for p in reps]
    signatures = _minhash(shingles)
    candidates: set[tuple[int, int]] = set()
    for band in range(_BANDS):
        buckets: dict[bytes, list[int]] = {}
        block = signatures[:, band * _ROWS : (band + 1) * _ROWS]
        for i in range(len(reps)):
            if shingles[i]:
                buckets.setdefault(block[i].tobytes(), []).append(i)
        for members in buckets.values():
            for x in range(len(members)):
                for y in range(x + 1, len(members)):
                    candidates.add((members[x], members[y]))
    out = []
    for i, j in sorted(candidates):
        union = len(shingles[i] | shingles[j])
        score = len(shingles[i] & shingles[j]) / union if union else 0.0
        if score >= threshold:
            a, b = reps[i], reps[j]
            out.append(NearDuplicate(a=a.chunk_id, b=b.chunk_id, a_path=a.path, b_path=b.path, jaccard=score))
    return sorted(out, key=lambda n: (-n.jaccard, n.a_path, n.b_path))


def acl_gaps(passages: Sequence[PassageRecord], origins: dict[str, str], default_groups: Sequence[str]) -> list[AclGap]:
    """Documents readable by no one, or by the default groups only.

    ``origins`` maps document ids to their ACL origin from the project database; a
    document missing there counts as ``default`` when its groups are the default ones.
    """
    defaults = set(default_groups)
    seen: dict[str, PassageRecord] = {}
    for p in passages:
        seen.setdefault(p.doc_id, p)
    out = []
    for doc_id, p in sorted(seen.items(), key=lambda item: item[1].path):
        origin = origins.get(doc_id)
        if not p.groups:
            acl = "none"
        elif origin == "default" or (origin is None and defaults and _unqualified(p.groups) == defaults):
            acl = "default"
        else:
            continue
        out.append(AclGap(doc_id=doc_id, path=p.path, title=p.title, acl=acl, groups=p.groups))
    return out


_RETRIEVE_SPAN_SQL: dict[str, tuple[str, str]] = {
    "sqlite": (
        "SELECT COUNT(DISTINCT t.request_id) FROM traces t, json_each(t.data_json, '$.spans') s"
        " WHERE t.created_at >= ? AND json_extract(s.value, '$.name') = 'retrieve'"
        " AND json_type(s.value, '$.attributes.hits') = 'array'",
        "SELECT DISTINCT json_extract(h.value, '$.chunk_id') AS chunk_id, json_extract(h.value, '$.doc_id') AS doc_id"
        " FROM traces t, json_each(t.data_json, '$.spans') s, json_each(s.value, '$.attributes.hits') h"
        " WHERE t.created_at >= ? AND json_extract(s.value, '$.name') = 'retrieve'",
    ),
    "postgresql": (
        "SELECT COUNT(DISTINCT t.request_id) FROM traces t,"
        " jsonb_array_elements(CASE WHEN jsonb_typeof(t.data_json::jsonb -> 'spans') = 'array'"
        " THEN t.data_json::jsonb -> 'spans' ELSE '[]'::jsonb END) s"
        " WHERE t.created_at >= ? AND s ->> 'name' = 'retrieve'"
        " AND jsonb_typeof(s #> '{attributes,hits}') = 'array'",
        "SELECT DISTINCT h ->> 'chunk_id' AS chunk_id, h ->> 'doc_id' AS doc_id FROM traces t,"
        " jsonb_array_elements(CASE WHEN jsonb_typeof(t.data_json::jsonb -> 'spans') = 'array'"
        " THEN t.data_json::jsonb -> 'spans' ELSE '[]'::jsonb END) s,"
        " jsonb_array_elements(CASE WHEN jsonb_typeof(s #> '{attributes,hits}') = 'array'"
        " THEN s #> '{attributes,hits}' ELSE '[]'::jsonb END) h"
        " WHERE t.created_at >= ? AND s ->> 'name' = 'retrieve'",
    ),
}
"""Per dialect: how many requests recorded a retrieve span with hits, and the passages those hits name."""


def unretrieved_documents(
    passages: Sequence[PassageRecord], db: Database, *, since: float, days: float
) -> UnretrievedDocuments:
    """The documents of ``passages`` that no ``retrieve`` span recorded since ``since`` returned."""
    conn = db.connection()
    requests_sql, hits_sql = _RETRIEVE_SPAN_SQL[db.dialect]
    requests = conn.execute(requests_sql, (since,)).fetchone()[0]
    chunk_ids: set[str] = set()
    doc_ids: set[str] = set()
    for row in conn.execute(hits_sql, (since,)):
        if row["chunk_id"]:
            chunk_ids.add(str(row["chunk_id"]))
        if row["doc_id"]:
            doc_ids.add(str(row["doc_id"]))
    retrieved = doc_ids | {p.doc_id for p in passages if p.chunk_id in chunk_ids}
    documents: dict[str, str] = {}
    for p in passages:
        if p.doc_id not in retrieved:
            documents.setdefault(p.doc_id, p.path)
    ordered = sorted(documents.items(), key=lambda item: item[1])
    return UnretrievedDocuments(days=days, since=since, requests=int(requests), documents=ordered)


def _unqualified(groups: Sequence[str]) -> set[str]:
    """Groups without a ``tenant/`` prefix (the default groups of a tenant-limited source are qualified)."""
    return {g.rsplit("/", 1)[-1] for g in groups}


def _nearest_rank(ordered: Sequence[int], q: float) -> int:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _shingles(text: str) -> set[int]:
    words = _WORD.findall(text.lower())
    if len(words) < _SHINGLE:
        return {zlib.crc32(" ".join(words).encode())} if words else set()
    return {zlib.crc32(" ".join(words[i : i + _SHINGLE]).encode()) for i in range(len(words) - _SHINGLE + 1)}


def _minhash(shingles: Sequence[set[int]]) -> NDArray[np.uint64]:
    """One row of ``_BANDS * _ROWS`` MinHash values per shingle set (fixed seed: the same text, the same row)."""
    rng = np.random.default_rng(20260101)
    count = _BANDS * _ROWS
    a = rng.integers(1, _PRIME, size=count, dtype=np.uint64)
    b = rng.integers(0, _PRIME, size=count, dtype=np.uint64)
    out = np.full((len(shingles), count), np.iinfo(np.uint64).max, dtype=np.uint64)
    for i, values in enumerate(shingles):
        if values:
            x = np.fromiter(values, dtype=np.uint64, count=len(values))
            out[i] = ((a[:, None] * x[None, :] + b[:, None]) % _PRIME).min(axis=1)
    return out
