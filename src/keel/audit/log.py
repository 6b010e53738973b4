"""The audit log: append-only, hash-chained, tenant-scoped, free of raw PII.

Every record carries the SHA-256 of its own content and of the record before it, so
an edited record no longer matches its hash, a removed record leaves a gap in the
sequence, and a moved record no longer follows its predecessor. ``audit_state`` holds
the first and last links of the chain: the last one catches records cut from the end,
the first one lets old records be pruned by the retention policy without breaking
verification. For protection against someone who can rewrite the whole database,
copy :meth:`AuditLog.head` somewhere else now and then and pass it to ``verify``.

Request records are queued and committed in batches off the response path (like
traces); administrative actions are committed before the call returns.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from keel.store import Database, Row
from keel.store.writer import BackgroundWriter

__all__ = ["GENESIS", "AuditEvent", "AuditLog", "AuditRecord", "VerifyReport"]

GENESIS = "0" * 64
"""The ``prev_hash`` of the first record ever written."""


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    """Something worth proving later: who did what, to what, in which tenant."""

    action: str
    actor: str
    tenant: str
    subject: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)


@dataclass(frozen=True, kw_only=True)
class AuditRecord:
    """A committed audit record."""

    seq: int
    created_at: float
    tenant: str
    actor: str
    action: str
    subject: str
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used by exports and the API."""
        return {
            "seq": self.seq,
            "created_at": self.created_at,
            "tenant": self.tenant,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    """The outcome of checking the chain."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str = ""


def _digest(
    *, seq: int, created_at: float, tenant: str, actor: str, action: str, subject: str, data_json: str, prev: str
) -> str:
    canonical = json.dumps(
        [seq, repr(created_at), tenant, actor, action, subject, data_json, prev], separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class AuditLog:
    """The hash-chained audit log in the project database."""

    def __init__(self, db: Database, *, redact: Callable[[str], str], batch_size: int = 128) -> None:
        self._db = db
        self._redact = redact
        self._lock = threading.Lock()
        self._writer: BackgroundWriter[AuditEvent] = BackgroundWriter(
            self._commit, name="keel-audit-writer", batch_size=batch_size
        )

    def record(self, event: AuditEvent) -> None:
        """Queue ``event``; it is committed shortly, in order, off the caller's path."""
        self._writer.submit(self._clean(event))

    def record_now(self, event: AuditEvent) -> int:
        """Commit ``event`` (after anything queued before it) and return its sequence number."""
        self._writer.flush()
        return self._commit([self._clean(event)])

    def flush(self) -> None:
        """Wait until every queued record is committed."""
        self._writer.flush()

    def close(self) -> None:
        """Commit everything queued and stop the writer."""
        self._writer.close()

    def head(self) -> tuple[int, str]:
        """The last record's sequence number and hash (``(0, GENESIS)`` when empty)."""
        self.flush()
        row = self._db.connection().execute("SELECT head_seq, head_hash FROM audit_state WHERE id = 1").fetchone()
        return (0, GENESIS) if row is None else (int(row["head_seq"]), str(row["head_hash"]))

    def records(
        self,
        *,
        since: float | None = None,
        tenant: str | None = None,
        action: str | None = None,
        after_seq: int = 0,
        limit: int | None = None,
        last: bool = False,
    ) -> Iterator[AuditRecord]:
        """Committed records in sequence order, filtered (``last``: newest first)."""
        self.flush()
        sql = "SELECT * FROM audit_log WHERE seq > ?"
        args: list[Any] = [after_seq]
        if since is not None:
            sql += " AND created_at >= ?"
            args.append(since)
        if tenant is not None:
            sql += " AND tenant = ?"
            args.append(tenant)
        if action is not None:
            sql += " AND (action = ? OR action LIKE ?)"
            args.extend([action, action + ".%"])
        sql += " ORDER BY seq DESC" if last else " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for row in self._db.connection().execute(sql, args):
            yield _record(row)

    def verify(self, *, expect_head: str | None = None) -> VerifyReport:
        """Check every link of the chain; names the first record that does not hold.

        ``expect_head`` is a hash copied from :meth:`head` earlier: it must still be in
        the chain, which catches a database rewritten from scratch.
        """
        self.flush()
        conn = self._db.connection()
        state = conn.execute("SELECT * FROM audit_state WHERE id = 1").fetchone()
        if state is None:
            count = conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0]
            if count:
                return VerifyReport(
                    ok=False, checked=0, head_seq=0, head_hash=GENESIS, first_bad_seq=1, problem="chain state missing"
                )
            return VerifyReport(ok=expect_head in (None, GENESIS), checked=0, head_seq=0, head_hash=GENESIS)
        expected_seq = int(state["first_seq"])
        prev = str(state["first_prev_hash"])
        checked = 0
        seen_expected = expect_head is None or expect_head == prev

        def bad(seq: int, problem: str) -> VerifyReport:
            return VerifyReport(
                ok=False,
                checked=checked,
                head_seq=int(state["head_seq"]),
                head_hash=str(state["head_hash"]),
                first_bad_seq=seq,
                problem=problem,
            )

        for row in conn.execute("SELECT * FROM audit_log ORDER BY seq"):
            seq = int(row["seq"])
            if seq < expected_seq:
                return bad(seq, f"record {seq} lies before the start of the chain ({expected_seq})")
            if seq > expected_seq:
                return bad(expected_seq, f"record(s) {expected_seq}..{seq - 1} are missing (deleted)")
            if row["prev_hash"] != prev:
                return bad(
                    seq, f"record {seq} does not follow record {seq - 1} (reordered, or its predecessor changed)"
                )
            digest = _digest(
                seq=seq,
                created_at=float(row["created_at"]),
                tenant=row["tenant"],
                actor=row["actor"],
                action=row["action"],
                subject=row["subject"],
                data_json=row["data_json"],
                prev=row["prev_hash"],
            )
            if digest != row["hash"]:
                return bad(seq, f"record {seq} was edited (its content no longer matches its hash)")
            prev = str(row["hash"])
            seen_expected = seen_expected or prev == expect_head
            expected_seq += 1
            checked += 1
        last_seq = expected_seq - 1
        if last_seq != int(state["head_seq"]) or prev != state["head_hash"]:
            return bad(last_seq + 1, f"the chain ends at record {last_seq} but its head is record {state['head_seq']}")
        if not seen_expected:
            return bad(last_seq, "the expected head hash is not in the chain (the log was rewritten)")
        return VerifyReport(ok=True, checked=checked, head_seq=last_seq, head_hash=prev)

    def prune(self, *, older_than: float, actor: str = "system") -> int:
        """Delete the oldest records created before ``older_than``; the chain stays verifiable."""
        self.flush()
        with self._lock, self._db.transaction() as conn:
            row = conn.execute(
                "SELECT MAX(seq) FROM audit_log WHERE seq < COALESCE("
                "(SELECT MIN(seq) FROM audit_log WHERE created_at >= ?), (SELECT MAX(seq) + 1 FROM audit_log))",
                (older_than,),
            ).fetchone()
            last = row[0]
            if last is None:
                return 0
            last_hash = conn.execute("SELECT hash FROM audit_log WHERE seq = ?", (last,)).fetchone()[0]
            deleted = conn.execute("DELETE FROM audit_log WHERE seq <= ?", (last,)).rowcount
            conn.execute(
                "UPDATE audit_state SET first_seq = ?, first_prev_hash = ? WHERE id = 1", (last + 1, last_hash)
            )
        self.record_now(
            AuditEvent(
                action="audit.prune",
                actor=actor,
                tenant="*",
                subject=f"..{last}",
                data={"deleted": deleted, "older_than": older_than},
            )
        )
        return int(deleted)

    def _clean(self, event: AuditEvent) -> AuditEvent:
        return AuditEvent(
            action=event.action,
            actor=self._redact(event.actor),
            tenant=event.tenant,
            subject=self._redact(event.subject),
            data=_redact_values(event.data, self._redact),
            created_at=event.created_at,
        )

    def _commit(self, events: list[AuditEvent]) -> int:
        with self._lock, self._db.transaction() as conn:
            state = conn.execute("SELECT head_seq, head_hash FROM audit_state WHERE id = 1").fetchone()
            if state is None:
                seq, prev = 0, GENESIS
                conn.execute(
                    "INSERT INTO audit_state (id, first_seq, first_prev_hash, head_seq, head_hash)"
                    " VALUES (1, 1, ?, 0, ?)",
                    (GENESIS, GENESIS),
                )
            else:
                seq, prev = int(state["head_seq"]), str(state["head_hash"])
            rows = []
            for event in events:
                seq += 1
                data_json = json.dumps(event.data, sort_keys=True, separators=(",", ":"), default=str)
                digest = _digest(
                    seq=seq,
                    created_at=event.created_at,
                    tenant=event.tenant,
                    actor=event.actor,
                    action=event.action,
                    subject=event.subject,
                    data_json=data_json,
                    prev=prev,
                )
                rows.append(
                    (
                        seq,
                        event.created_at,
                        event.tenant,
                        event.actor,
                        event.action,
                        event.subject,
                        data_json,
                        prev,
                        digest,
                    )
                )
                prev = digest
            conn.executemany(
                "INSERT INTO audit_log (seq, created_at, tenant, actor, action, subject, data_json, prev_hash, hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("UPDATE audit_state SET head_seq = ?, head_hash = ? WHERE id = 1", (seq, prev))
        return seq


def _redact_values(value: Any, redact: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _redact_values(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_values(v, redact) for v in value]
    return value


def _record(row: Row) -> AuditRecord:
    return AuditRecord(
        seq=int(row["seq"]),
        created_at=float(row["created_at"]),
        tenant=row["tenant"],
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        data=json.loads(row["data_json"]),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )
