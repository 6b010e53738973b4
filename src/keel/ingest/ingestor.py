"""Incremental ingestion of a project's ``docs/`` folder into a new index version.

Unchanged files are skipped (content hash), changed files are re-parsed and only
their new passages embedded, deleted files are removed, and a new immutable index
version is published when anything changed. Every document gets its ACL here, from
its front matter, its source or the contract's default, and one that names no group
is readable by no one.

An ingest may cover only some sources (``sources=``, as ``keel ingest --due`` does):
the files of every other source are neither read nor removed, and stay in the new
version. A source whose folder (or part of it) cannot be read, or one of whose files
cannot be, *fails*: its documents from before are kept, and the outcome of every
source covered is recorded for :mod:`keel.ingest.freshness`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from keel.contract import Contract, Source
from keel.ingest.acl import resolve_acl, source_for
from keel.ingest.chunker import ChunkDraft
from keel.ingest.engine import IngestEngine, LocalEngine, ParseJob
from keel.ingest.freshness import FreshnessStore, SourceOutcome
from keel.ingest.scan import Scan, scan_docs, source_problems
from keel.retrieval.embedder import Embedder
from keel.retrieval.pgvector import PgVectorIndex
from keel.retrieval.snapshot import PassageRecord, SnapshotWriter
from keel.retrieval.versions import IndexStore
from keel.store import Database, Row
from keel.store.database import Connection
from keel.text import terms

__all__ = ["DocumentSummary", "IngestReport", "Ingestor", "Progress", "doc_id_for"]

_STRIP_ROUNDS = 3
"""How many times a passage's instruction sentences are stripped and the rest scanned again."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called as files are read and passages embedded."""

EMBED_BATCH = 64


def doc_id_for(rel_path: str) -> str:
    """A document's stable id, from its path under ``docs/``."""
    return "d_" + hashlib.sha256(rel_path.encode()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class DocumentSummary:
    """One indexed document as the ingest report lists it."""

    path: str
    title: str
    groups: list[str]
    acl_origin: str
    passages: int


class _Verdict(Protocol):
    @property
    def is_attack(self) -> bool: ...

    def stripped(self, text: str) -> str: ...


class PassageScanner(Protocol):
    """Finds instructions to an AI inside document text (see :mod:`keel.policy.injection`)."""

    @property
    def fingerprint(self) -> str:
        """Identifies the verdicts: scanners with the same fingerprint judge every text alike."""
        ...

    def scan_passage(self, text: str) -> _Verdict:
        """The verdict on one passage."""
        ...


@dataclass(kw_only=True)
class IngestReport:
    """What one ingest run did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    acl_changed: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    no_acl: list[str] = field(default_factory=list)
    widened_acl: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    """Groups of passages with identical text, each as ``path#ordinal`` entries."""
    embedded_instructions: list[str] = field(default_factory=list)
    """Passages (``path#ordinal``) that carried instructions to an AI: those sentences are not indexed."""
    documents: int = 0
    passages: int = 0
    passages_embedded: int = 0
    version: int | None = None
    previous_version: int | None = None
    seconds: float = 0.0
    per_document: list[DocumentSummary] = field(default_factory=list)
    scope: list[str] | None = None
    """The sources this ingest covered; ``None``: the whole of docs/."""
    sources: list[SourceOutcome] = field(default_factory=list)
    """The outcome of every contract source covered, in contract order."""
    engine: str = "local"
    """Where parsing and embedding ran (:mod:`keel.ingest.engine`): ``local`` or ``ray``."""
    engine_tasks: int = 0
    """How many tasks the engine ran (0 for ``local``)."""
    engine_workers: list[str] = field(default_factory=list)
    """The workers (``node:pid``) that ran them."""

    @property
    def changed(self) -> bool:
        """Whether the document set differs from the last ingest."""
        return bool(self.added or self.updated or self.deleted or self.acl_changed)


@dataclass(frozen=True, kw_only=True)
class _Pending:
    rel_path: str
    doc_id: str
    source: str
    title: str
    groups: list[str]
    declared: list[str] | None
    acl_origin: str
    sha256: str
    size: int
    drafts: list[ChunkDraft]
    is_new: bool


@dataclass(frozen=True, kw_only=True)
class _Step:
    """One file of the folder as read: unreadable (why), or its hash and size."""

    rel: str
    path: Path
    unreadable: str | None = None
    sha256: str = ""
    size: int = 0


class Ingestor:
    """Ingests ``docs_dir`` into ``db`` and publishes index versions to ``index_store``."""

    def __init__(
        self,
        *,
        contract: Contract,
        docs_dir: Path,
        db: Database,
        index_store: IndexStore,
        embedder: Embedder,
        keep_versions: int = 5,
        detector: PassageScanner | None = None,
        clock: Callable[[], float] = time.time,
        engine: IngestEngine | None = None,
    ) -> None:
        injection = contract.policy.injection
        if detector is None and injection.scan_passages:
            from keel.policy.injection import InjectionDetector

            detector = InjectionDetector(threshold=injection.threshold)
        self._detector = detector if injection.scan_passages else None
        self._contract = contract
        self._docs_dir = docs_dir
        self._db = db
        self._index = index_store
        self._embedder = embedder
        self._engine: IngestEngine = engine if engine is not None else LocalEngine(embedder)
        self._keep_versions = keep_versions
        self._clock = clock
        self._freshness = FreshnessStore(db)
        # retrieval.dense_backend: pgvector: every version's vectors and ACLs also go to PostgreSQL.
        self._dense = (
            PgVectorIndex(db, dimensions=embedder.dim) if contract.retrieval.dense_backend == "pgvector" else None
        )

    def run(
        self, *, progress: Progress | None = None, rebuild: bool = False, sources: Collection[str] | None = None
    ) -> IngestReport:
        """Ingest the folder, or only the files of ``sources`` (names of contract sources).

        Publishes a new index version when anything changed (or ``rebuild``), and records
        each covered source's outcome. Raises ``ValueError`` for a name the contract lacks.
        """
        covered = self._covered(sources)
        attempted_at = self._clock()
        try:
            report = self._run(progress, rebuild, None if sources is None else frozenset(s.name for s in covered))
        except Exception as exc:
            reason = f"ingest failed: {type(exc).__name__}: {exc}"
            self._freshness.record(
                [SourceOutcome(source=s.name, ok=False, error=reason) for s in covered], at=attempted_at
            )
            raise
        self._freshness.record(report.sources, at=attempted_at)
        return report

    def _covered(self, names: Collection[str] | None) -> list[Source]:
        if names is None:
            return list(self._contract.sources)
        known = {s.name for s in self._contract.sources}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ValueError(f"no such source in the contract: {', '.join(unknown)} (sources: {sorted(known)})")
        return [s for s in self._contract.sources if s.name in names]

    def _source_name(self, rel_path: str) -> str | None:
        source = source_for(self._contract, rel_path)
        return source.name if source else None

    def _run(self, progress: Progress | None, rebuild: bool, scope: frozenset[str] | None) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(
            previous_version=self._index.active_version(), scope=None if scope is None else sorted(scope)
        )
        notify: Progress = progress or (lambda stage, done, total: None)
        if not self._docs_dir.is_dir():
            raise FileNotFoundError(f"documents folder {self._docs_dir} does not exist")
        scan = scan_docs(self._docs_dir, self._contract, scope)
        files = scan.files
        report.failed.extend(scan.failed)
        report.skipped.extend(scan.skipped)
        conn = self._db.connection()
        known = {
            row["path"]: row
            for row in conn.execute("SELECT doc_id, path, sha256, groups_json, declared_groups_json FROM documents")
        }
        stale = self._stale_documents(conn)
        pending: list[_Pending] = []
        acl_updates: list[tuple[str, list[str], str, str]] = []
        # Files are read and hashed here, parsed by the engine, then judged in file order.
        steps: list[_Step] = []
        for done, path in enumerate(files, start=1):
            rel = path.relative_to(self._docs_dir).as_posix()
            notify("read", done, len(files))
            try:
                data = path.read_bytes()
            except OSError as exc:
                steps.append(_Step(rel=rel, path=path, unreadable=f"cannot read: {exc.strerror or exc}"))
                continue
            steps.append(_Step(rel=rel, path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
        to_parse = [
            step
            for step in steps
            if step.unreadable is None and not self._unchanged(known.get(step.rel), step.sha256, stale)
        ]
        parsed_files = dict(
            zip(
                (step.rel for step in to_parse),
                self._engine.parse(
                    [ParseJob(rel_path=step.rel, path=step.path) for step in to_parse],
                    chunking=self._contract.chunking,
                    progress=notify,
                ),
                strict=True,
            )
        )
        for step in steps:
            rel, sha = step.rel, step.sha256
            previous = known.get(rel)
            if step.unreadable is not None:
                kept = " (previous version kept)" if previous is not None else ""
                report.failed.append((rel, f"{step.unreadable}{kept}"))
                continue
            if previous is not None and rel not in parsed_files:
                declared = json.loads(previous["declared_groups_json"]) if previous["declared_groups_json"] else None
                decision = resolve_acl(self._contract, rel, declared)
                self._note_acl(report, rel, decision.groups, decision.widens_source)
                if decision.groups != json.loads(previous["groups_json"]):
                    acl_updates.append((previous["doc_id"], decision.groups, decision.origin, rel))
                else:
                    report.unchanged.append(rel)
                continue
            result = parsed_files[rel]
            parsed = result.document
            if parsed is None:
                kept = " (previous version kept)" if previous is not None else ""
                report.failed.append((rel, f"{result.error}{kept}"))
                continue
            decision = resolve_acl(self._contract, rel, parsed.groups)
            self._note_acl(report, rel, decision.groups, decision.widens_source)
            source = source_for(self._contract, rel)
            drafts = self._defang(rel, result.drafts, report)
            if not drafts:
                report.skipped.append((rel, "no text found"))
                continue
            pending.append(
                _Pending(
                    rel_path=rel,
                    doc_id=doc_id_for(rel),
                    source=source.name if source else "docs",
                    title=parsed.title,
                    groups=decision.groups,
                    declared=parsed.groups,
                    acl_origin=decision.origin,
                    sha256=sha,
                    size=step.size,
                    drafts=drafts,
                    is_new=previous is None,
                )
            )
        vectors = self._embed_pending(pending, report, notify)
        seen_paths = {p.relative_to(self._docs_dir).as_posix() for p in files}
        failed_paths = {rel for rel, _ in report.failed}
        deleted = [
            rel
            for rel in known
            if rel not in seen_paths
            and rel not in failed_paths
            and (scope is None or self._source_name(rel) in scope)
            and not scan.hides(self._contract, rel)
        ]
        self._write(pending, vectors, acl_updates, deleted, report)
        report.deleted.extend(sorted(deleted))
        rows = self._rows()
        fingerprint = _fingerprint(rows)
        need_build = rebuild or fingerprint != self._active_fingerprint() or self._dense_missing()
        report.version = self._publish(rows, fingerprint, report, notify) if need_build else report.previous_version
        if not need_build:
            report.documents = len({r["doc_id"] for r in rows})
            report.passages = len(rows)
        report.sources = self._outcomes(scope, report, scan)
        stats = self._engine.take_stats()
        report.engine, report.engine_tasks, report.engine_workers = stats.engine, stats.tasks, stats.workers
        report.seconds = time.perf_counter() - started
        return report

    def _stale_documents(self, conn: Connection) -> set[str]:
        """Documents whose stored chunks need parsing again although their bytes are unchanged.

        Those with vectors of another embedder than today's, and, while passages are
        scanned, those whose chunks were not vetted by today's injection detector (its
        rules or weights changed since, or scanning was off): they are scanned again, so
        that every served passage carries the verdict of the detector that serves it.
        """
        sql = "SELECT DISTINCT doc_id FROM chunks WHERE embedder != ?"
        args = [self._embedder.model_id]
        vetted_by = self._vetted_by()
        if vetted_by is not None:
            sql += " OR vetted_by IS NULL OR vetted_by != ?"
            args.append(vetted_by)
        return {row["doc_id"] for row in conn.execute(sql, args)}

    def _vetted_by(self) -> str | None:
        """The fingerprint every chunk written now is vetted under (``None`` while passages are not scanned)."""
        return self._detector.fingerprint if self._detector is not None else None

    @staticmethod
    def _unchanged(previous: Mapping[str, Any] | None, sha256: str, stale: Collection[str]) -> bool:
        """Whether a file is as last ingested (same bytes, chunks still current): not parsed again."""
        return previous is not None and previous["sha256"] == sha256 and previous["doc_id"] not in stale

    def _outcomes(self, scope: frozenset[str] | None, report: IngestReport, scan: Scan) -> list[SourceOutcome]:
        """Each covered source's outcome, with what it now holds in the index."""
        covered = [s.name for s in self._contract.sources if scope is None or s.name in scope]
        problems = source_problems(self._contract, scan, report.failed, covered)
        documents: dict[str, int] = {}
        passages: dict[str, int] = {}
        for row in self._db.connection().execute(
            "SELECT d.path, COUNT(c.chunk_id) AS passages FROM documents d LEFT JOIN chunks c USING (doc_id)"
            " GROUP BY d.doc_id"
        ):
            holder = self._source_name(row["path"])
            if holder is not None:
                documents[holder] = documents.get(holder, 0) + 1
                passages[holder] = passages.get(holder, 0) + int(row["passages"])
        return [
            SourceOutcome(
                source=name,
                ok=name not in problems,
                documents=documents.get(name, 0),
                passages=passages.get(name, 0),
                error=problems.get(name),
            )
            for name in covered
        ]

    def _defang(self, rel: str, drafts: list[ChunkDraft], report: IngestReport) -> list[ChunkDraft]:
        """Drafts with sentences that instruct an AI removed, so they are never indexed or served.

        Every draft kept scans clean: a stripped text is scanned again (removing one
        sentence can expose the next), and one still judged an attack after
        :data:`_STRIP_ROUNDS` rounds is not indexed at all. That makes each stored chunk
        vetted by this detector, and a request served by the same detector need not scan it.
        """
        detector = self._detector
        if detector is None:
            return drafts
        kept: list[ChunkDraft] = []
        for draft in drafts:
            verdict = detector.scan_passage(draft.text)
            if not verdict.is_attack:
                kept.append(draft)
                continue
            report.embedded_instructions.append(f"{rel}#{draft.ordinal}")
            text = draft.text
            for _ in range(_STRIP_ROUNDS):
                text = verdict.stripped(text).strip()
                if not text:
                    break
                verdict = detector.scan_passage(text)
                if not verdict.is_attack:
                    kept.append(dataclasses.replace(draft, text=text))
                    break
        return kept

    @staticmethod
    def _note_acl(report: IngestReport, rel: str, groups: list[str], widens: bool) -> None:
        if not groups:
            report.no_acl.append(rel)
        if widens:
            report.widened_acl.append(rel)

    def _embed_pending(
        self, pending: Sequence[_Pending], report: IngestReport, notify: Progress
    ) -> dict[str, NDArray[np.float32]]:
        """Vectors for every pending passage, reusing stored ones whose passage id is unchanged."""
        wanted = [d for p in pending for d in p.drafts]
        vectors: dict[str, NDArray[np.float32]] = {}
        if not wanted:
            return vectors
        conn = self._db.connection()
        ids = [d.chunk_id for d in wanted]
        for start in range(0, len(ids), 500):
            batch = ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            for row in conn.execute(
                f"SELECT chunk_id, embedding FROM chunks WHERE embedder = ? AND chunk_id IN ({marks})",
                [self._embedder.model_id, *batch],
            ):
                vectors[row["chunk_id"]] = np.frombuffer(row["embedding"], dtype=np.float32)
        todo = [d for d in wanted if d.chunk_id not in vectors]
        if todo:
            embedded = self._engine.embed([_embedding_text(d) for d in todo], batch=EMBED_BATCH, progress=notify)
            for draft, vector in zip(todo, embedded, strict=True):
                vectors[draft.chunk_id] = vector.astype(np.float32)
        report.passages_embedded = len(todo)
        return vectors

    def _write(
        self,
        pending: Sequence[_Pending],
        vectors: dict[str, NDArray[np.float32]],
        acl_updates: Sequence[tuple[str, list[str], str, str]],
        deleted: Sequence[str],
        report: IngestReport,
    ) -> None:
        """Apply every change in one transaction: all of it lands, or none."""
        now = time.time()
        vetted_by = self._vetted_by()
        with self._db.transaction() as conn:
            for item in pending:
                conn.execute("DELETE FROM documents WHERE path = ?", (item.rel_path,))
                conn.execute(
                    "INSERT INTO documents (doc_id, path, source, title, groups_json, declared_groups_json, acl_origin,"
                    " sha256, size_bytes, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        item.doc_id,
                        item.rel_path,
                        item.source,
                        item.title,
                        json.dumps(item.groups),
                        json.dumps(item.declared) if item.declared is not None else None,
                        item.acl_origin,
                        item.sha256,
                        item.size,
                        now,
                    ),
                )
                conn.executemany(
                    "INSERT INTO chunks (chunk_id, doc_id, ordinal, heading, text, text_sha256, embedder, embedding,"
                    " vetted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            d.chunk_id,
                            item.doc_id,
                            d.ordinal,
                            d.heading,
                            d.text,
                            _text_hash(d.text),
                            self._embedder.model_id,
                            vectors[d.chunk_id].tobytes(),
                            vetted_by,
                        )
                        for d in item.drafts
                    ],
                )
                (report.added if item.is_new else report.updated).append(item.rel_path)
            for doc_id, groups, origin, rel in acl_updates:
                conn.execute(
                    "UPDATE documents SET groups_json = ?, acl_origin = ? WHERE doc_id = ?",
                    (json.dumps(groups), origin, doc_id),
                )
                report.acl_changed.append(rel)
            for rel in deleted:
                conn.execute("DELETE FROM documents WHERE path = ?", (rel,))

    def _rows(self) -> list[Row]:
        return (
            self._db.connection()
            .execute(
                "SELECT c.chunk_id, c.doc_id, c.ordinal, c.heading, c.text, c.text_sha256, c.embedding, c.vetted_by,"
                " d.title, d.path, d.groups_json FROM chunks c JOIN documents d USING (doc_id)"
                " ORDER BY d.path, c.ordinal"
            )
            .fetchall()
        )

    def _dense_missing(self) -> bool:
        """pgvector is on but the active version's vectors are not there (it was turned on since)."""
        active = self._index.active_version()
        return self._dense is not None and active is not None and self._dense.count(active) == 0

    def _active_fingerprint(self) -> str | None:
        version = self._index.active_version()
        if version is None:
            return None
        try:
            manifest = json.loads((self._index.folder(version) / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        value = manifest.get("fingerprint")
        return str(value) if value is not None else None

    def _publish(self, rows: Sequence[Row], fingerprint: str, report: IngestReport, notify: Progress) -> int:
        passages = [PassageRecord(**PassageRecord.fields_of(r)) for r in rows]
        dim = self._embedder.dim
        vectors = (
            np.vstack([np.frombuffer(r["embedding"], dtype=np.float32) for r in rows])
            if rows
            else np.zeros((0, dim), dtype=np.float32)
        )
        by_text: dict[str, list[str]] = {}
        for r in rows:
            by_text.setdefault(r["text_sha256"], []).append(f"{r['path']}#{r['ordinal']}")
        report.duplicates = [places for places in by_text.values() if len(places) > 1]
        report.documents = len({p.doc_id for p in passages})
        report.passages = len(passages)
        report.per_document = self._per_document()
        notify("index", 0, 1)

        def write(version: int, folder: Path) -> None:
            SnapshotWriter(folder).write(
                version=version,
                embedder=self._embedder.model_id,
                passages=passages,
                vectors=vectors,
                passage_terms=[terms(f"{p.heading}\n{p.text}") for p in passages],
                extra={"created_at": time.time(), "duplicates": len(report.duplicates), "fingerprint": fingerprint},
            )
            if self._dense is not None:  # before the version is activated: never active without its vectors
                self._dense.publish(version, vectors, [p.groups for p in passages])

        version = self._index.publish(write)
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO index_versions (version, created_at, embedder, doc_count, chunk_count, summary_json)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    version,
                    time.time(),
                    self._embedder.model_id,
                    report.documents,
                    report.passages,
                    json.dumps(
                        {
                            "added": len(report.added),
                            "updated": len(report.updated),
                            "deleted": len(report.deleted),
                            "acl_changed": len(report.acl_changed),
                            "failed": len(report.failed),
                        }
                    ),
                ),
            )
        self._index.prune(self._keep_versions, pinned=self._contract.pinned_index_versions())
        if self._dense is not None:
            self._dense.retain(self._index.versions())
        notify("index", 1, 1)
        return version

    def _per_document(self) -> list[DocumentSummary]:
        rows = self._db.connection().execute(
            "SELECT d.path, d.title, d.groups_json, d.acl_origin, COUNT(c.chunk_id) AS passages"
            " FROM documents d LEFT JOIN chunks c USING (doc_id) GROUP BY d.doc_id ORDER BY d.path"
        )
        return [
            DocumentSummary(
                path=r["path"],
                title=r["title"],
                groups=json.loads(r["groups_json"]),
                acl_origin=r["acl_origin"],
                passages=int(r["passages"]),
            )
            for r in rows
        ]


def _fingerprint(rows: Sequence[Row]) -> str:
    """What an index version must reflect: every passage id with its document's path, groups and vetting."""
    digest = hashlib.sha256()
    for r in rows:
        digest.update(
            f"{r['path']}\x00{r['groups_json']}\x00{r['chunk_id']}\x00{r['title']}\x00{r['vetted_by']}\n".encode()
        )
    return digest.hexdigest()


def _embedding_text(draft: ChunkDraft) -> str:
    return f"{draft.heading}\n{draft.text}"


def _text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()
