"""Everything a running Keel holds, built from a project: stores, index, models, pipeline.

The server's lifespan and the CLI both build one :class:`Runtime`; heavy resources
(embedding model, language model, index) open in :meth:`Runtime.warm_up`, never at
import or construction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from keel import __version__
from keel.audit import AuditEvent, AuditLog
from keel.contract import App
from keel.errors import ConfigError, NotReady
from keel.identity import Authenticator, KeyAdmin, KeyStore
from keel.ingest.freshness import summary as freshness_summary
from keel.ingest.ingestor import Ingestor
from keel.ingest.refresh import SourceRefresher
from keel.models import ChatMessage, ModelRegistry
from keel.observability import ServiceMetrics
from keel.ops.costs import CostLedger
from keel.ops.feedback import FeedbackStore
from keel.ops.handoffs import HandoffStore
from keel.ops.ratelimit import build_rate_limiter
from keel.ops.watch import Watch
from keel.pipeline import Pipeline, RequestContext
from keel.pipeline.leakage import LeakDetector
from keel.pipeline.prompts import PromptLibrary
from keel.pipeline.stage import Stage
from keel.pipeline.stages import (
    GenerateStage,
    IdentityStage,
    InputGuardStage,
    OutputGuardStage,
    RespondStage,
    RetrieveStage,
    RouteStage,
)
from keel.pipeline.stages.generate import DEFAULT_PROMPT, PROMPT_VARIABLES
from keel.pipeline.stages.rate_limit import RateLimitStage
from keel.pipeline.stages.release import ReleaseStage
from keel.policy.injection import InjectionDetector
from keel.policy.pii import PiiRecognizer, redact
from keel.policy.topics import TopicMatcher
from keel.project import Project
from keel.releases.canary import CanaryGuard
from keel.releases.registry import ReleaseRegistry
from keel.releases.shadow import ShadowRunner, wait_until_idle
from keel.retrieval.embedder import MiniLMEmbedder
from keel.retrieval.pgvector import PgVectorIndex
from keel.retrieval.versions import IndexStore
from keel.routing.budgets import BudgetGuard, budget_state
from keel.routing.cache import answer_cache
from keel.settings import Settings
from keel.tracing import Trace, TraceRecord, TraceStore
from keel.tracing.context import parse_traceparent

if TYPE_CHECKING:
    from keel.tracing.otlp import OtlpExporter

__all__ = ["ComponentStatus", "Runtime", "new_request_id"]

log = logging.getLogger(__name__)


def new_request_id() -> str:
    """A fresh request id: 96 random bits from the OS (what ``secrets`` uses, without its per-call overhead)."""
    return "req_" + os.urandom(12).hex()


@dataclass(frozen=True, kw_only=True)
class ComponentStatus:
    """Readiness of one component."""

    ready: bool
    detail: str


class Runtime:
    """One project's live components."""

    def __init__(
        self,
        project: Project,
        *,
        secrets: Mapping[str, SecretStr] | None = None,
        redis_url: str | None = None,
        otlp_endpoint: str | None = None,
        otlp_headers: Mapping[str, SecretStr] | None = None,
        otlp_capture_content: bool = True,
    ) -> None:
        secrets = secrets or {}
        self.project = project
        self.contract = project.contract
        project.ensure_dirs()
        self.db = project.open_database()
        self.keys = KeyStore(self.db)
        self.auth = Authenticator(self.keys, jwt=self.contract.identity.jwt, project_root=project.root)
        self.audit = AuditLog(self.db, redact=redact)
        self.key_admin = KeyAdmin(self.keys, self.audit)
        self.watch = Watch(self.contract, db=self.db, audit=self.audit)
        self.index = IndexStore(project.index_dir)
        self.embedder = MiniLMEmbedder(cache_dir=project.cache_dir)
        self.models = ModelRegistry(
            self.contract,
            project_root=project.root,
            secrets={k: v.get_secret_value() for k, v in secrets.items()},
            redis_url=redis_url,
        )
        self.prompts = PromptLibrary.load(project.root / "prompts")
        self.traces = TraceStore(self.db)
        self.ledger = CostLedger(self.db)
        self.budgets = BudgetGuard(
            self.contract.cost.budgets, self.ledger, state=budget_state(self.contract.cost, redis_url=redis_url)
        )
        self.handoffs = HandoffStore(self.db)
        self.feedback = FeedbackStore(self.db, self.traces, redact=redact)
        self.cache = answer_cache(self.contract.routing.cache, redis_url=redis_url, namespace=self.contract.name)
        self._check_secrets(secrets)
        prompt_refs = self._resolve_prompts()
        policy = self.contract.policy
        self.pii = PiiRecognizer(policy.pii.kinds, person_names=policy.pii.person_names)
        self.injection = InjectionDetector(threshold=policy.injection.threshold)
        ingestor = Ingestor(
            contract=self.contract,
            docs_dir=project.docs_dir,
            db=self.db,
            index_store=self.index,
            embedder=self.embedder,
            detector=self.injection,
        )
        self.refresher = SourceRefresher(self.contract, ingestor=ingestor, db=self.db, audit=self.audit)
        topics = TopicMatcher(policy.blocked_topics)
        leakage = LeakDetector(t.system for t in self.prompts.templates())
        self.rate_limiter = build_rate_limiter(self.contract.rate_limits, redis_url=redis_url)
        self.metrics = ServiceMetrics(self.contract, models=self.models, budgets=self.budgets, db=self.db)
        self.cache.on_error = self.metrics.record_cache_error
        self.otlp: OtlpExporter | None = None
        on_recorded: list[Callable[[TraceRecord], None]] = []
        if otlp_endpoint:
            from keel.tracing.otlp import OtlpExporter

            self.otlp = OtlpExporter(
                otlp_endpoint,
                service_name=self.contract.name,
                service_version=__version__,
                redact=redact,
                headers={k: v.get_secret_value() for k, v in (otlp_headers or {}).items()},
                capture_content=otlp_capture_content,
            )
            on_recorded.append(self.otlp.submit)
        limit_stages: list[Stage] = []
        on_finish: list[Callable[[RequestContext, int], None]] = [self.metrics.observe]
        if self.rate_limiter is not None:
            limit_stage = RateLimitStage(self.rate_limiter)
            limit_stages.append(limit_stage)
            on_finish.append(limit_stage.settle)
        self.releases = ReleaseRegistry(self.contract, db=self.db, audit=self.audit)
        release_stage = ReleaseStage(self.releases, prompts=self.prompts)
        self.shadow = ShadowRunner(
            self.releases,
            self.contract.rollout.shadow,
            db=self.db,
            new_context=self._shadow_context,
            run=self._run_shadow,
            similarity=self._answer_similarity,
            redact=redact,
        )
        on_finish.append(self.shadow.consider)
        self.canary = CanaryGuard(self.releases, self.contract.rollout.canary, db=self.db, flush=self.traces.flush)
        serving: list[Stage] = [
            InputGuardStage(policy, detector=self.injection, topics=topics),
            RetrieveStage(
                self.contract.retrieval,
                index=self.index,
                embedder=self.embedder,
                detector=self.injection if policy.injection.scan_passages else None,
                dense_index=PgVectorIndex(self.db, dimensions=self.embedder.dim)
                if self.contract.retrieval.dense_backend == "pgvector"
                else None,
            ),
            RouteStage(
                self.contract,
                models=self.models,
                cache=self.cache,
                budgets=self.budgets,
                index=self.index,
                prompt_refs=prompt_refs,
            ),
            GenerateStage(
                self.contract,
                models=self.models,
                prompts=self.prompts,
                budgets=self.budgets,
                ledger=self.ledger,
                pii=self.pii,
                leakage=leakage,
            ),
            OutputGuardStage(policy, index=self.index, pii=self.pii, topics=topics, leakage=leakage),
            RespondStage(policy, cache=self.cache, handoffs=self.handoffs, prompt_refs=prompt_refs),
        ]
        self.pipeline = Pipeline(
            [IdentityStage(self.auth), *limit_stages, release_stage, *serving],
            traces=self.traces,
            audit=self.audit,
            on_finish=on_finish,
            on_recorded=on_recorded,
        )
        # Shadow copies: the same stages on the candidate, nothing recorded as a request (no trace, audit,
        # metrics or rate-limit charge); the comparison is recorded by the shadow runner.
        self._shadow_pipeline = Pipeline(
            [IdentityStage(self.auth), release_stage, *serving], traces=None, before_stage=self._live_idle
        )
        self._warm = False

    def _shadow_context(self, live: RequestContext) -> RequestContext:
        copy = self.new_context(
            question=live.question,
            credential=None,
            endpoint=live.endpoint,
            app=self.contract.app(live.app.name),
            top_k=live.top_k,
            history=list(live.history),
            tags=live.tags,
        )
        copy.principal = live.principal
        copy.query_vector = live.query_vector
        return copy

    async def _live_idle(self) -> None:
        """Wait until no live request runs: a shadow copy yields to live traffic before every stage."""
        await wait_until_idle(lambda: self.pipeline.in_flight)

    async def _run_shadow(self, ctx: RequestContext) -> RequestContext:
        return await self._shadow_pipeline.run(ctx)

    async def _answer_similarity(self, a: str, b: str) -> float:
        if not a or not b or a == b:
            return float(a == b)
        await self._live_idle()
        vectors = await asyncio.to_thread(self.embedder.embed, [a, b])
        return float(vectors[0] @ vectors[1])

    def _resolve_prompts(self) -> dict[str, str]:
        """Each app's prompt template as ``id@version``.

        A release or an app that names no template, or a template whose variables are
        not the ones generation fills in, stops the start-up rather than failing requests.
        """
        refs = {}
        named: list[tuple[str, str, str | None]] = [
            (f"release {r.name!r} names", r.prompt, None) for r in self.contract.releases
        ]
        named += [(f"app {a.name!r} pins", a.pins.prompt or DEFAULT_PROMPT, a.name) for a in self.contract.apps]
        for who, ref, app in named:
            try:
                template = self.prompts.get(ref)
            except KeyError:
                raise ConfigError(
                    f"{who} prompt {ref!r}, which does not exist; available: {self.prompts.refs()}"
                ) from None
            template.check_variables(PROMPT_VARIABLES)
            if app is not None:
                refs[app] = template.ref
        return refs

    def _check_secrets(self, secrets: Mapping[str, object]) -> None:
        for spec in self.contract.models:
            if spec.api_key_secret and spec.api_key_secret not in secrets:
                raise ConfigError(
                    f"model {spec.name!r} needs the secret {spec.api_key_secret!r}: "
                    f'set KEEL_SECRETS=\'{{"{spec.api_key_secret}": "..."}}\''
                )

    async def warm_up(self) -> None:
        """Load the embedding model, the language models and the active index; audit the contract in force."""
        await asyncio.to_thread(self._audit_contract)
        if await asyncio.to_thread(self.auth.warm_up) is False:
            log.warning("the JWKS could not be loaded (identity.jwt.jwks): bearer tokens get 401 until it loads")
        await asyncio.to_thread(self.embedder.warm_up)
        await self.models.warm_up()
        try:
            await asyncio.to_thread(self.index.current)
        except NotReady:
            log.warning("no index yet: run `keel ingest`; questions will get 503 not_ready until then")
        self._warm = True

    def _audit_contract(self) -> None:
        """Record which contract this process serves, so every configuration change is in the audit log."""
        path = self.project.contract_path
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "defaults"
        last = next(iter(self.audit.records(action="config.load", last=True, limit=1)), None)
        self.audit.record(
            AuditEvent(
                action="config.load",
                actor="system",
                tenant="*",
                subject=self.contract.name,
                data={
                    "contract_sha256": digest,
                    "changed": last is None or last.data.get("contract_sha256") != digest,
                },
            )
        )

    def readiness(self) -> dict[str, ComponentStatus]:
        """Per-component readiness, for ``/readyz``."""
        status: dict[str, ComponentStatus] = {}
        try:
            self.db.schema_version()
            where = (
                self.project.database_path.name
                if self.db.dialect == "sqlite"
                else f"schema {self.project.database_schema}"
            )
            status["store"] = ComponentStatus(ready=True, detail=f"{self.db.dialect} {where}")
        except Exception as exc:  # report, never raise, from a health check
            status["store"] = ComponentStatus(ready=False, detail=type(exc).__name__)
        try:
            snapshot = self.index.current()
            # No passage count here: /readyz is unauthenticated and counts include restricted documents.
            status["index"] = ComponentStatus(ready=True, detail=f"version {snapshot.version}")
        except NotReady:
            # Required only when an app grounds its answers: a gateway-only deployment serves without one.
            needed = any(app.retrieval for app in self.contract.apps)
            detail = "no index built: run `keel ingest`" if needed else "none (no app uses retrieval)"
            status["index"] = ComponentStatus(ready=not needed, detail=detail)
        except Exception as exc:
            status["index"] = ComponentStatus(ready=False, detail=type(exc).__name__)
        if self.contract.sources:
            # Reported, not required: a source that cannot be refreshed keeps its documents served.
            # Names and states only: /readyz is unauthenticated.
            try:
                detail = freshness_summary(self.refresher.freshness())
            except Exception as exc:
                detail = type(exc).__name__
            status["sources"] = ComponentStatus(ready=True, detail=detail)
        if self.auth.jwks_ready is not None:
            # Reported, not required: API keys keep working while the identity provider is away.
            status["jwks"] = ComponentStatus(
                ready=True, detail="loaded" if self.auth.jwks_ready else "not loaded yet (identity.jwt.jwks)"
            )
        status["embedder"] = ComponentStatus(
            ready=self.embedder.ready, detail=self.embedder.model_id if self.embedder.ready else "loading"
        )
        for name in self.models.names():
            ready = self.models.get(name).ready
            breaker = self.models.health(name).breaker
            detail = ("loaded" if ready else "loading") + (f", breaker {breaker}" if breaker != "closed" else "")
            status[f"model:{name}"] = ComponentStatus(ready=ready, detail=detail)
        return status

    def new_context(
        self,
        *,
        question: str,
        credential: str | None,
        endpoint: Literal["ask", "chat"],
        app: App | None = None,
        request_id: str | None = None,
        top_k: int | None = None,
        history: list[ChatMessage] | None = None,
        traceparent: str | None = None,
        **extra: Any,
    ) -> RequestContext:
        """A fresh context for one request, inside the caller's distributed trace when ``traceparent`` is valid."""
        rid = request_id or new_request_id()
        chosen = app or self.contract.default_app
        return RequestContext(
            request_id=rid,
            endpoint=endpoint,
            app=chosen,
            question=question,
            credential=credential,
            top_k=top_k or chosen.top_k or self.contract.retrieval.top_k,
            trace=Trace.joining(rid, parse_traceparent(traceparent)),
            history=history or [],
            **extra,
        )

    @classmethod
    def from_settings(cls, settings: Settings, project: Project | None = None) -> Runtime:
        """The runtime a deployment's settings describe (the project they name, unless given)."""
        return cls(
            project or Project.open(settings),
            secrets=settings.secrets,
            redis_url=settings.redis_url,
            otlp_endpoint=settings.otlp_endpoint,
            otlp_headers=settings.otlp_headers,
            otlp_capture_content=settings.otlp_capture_content,
        )

    async def close(self) -> None:
        """Finish shadow copies; flush traces, spans and the audit log; release models and connections."""
        await self.shadow.drain()
        self.traces.close()
        self.ledger.close()
        if self.otlp is not None:
            await asyncio.to_thread(self.otlp.close)
        self.audit.close()
        self.auth.close()
        if self.rate_limiter is not None:
            self.rate_limiter.close()
        self.budgets.close()
        self.cache.close()
        await self.models.close()
        self.db.close()
