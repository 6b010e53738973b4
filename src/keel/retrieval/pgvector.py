"""Dense retrieval in PostgreSQL with pgvector, the ACL filter inside the SQL query.

With ``retrieval.dense_backend: pgvector`` (and ``KEEL_DATABASE_URL``), each published
index version's passage vectors are also written to ``index_passages`` with the ACL
groups of their documents, under an HNSW index (cosine distance). The dense side of a
search is then one query::

    SELECT row_id, embedding <=> $q ... WHERE version = $v AND groups && $principal_groups
    ORDER BY embedding <=> $q LIMIT $n

with ``hnsw.iterative_scan`` on, so the HNSW walk goes on until ``n`` readable rows are
found: a narrow principal gets a full result, never the few readable rows among the
first candidates. Replicas then need no copy of the vectors in memory.

The lexical side stays in the index version's own BM25 postings (``search.lexical_search``):
they are already in every version folder, PostgreSQL full-text ranking (``ts_rank``) is not
BM25 and would give other answers on PostgreSQL than on SQLite, and BM25's statistics are
computed over the readable rows only, which ``ts_rank`` cannot do.

The table and the ``vector`` extension are created on first use (``ensure``), not by a
schema migration, so a PostgreSQL without pgvector serves every other store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence

import numpy as np
from numpy.typing import NDArray

from keel.errors import ConfigError
from keel.store import Database, PostgresDatabase

__all__ = ["PgVectorIndex"]

_BATCH = 500


def _literal(vector: NDArray[np.float32]) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"


class PgVectorIndex:
    """Index versions' vectors in pgvector, searched with the readers' groups as a filter."""

    def __init__(self, db: Database, *, dimensions: int, ef_search: int = 100) -> None:
        if not isinstance(db, PostgresDatabase):
            raise ConfigError(
                "retrieval.dense_backend: pgvector needs PostgreSQL: set KEEL_DATABASE_URL, or use dense_backend: local"
            )
        self._db: PostgresDatabase = db
        self._dimensions = dimensions
        self._ef_search = ef_search
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Create the extension, the table and its indexes when absent."""
        if self._ready:
            return
        with self._lock, self._db.transaction() as tx:
            tx.execute("CREATE EXTENSION IF NOT EXISTS vector")
            tx.execute(
                "CREATE TABLE IF NOT EXISTS index_passages ("
                " version BIGINT NOT NULL, row_id BIGINT NOT NULL, groups TEXT[] NOT NULL,"
                f" embedding vector({self._dimensions}) NOT NULL, PRIMARY KEY (version, row_id))"
            )
            tx.execute(
                "CREATE INDEX IF NOT EXISTS index_passages_hnsw ON index_passages"
                " USING hnsw (embedding vector_cosine_ops)"
            )
            self._ready = True

    def publish(self, version: int, vectors: NDArray[np.float32], groups: Sequence[Iterable[str]]) -> None:
        """Store ``version``'s rows: row ``i`` has ``vectors[i]`` and ACL ``groups[i]`` (replacing any earlier copy)."""
        if len(groups) != len(vectors):
            raise ValueError("one ACL per vector")
        self.ensure()
        rows = [(version, i, sorted(set(g)), _literal(v)) for i, (v, g) in enumerate(zip(vectors, groups, strict=True))]
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM index_passages WHERE version = ?", (version,))
            for start in range(0, len(rows), _BATCH):
                tx.executemany(
                    "INSERT INTO index_passages (version, row_id, groups, embedding) VALUES (?, ?, ?, ?::vector)",
                    rows[start : start + _BATCH],
                )

    def retain(self, versions: Iterable[int]) -> None:
        """Drop the rows of every version not in ``versions`` (after pruning)."""
        self.ensure()
        keep = sorted(set(versions))
        with self._db.transaction() as tx:
            tx.execute("DELETE FROM index_passages WHERE NOT (version = ANY(?::bigint[]))", (keep,))

    def count(self, version: int) -> int:
        """How many rows ``version`` has here."""
        self.ensure()
        row = self._db.connection().execute("SELECT COUNT(*) FROM index_passages WHERE version = ?", (version,))
        found = row.fetchone()
        return int(found[0]) if found else 0

    def search(
        self, version: int, query_vector: NDArray[np.float32], groups: frozenset[str], *, limit: int
    ) -> list[tuple[int, float]]:
        """The ``limit`` rows of ``version`` nearest ``query_vector`` that ``groups`` may read: ``[(row, cosine)]``."""
        if not groups or limit <= 0:
            return []
        self.ensure()
        raw = self._db.connection().raw
        query = _literal(np.asarray(query_vector, dtype=np.float32))
        with raw.transaction():
            raw.execute(f"SET LOCAL hnsw.ef_search = {max(self._ef_search, limit)}")
            raw.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            found = raw.execute(
                "SELECT row_id, embedding <=> %s::vector AS distance FROM index_passages"
                " WHERE version = %s AND groups && %s::text[] ORDER BY embedding <=> %s::vector LIMIT %s",
                (query, version, sorted(groups), query, limit),
            ).fetchall()
        # relaxed_order may return neighbours slightly out of order: sort them exactly.
        hits = [(int(r[0]), 1.0 - float(r[1])) for r in found]
        return sorted(hits, key=lambda h: (-h[1], h[0]))
