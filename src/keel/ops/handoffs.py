"""The hand-off queue: questions Keel passes to a person.

A hand-off records the request id (its trace), who asked, the question (with PII
redacted when the policy says so) and why Keel handed it off. Reviewers of the same
tenant answer or close it; the asker can see their own hand-offs and the answer.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from keel.audit import AuditEvent, AuditLog
from keel.errors import InvalidRequest, NotFound
from keel.identity import Principal
from keel.store import Database

__all__ = ["Handoff", "HandoffStore", "answer_handoff", "close_handoff"]

Status = Literal["open", "answered", "closed"]


@dataclass(frozen=True, kw_only=True)
class Handoff:
    """One queued question."""

    handoff_id: str
    request_id: str
    created_at: float
    tenant: str
    principal_id: str
    app: str
    question: str
    reason: str
    status: Status
    answer: str | None
    handled_by: str | None
    handled_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.handoff_id,
            "request_id": self.request_id,
            "created_at": self.created_at,
            "principal_id": self.principal_id,
            "app": self.app,
            "question": self.question,
            "reason": self.reason,
            "status": self.status,
            "answer": self.answer,
            "handled_by": self.handled_by,
            "handled_at": self.handled_at,
        }


class HandoffStore:
    """Hand-offs in the project database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self, *, request_id: str, tenant: str, principal_id: str, app: str, question: str, reason: str
    ) -> Handoff:
        """Queue a question."""
        handoff = Handoff(
            handoff_id="ho_" + secrets.token_hex(8),
            request_id=request_id,
            created_at=time.time(),
            tenant=tenant,
            principal_id=principal_id,
            app=app,
            question=question,
            reason=reason,
            status="open",
            answer=None,
            handled_by=None,
            handled_at=None,
        )
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO handoffs (handoff_id, request_id, created_at, tenant, principal_id, app, question, reason,"
                " status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open')",
                (handoff.handoff_id, request_id, handoff.created_at, tenant, principal_id, app, question, reason),
            )
        return handoff

    def get(self, handoff_id: str, *, tenant: str) -> Handoff:
        """One hand-off of ``tenant``; :class:`NotFound` otherwise."""
        row = (
            self._db.connection()
            .execute("SELECT * FROM handoffs WHERE handoff_id = ? AND tenant = ?", (handoff_id, tenant))
            .fetchone()
        )
        if row is None:
            raise NotFound(f"No hand-off {handoff_id!r} that you may see.")
        return _from_row(row)

    def list(
        self, *, tenant: str, principal_id: str | None = None, status: Status | None = None, limit: int = 100
    ) -> list[Handoff]:
        """Hand-offs of a tenant (optionally one principal's, or one status), newest first."""
        sql = "SELECT * FROM handoffs WHERE tenant = ?"
        args: list[Any] = [tenant]
        if principal_id is not None:
            sql += " AND principal_id = ?"
            args.append(principal_id)
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        rows = self._db.connection().execute(sql + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        return [_from_row(r) for r in rows]

    def answer(self, handoff_id: str, *, tenant: str, reviewer: str, answer: str) -> Handoff:
        """Record a reviewer's answer to an open hand-off."""
        if not answer.strip():
            raise InvalidRequest("The answer is empty.", code="invalid_parameter")
        return self._transition(handoff_id, tenant=tenant, reviewer=reviewer, status="answered", answer=answer.strip())

    def close(self, handoff_id: str, *, tenant: str, reviewer: str) -> Handoff:
        """Close a hand-off without (further) answer."""
        return self._transition(handoff_id, tenant=tenant, reviewer=reviewer, status="closed", answer=None)

    def _transition(
        self, handoff_id: str, *, tenant: str, reviewer: str, status: Status, answer: str | None
    ) -> Handoff:
        current = self.get(handoff_id, tenant=tenant)
        if current.status == "closed":
            raise InvalidRequest(f"Hand-off {handoff_id} is already closed.", code="invalid_parameter")
        if status == "answered" and current.status != "open":
            raise InvalidRequest(f"Hand-off {handoff_id} has already been answered.", code="invalid_parameter")
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE handoffs SET status = ?, answer = COALESCE(?, answer), handled_by = ?, handled_at = ?"
                " WHERE handoff_id = ? AND tenant = ?",
                (status, answer, reviewer, time.time(), handoff_id, tenant),
            )
        return self.get(handoff_id, tenant=tenant)


def _from_row(row: Any) -> Handoff:
    return Handoff(
        handoff_id=row["handoff_id"],
        request_id=row["request_id"],
        created_at=row["created_at"],
        tenant=row["tenant"],
        principal_id=row["principal_id"],
        app=row["app"],
        question=row["question"],
        reason=row["reason"],
        status=row["status"],
        answer=row["answer"],
        handled_by=row["handled_by"],
        handled_at=row["handled_at"],
    )


def answer_handoff(store: HandoffStore, audit: AuditLog, principal: Principal, handoff_id: str, text: str) -> Handoff:
    """Record ``principal``'s answer to a hand-off of their tenant, audited (``handoff.answer``)."""
    handoff = store.answer(handoff_id, tenant=principal.tenant, reviewer=principal.id, answer=text)
    _audit(audit, principal, handoff, "handoff.answer")
    return handoff


def close_handoff(store: HandoffStore, audit: AuditLog, principal: Principal, handoff_id: str) -> Handoff:
    """Close a hand-off of ``principal``'s tenant, audited (``handoff.close``)."""
    handoff = store.close(handoff_id, tenant=principal.tenant, reviewer=principal.id)
    _audit(audit, principal, handoff, "handoff.close")
    return handoff


def _audit(audit: AuditLog, principal: Principal, handoff: Handoff, action: str) -> None:
    audit.record_now(
        AuditEvent(
            action=action,
            actor=principal.id,
            tenant=principal.tenant,
            subject=handoff.handoff_id,
            data={"request_id": handoff.request_id, "status": handoff.status},
        )
    )
