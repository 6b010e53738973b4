"""Keel's schema as an ordered list of migrations (never edit a released one).

Each migration is written once, in SQLite's dialect, and translated for PostgreSQL
(:func:`postgres_statement`: the column types are the only difference in this DDL); a
migration that needs engine-specific statements lists them per backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["MIGRATIONS", "Migration", "postgres_statement"]

_POSTGRES_TYPES = {"REAL": "DOUBLE PRECISION", "BLOB": "BYTEA", "INTEGER": "BIGINT"}
_TYPE_WORD = re.compile(r"\b(" + "|".join(_POSTGRES_TYPES) + r")\b")


def postgres_statement(statement: str) -> str:
    """A portable DDL statement in PostgreSQL's types (8-byte floats and integers, BYTEA)."""
    return _TYPE_WORD.sub(lambda m: _POSTGRES_TYPES[m.group(1)], statement)


@dataclass(frozen=True)
class Migration:
    """One schema version: the same change for each backend."""

    sqlite: list[str]
    postgres_extra: list[str] = field(default_factory=list)

    @property
    def postgres(self) -> list[str]:
        """The statements PostgreSQL runs: the portable ones translated, then its own."""
        return [postgres_statement(s) for s in self.sqlite] + self.postgres_extra


_PORTABLE: list[list[str]] = [
    # 1: keys, documents and chunks, index versions, traces
    [
        """CREATE TABLE api_keys (
            key_id TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            principal_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            groups_json TEXT NOT NULL,
            roles_json TEXT NOT NULL,
            label TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL,
            revoked_at REAL
        )""",
        "CREATE INDEX api_keys_principal ON api_keys(principal_id)",
        """CREATE TABLE documents (
            doc_id TEXT PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            source TEXT NOT NULL,
            title TEXT NOT NULL,
            groups_json TEXT NOT NULL,
            declared_groups_json TEXT,
            acl_origin TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            ingested_at REAL NOT NULL
        )""",
        """CREATE TABLE chunks (
            chunk_id TEXT PRIMARY KEY,
            doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
            ordinal INTEGER NOT NULL,
            heading TEXT NOT NULL,
            text TEXT NOT NULL,
            text_sha256 TEXT NOT NULL,
            embedder TEXT NOT NULL,
            embedding BLOB NOT NULL
        )""",
        "CREATE INDEX chunks_doc ON chunks(doc_id, ordinal)",
        "CREATE INDEX chunks_text ON chunks(text_sha256)",
        """CREATE TABLE index_versions (
            version INTEGER PRIMARY KEY,
            created_at REAL NOT NULL,
            embedder TEXT NOT NULL,
            doc_count INTEGER NOT NULL,
            chunk_count INTEGER NOT NULL,
            summary_json TEXT NOT NULL
        )""",
        """CREATE TABLE traces (
            request_id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            principal_id TEXT NOT NULL,
            tenant TEXT NOT NULL,
            app TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            mode TEXT NOT NULL,
            status INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            data_json TEXT NOT NULL
        )""",
        "CREATE INDEX traces_principal ON traces(tenant, principal_id, created_at)",
        "CREATE INDEX traces_created ON traces(created_at)",
    ],
    # 2: cost ledger and hand-off queue
    [
        """CREATE TABLE spend (
            request_id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            day TEXT NOT NULL,
            month TEXT NOT NULL,
            tenant TEXT NOT NULL,
            app TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost_usd REAL NOT NULL
        )""",
        "CREATE INDEX spend_app_day ON spend(app, day)",
        "CREATE INDEX spend_tenant_day ON spend(tenant, day)",
        "CREATE INDEX spend_month ON spend(month)",
        """CREATE TABLE handoffs (
            handoff_id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            tenant TEXT NOT NULL,
            principal_id TEXT NOT NULL,
            app TEXT NOT NULL,
            question TEXT NOT NULL,
            reason TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('open', 'answered', 'closed')),
            answer TEXT,
            handled_by TEXT,
            handled_at REAL
        )""",
        "CREATE INDEX handoffs_tenant_status ON handoffs(tenant, status, created_at)",
    ],
    # 3: hash-chained audit log; key scopes, app restrictions, expiry and rotation
    [
        """CREATE TABLE audit_log (
            seq INTEGER PRIMARY KEY,
            created_at REAL NOT NULL,
            tenant TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL,
            data_json TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX audit_tenant ON audit_log(tenant, created_at)",
        "CREATE INDEX audit_created ON audit_log(created_at)",
        """CREATE TABLE audit_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            first_seq INTEGER NOT NULL,
            first_prev_hash TEXT NOT NULL,
            head_seq INTEGER NOT NULL,
            head_hash TEXT NOT NULL
        )""",
        "ALTER TABLE api_keys ADD COLUMN expires_at REAL",
        "ALTER TABLE api_keys ADD COLUMN scopes_json TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE api_keys ADD COLUMN apps_json TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE api_keys ADD COLUMN rotated_to TEXT",
    ],
    # 4: feedback and business outcomes, linked to traces
    [
        """CREATE TABLE feedback (
            feedback_id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            tenant TEXT NOT NULL,
            principal_id TEXT NOT NULL,
            app TEXT NOT NULL,
            rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
            comment TEXT,
            correction TEXT
        )""",
        "CREATE INDEX feedback_tenant ON feedback(tenant, created_at)",
        "CREATE INDEX feedback_request ON feedback(request_id)",
        """CREATE TABLE outcomes (
            outcome_id TEXT PRIMARY KEY,
            request_id TEXT NOT NULL,
            created_at REAL NOT NULL,
            tenant TEXT NOT NULL,
            principal_id TEXT NOT NULL,
            app TEXT NOT NULL,
            name TEXT NOT NULL,
            value REAL NOT NULL
        )""",
        "CREATE INDEX outcomes_tenant ON outcomes(tenant, created_at)",
    ],
    # 5: the release and tags that served each request, its W3C trace id; copied onto feedback and outcomes
    [
        "ALTER TABLE traces ADD COLUMN release TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE traces ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE traces ADD COLUMN trace_id TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX traces_release ON traces(release, created_at)",
        "ALTER TABLE feedback ADD COLUMN release TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE feedback ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]'",
        "ALTER TABLE outcomes ADD COLUMN release TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE outcomes ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]'",
    ],
    # 6: releases: what each app serves now, its candidate (shadow or canary) and the releases before it;
    # shadow comparisons
    [
        """CREATE TABLE release_state (
            app TEXT PRIMARY KEY,
            current TEXT NOT NULL,
            candidate TEXT,
            stage TEXT CHECK (stage IS NULL OR stage IN ('shadow', 'canary')),
            share REAL NOT NULL DEFAULT 0,
            started_at REAL,
            history_json TEXT NOT NULL DEFAULT '[]',
            pinned TEXT NOT NULL DEFAULT '',
            updated_at REAL NOT NULL
        )""",
        """CREATE TABLE shadow_pairs (
            request_id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            app TEXT NOT NULL,
            current TEXT NOT NULL,
            candidate TEXT NOT NULL,
            data_json TEXT NOT NULL
        )""",
        "CREATE INDEX shadow_pairs_app ON shadow_pairs(app, candidate, created_at)",
    ],
    # 7: per-source freshness: the last ingest attempt, the last success, what it holds, the last error
    [
        """CREATE TABLE source_freshness (
            source TEXT PRIMARY KEY,
            last_attempt_at REAL NOT NULL,
            last_attempt_ok INTEGER NOT NULL CHECK (last_attempt_ok IN (0, 1)),
            last_success_at REAL,
            documents INTEGER NOT NULL DEFAULT 0,
            passages INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_error_at REAL
        )""",
    ],
    # 8: web console sessions (an API key signs in; the session names the key and is checked on every page)
    [
        """CREATE TABLE console_sessions (
            session_hash TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            csrf TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        )""",
        "CREATE INDEX console_sessions_expiry ON console_sessions(expires_at)",
    ],
    # 9: the injection detector (its fingerprint) under which a chunk's stored text scanned clean, if any
    [
        "ALTER TABLE chunks ADD COLUMN vetted_by TEXT",
    ],
]

MIGRATIONS: list[Migration] = [Migration(statements) for statements in _PORTABLE]
