"""Deployment settings: where things live and how the server binds.

Behaviour belongs in the contract (``keel.yaml``); this object holds only what
differs between deployments of the same contract. Every field is read from the
environment with the ``KEEL_`` prefix (``KEEL_PORT=9000``) and documented here;
nothing else in Keel reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Deployment settings, from ``KEEL_*`` environment variables or arguments."""

    model_config = SettingsConfigDict(env_prefix="KEEL_", extra="forbid", frozen=True)

    project: Path = Field(
        default_factory=Path.cwd,
        description="The project directory holding keel.yaml and docs/. Default: the current directory.",
    )
    data_dir: Path | None = Field(
        None,
        description="Where Keel keeps its database, indexes and caches. Default: PROJECT/.keel.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8080, ge=0, le=65535, description="Port the HTTP server binds (0: any free port).")
    max_body_bytes: int = Field(
        1_000_000, gt=0, description="Largest request body accepted; larger ones get 413 payload_too_large."
    )
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
    access_log: bool = Field(False, description="Log one line per HTTP request.")
    shutdown_grace_s: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM, how long requests in flight may take to finish before the server stops anyway.",
    )
    database_url: SecretStr | None = Field(
        None,
        description=(
            "PostgreSQL (with pgvector) shared by replicas, e.g. postgresql://keel:PASSWORD@db:5432/keel."
            " Default: the embedded SQLite file in the data directory."
        ),
    )
    database_schema: str = Field(
        "keel",
        description=(
            "The PostgreSQL schema holding Keel's tables (one per deployment sharing a server). 'auto' names it"
            " after the data directory (keel_<hash>), so several projects on one machine share a development server."
        ),
    )
    redis_url: str | None = Field(
        None,
        description=(
            "Redis for state shared by replicas (rate_limits.backend, cost.shared_state, routing.shared_state or"
            " routing.cache.shared_state: redis), e.g. redis://127.0.0.1:6379/0."
        ),
    )
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces): every request is exported as"
        " OpenTelemetry spans with the GenAI attributes. Default: no export.",
    )
    otlp_headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Headers for the OTLP receiver, as JSON (KEEL_OTLP_HEADERS=\'{"authorization": "Bearer ..."}\').',
    )
    otlp_capture_content: bool = Field(
        True,
        description="Include the (PII-redacted) question and answer in exported spans; false sends metadata only.",
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Secrets models refer to by name (api_key_secret), as JSON: KEEL_SECRETS=\'{"openai": "sk-..."}\'.',
    )

    @property
    def resolved_data_dir(self) -> Path:
        """The data directory, defaulting to ``PROJECT/.keel``."""
        return (self.data_dir or self.project / ".keel").resolve()
