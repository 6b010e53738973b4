"""Feedback and business outcomes, each tied to the trace of the request it is about.

Only someone who may see a request's trace may rate it: its asker, or a reviewer or
admin of its tenant. Comments and corrections are PII-redacted before they are stored
(corrections feed evaluation cases and fine-tuning sets later). Reports are per tenant.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from keel.errors import InvalidRequest, NotFound
from keel.identity import Principal
from keel.store import Database
from keel.store.json_sql import json_array_elements
from keel.tracing import TraceStore

__all__ = ["FeedbackStore", "Rating", "Subject"]

Rating = Literal["up", "down"]
_OUTCOME_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True, kw_only=True)
class Subject:
    """The request a piece of feedback is about, as its trace records it."""

    request_id: str
    tenant: str
    app: str
    release: str = ""
    tags: tuple[str, ...] = ()


class FeedbackStore:
    """Feedback and outcomes in the project database."""

    def __init__(self, db: Database, traces: TraceStore, *, redact: Callable[[str], str]) -> None:
        self._db = db
        self._traces = traces
        self._redact = redact

    def subject(self, request_id: str, principal: Principal) -> Subject:
        """The request, if ``principal`` may see it; :class:`NotFound` otherwise (never saying which)."""
        record = self._traces.get(request_id)
        visible = (
            record is not None
            and record.tenant == principal.tenant
            and (record.principal_id == principal.id or bool(principal.roles & {"admin", "reviewer"}))
        )
        if record is None or not visible:
            raise NotFound(f"No request {request_id!r} that you may give feedback on.")
        return Subject(
            request_id=request_id, tenant=record.tenant, app=record.app, release=record.release, tags=record.tags
        )

    def add_feedback(
        self,
        subject: Subject,
        principal: Principal,
        *,
        rating: Rating,
        comment: str | None,
        correction: str | None,
    ) -> str:
        """Store feedback; returns its id."""
        feedback_id = "fb_" + secrets.token_hex(8)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO feedback (feedback_id, request_id, created_at, tenant, principal_id, app, rating, comment,"
                " correction, release, tags_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    feedback_id,
                    subject.request_id,
                    time.time(),
                    subject.tenant,
                    principal.id,
                    subject.app,
                    rating,
                    self._redact(comment) if comment else None,
                    self._redact(correction) if correction else None,
                    subject.release,
                    json.dumps(list(subject.tags)),
                ),
            )
        return feedback_id

    def add_outcome(self, subject: Subject, principal: Principal, *, name: str, value: float) -> str:
        """Store a business outcome (``ticket_resolved`` 1, ``minutes_saved`` 12); returns its id."""
        if not _OUTCOME_NAME.match(name):
            raise InvalidRequest(
                "An outcome name is 1-64 lower-case letters, digits, '_', '.' or '-', starting with a letter.",
                code="invalid_parameter",
            )
        if not math.isfinite(value):
            raise InvalidRequest("An outcome value must be a finite number.", code="invalid_parameter")
        outcome_id = "oc_" + secrets.token_hex(8)
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO outcomes (outcome_id, request_id, created_at, tenant, principal_id, app, name, value,"
                " release, tags_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    outcome_id,
                    subject.request_id,
                    time.time(),
                    subject.tenant,
                    principal.id,
                    subject.app,
                    name,
                    value,
                    subject.release,
                    json.dumps(list(subject.tags)),
                ),
            )
        return outcome_id

    def report(self, *, tenant: str | None = None, since: float | None = None) -> dict[str, Any]:
        """Ratings and outcomes per app, per release and per tag (one tenant, or every tenant for the operator).

        A request with several tags counts once under each of them; untagged requests appear under no tag.
        """
        where: list[str] = ["1 = 1"]
        args: list[object] = []
        if tenant is not None:
            where.append("t.tenant = ?")
            args.append(tenant)
        if since is not None:
            where.append("t.created_at >= ?")
            args.append(since)
        clause = " AND ".join(where)
        return {
            dimension: self._grouped(key, clause, args)
            for dimension, key in (("apps", "t.app"), ("releases", "t.release"), ("tags", "tag.value"))
        }

    def _grouped(self, key: str, clause: str, args: list[object]) -> dict[str, dict[str, Any]]:
        tag_join = ", " + json_array_elements(self._db.dialect, "t.tags_json", "tag") if key.startswith("tag.") else ""
        conn = self._db.connection()
        groups: dict[str, dict[str, Any]] = {}

        def entry(name: str) -> dict[str, Any]:
            return groups.setdefault(name, {"up": 0, "down": 0, "corrections": 0, "outcomes": {}})

        for row in conn.execute(
            f"SELECT {key} AS grp, t.rating AS rating, COUNT(*) AS n,"
            " SUM(CASE WHEN t.correction IS NOT NULL THEN 1 ELSE 0 END) AS corrections"
            f" FROM feedback AS t{tag_join} WHERE {clause} GROUP BY grp, t.rating",
            args,
        ):
            group = entry(row["grp"])
            group[row["rating"]] += row["n"]
            group["corrections"] += row["corrections"] or 0
        for row in conn.execute(
            f"SELECT {key} AS grp, t.name AS name, COUNT(*) AS n, SUM(t.value) AS total"
            f" FROM outcomes AS t{tag_join} WHERE {clause} GROUP BY grp, t.name",
            args,
        ):
            entry(row["grp"])["outcomes"][row["name"]] = {"count": row["n"], "total": row["total"]}
        for group in groups.values():
            rated = group["up"] + group["down"]
            group["satisfaction"] = round(group["up"] / rated, 4) if rated else None
        return groups
