"""Prometheus metrics: what SREs watch the service by, with bounded label sets.

Labels only ever take values from the contract (apps, models, sources, budgets) or
from Keel's own fixed vocabularies (endpoints, modes, stages, cache outcomes, error
codes, guard verdicts); never a principal, tenant, key, request id or any free text.
A value outside its vocabulary is counted as ``other``.

Counters and histograms are fed once per finished request (:meth:`observe`); the live
state (models' in-flight calls, queue depth and breakers, budgets left, spend projected
to the period's end, index age and freshness per source) is read at scrape time by a collector.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from keel.contract import Contract
from keel.errors import all_error_codes
from keel.ingest.freshness import source_freshness
from keel.models.registry import ModelRegistry
from keel.ops.anomaly import Anomaly, detect_anomalies
from keel.ops.costs import CostLedger
from keel.ops.forecast import forecast_costs
from keel.pipeline.context import RequestContext
from keel.routing.budgets import BudgetGuard
from keel.store import Database, DatabaseError

__all__ = ["CONTENT_TYPE", "AdmissionState", "ServiceMetrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "other"
MODES = frozenset({"answer", "no_answer", "sources_only", "clarify", "handoff", "refused", "error"})
STAGES = frozenset({"identity", "rate_limit", "guard_in", "retrieve", "route", "generate", "guard_out", "respond"})
CACHE_OUTCOMES = frozenset({"off", "miss", "exact", "semantic"})
CACHE_OPERATIONS = frozenset({"lookup", "store", "clear"})
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0)
BREAKER_STATES = ("closed", "open", "half_open")
SHED_REASONS = frozenset({"overloaded", "shutting_down", "model_busy"})
ANOMALY_REFRESH_S = 60.0
FORECAST_REFRESH_S = 30.0


class _Vocabulary:
    """Maps a value to itself when it belongs to a fixed set, else to ``other``."""

    def __init__(self, values: Iterable[str]) -> None:
        self._values = frozenset(values)

    def __call__(self, value: str | None) -> str:
        return value if value is not None and value in self._values else OTHER


@dataclass(frozen=True, kw_only=True)
class _Live:
    contract: Contract
    models: ModelRegistry
    budgets: BudgetGuard
    db: Database
    clock: Callable[[], float]


class AdmissionState(Protocol):
    """The replica's admission counts (``keel.server.admission.Admission``)."""

    @property
    def in_flight(self) -> int: ...

    @property
    def queued(self) -> int: ...


class _AdmissionCollector(Collector):
    """The replica's in-flight and queued requests, read at scrape time."""

    def __init__(self, state: AdmissionState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "keel_inflight_requests", "Requests to the request endpoints running now.", value=self._state.in_flight
        )
        yield GaugeMetricFamily(
            "keel_queued_requests", "Requests to the request endpoints waiting for a slot.", value=self._state.queued
        )


class _LiveCollector(Collector):
    """Gauges read at scrape time."""

    def __init__(self, live: _Live) -> None:
        self._live = live
        self._anomalies: list[Anomaly] = []
        self._anomalies_at = float("-inf")
        budgets = live.contract.cost.budgets
        self._forecast_names = {
            "app": _Vocabulary([*(a.name for a in live.contract.apps), *(b.name for b in budgets if b.scope == "app")]),
            "tenant": _Vocabulary(b.name for b in budgets if b.scope == "tenant"),
        }
        self._forecast: dict[tuple[str, str, str], float] = {}
        self._forecast_at = float("-inf")

    def _projected(self, now: float) -> dict[tuple[str, str, str], float]:
        """Projected spend by scope, bounded name and period; names outside the contract are summed as ``other``."""
        if now - self._forecast_at > FORECAST_REFRESH_S:
            live = self._live
            try:
                forecast = forecast_costs(CostLedger(live.db), live.contract.cost.budgets, now=now)
            except DatabaseError:
                return self._forecast  # a scrape never fails because the store is busy
            projected: dict[tuple[str, str, str], float] = {}
            for f in forecast.items:
                key = (f.scope, self._forecast_names[f.scope](f.name), f.period)
                projected[key] = projected.get(key, 0.0) + f.projected_usd
            self._forecast, self._forecast_at = projected, now
        return self._forecast

    def collect(self) -> Iterator[Metric]:
        live = self._live
        in_flight = GaugeMetricFamily("keel_model_in_flight", "Calls in flight per model.", labels=["model"])
        queued = GaugeMetricFamily("keel_model_queue_depth", "Calls waiting for a slot per model.", labels=["model"])
        breaker = GaugeMetricFamily(
            "keel_model_breaker_state", "1 for the model's current circuit-breaker state.", labels=["model", "state"]
        )
        for name in live.models.names():
            health = live.models.health(name)
            in_flight.add_metric([name], health.in_flight)
            queued.add_metric([name], health.waiting)
            for state in BREAKER_STATES:
                breaker.add_metric([name, state], 1.0 if health.breaker == state else 0.0)
        yield in_flight
        yield queued
        yield breaker
        budgets = GaugeMetricFamily(
            "keel_budget_remaining_usd", "Spend left in the budget's period.", labels=["scope", "name", "period"]
        )
        for status in live.budgets.all_status():
            b = status.budget
            budgets.add_metric([b.scope, b.name, b.period], status.remaining_usd)
        yield budgets
        forecast = GaugeMetricFamily(
            "keel_cost_forecast_usd",
            "Spend projected at the end of the current UTC day or month.",
            labels=["scope", "name", "period"],
        )
        for (scope, name, period), usd in sorted(self._projected(live.clock()).items()):
            forecast.add_metric([scope, name, period], usd)
        yield forecast
        age = GaugeMetricFamily(
            "keel_index_age_seconds", "Seconds since a source's newest document was ingested.", labels=["source"]
        )
        known = {s.name for s in live.contract.sources}
        try:
            rows = live.db.connection().execute("SELECT source, MAX(ingested_at) FROM documents GROUP BY source")
            now = live.clock()
            for source, ingested in rows:
                age.add_metric([source if source in known else OTHER], max(0.0, now - float(ingested)))
        except DatabaseError:
            pass  # a scrape never fails because the store is busy
        yield age
        yield from _freshness_gauges(live)
        anomaly = GaugeMetricFamily(
            "keel_anomaly", "1 when the last hour's value is anomalous against its rolling baseline.", labels=["signal"]
        )
        now = live.clock()
        if now - self._anomalies_at > ANOMALY_REFRESH_S:
            try:
                self._anomalies = detect_anomalies(live.db, now=now)
            except DatabaseError:
                self._anomalies = []
            self._anomalies_at = now
        for a in self._anomalies:
            anomaly.add_metric([a.signal], 1.0 if a.anomalous else 0.0)
        yield anomaly


def _freshness_gauges(live: _Live) -> Iterator[Metric]:
    """Stale and failing sources, one series per contract source (so the labels stay bounded)."""
    stale = GaugeMetricFamily(
        "keel_source_stale",
        "1 when a source's last successful ingest is older than its refresh interval, or there was none.",
        labels=["source"],
    )
    failing = GaugeMetricFamily("keel_source_failing", "1 when a source's last ingest failed.", labels=["source"])
    try:
        for f in source_freshness(live.contract, live.db, now=live.clock()):
            stale.add_metric([f.source], 1.0 if f.stale else 0.0)
            failing.add_metric([f.source], 1.0 if f.failing else 0.0)
    except DatabaseError:
        pass  # a scrape never fails because the store is busy
    yield stale
    yield failing


class ServiceMetrics:
    """The service's Prometheus registry and the recording of finished requests."""

    def __init__(
        self,
        contract: Contract,
        *,
        models: ModelRegistry,
        budgets: BudgetGuard,
        db: Database,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._app = _Vocabulary(a.name for a in contract.apps)
        self._model = _Vocabulary(m.name for m in contract.models)
        self._mode = _Vocabulary(MODES)
        self._stage = _Vocabulary(STAGES)
        self._cache = _Vocabulary(CACHE_OUTCOMES)
        self._code = _Vocabulary({"ok", "client_closed", *all_error_codes()})
        topics = [f"blocked:topic:{t.name}" for t in contract.policy.blocked_topics]
        self._verdict = _Vocabulary(
            {
                "pass",
                "in_process",
                "authenticated",
                "flagged:injection",
                "stripped:injection",
                "blocked:injection",
                "blocked:uncited_answer",
                "blocked:system_prompt_leak",
                "citations_removed",
                "uncited_answer",
                "empty_answer",
                "pii_redacted",
                "citations_removed+pii_redacted",
                "instructions_removed",
                "dropped:system_prompt_leak",
                *topics,
            }
        )
        r = self.registry
        self.requests = Counter("keel_requests", "Finished requests.", ["app", "endpoint", "mode", "code"], registry=r)
        self.latency = Histogram(
            "keel_request_duration_seconds",
            "End-to-end request latency.",
            ["app", "endpoint", "mode"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_latency = Histogram(
            "keel_stage_duration_seconds",
            "Time in each pipeline stage.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.first_token = Histogram(
            "keel_time_to_first_token_seconds",
            "Streaming requests: time until the first text reached the caller.",
            ["app"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter("keel_tokens", "Model tokens.", ["app", "model", "direction"], registry=r)
        self.cost = Counter("keel_cost_usd", "Spend at contract prices.", ["app", "model"], registry=r)
        self.cache = Counter("keel_cache_lookups", "Answer-cache outcomes.", ["app", "outcome"], registry=r)
        self.cache_errors = Counter(
            "keel_cache_errors",
            "Answer-cache operations skipped because the shared store (Redis) was unavailable.",
            ["operation"],
            registry=r,
        )
        for operation in sorted(CACHE_OPERATIONS):
            self.cache_errors.labels(operation)
        self.guards = Counter("keel_guard_verdicts", "Guard verdicts.", ["guard", "verdict"], registry=r)
        self.degraded = Counter("keel_degraded_requests", "Requests served in a limited mode.", ["app"], registry=r)
        self.shed = Counter(
            "keel_shed_requests", "Requests refused to protect latency, by reason.", ["reason"], registry=r
        )
        self._shed_reason = _Vocabulary(SHED_REASONS)
        for reason in sorted(SHED_REASONS):
            self.shed.labels(reason)
        self._admission: _AdmissionCollector | None = None
        r.register(_LiveCollector(_Live(contract=contract, models=models, budgets=budgets, db=db, clock=clock)))

    def observe(self, ctx: RequestContext, status: int) -> None:
        """Record one finished request."""
        app = self._app(ctx.app.name)
        endpoint = ctx.endpoint if ctx.endpoint in ("ask", "chat") else OTHER
        mode = self._mode(ctx.mode if status < 400 else "error")
        error = ctx.trace.attributes.get("error")
        code = self._code(str(error) if error else "ok")
        self.requests.labels(app, endpoint, mode, code).inc()
        self.latency.labels(app, endpoint, mode).observe(ctx.trace.elapsed_ms() / 1000.0)
        for span in ctx.trace.spans:
            if span.status != "skipped":
                self.stage_latency.labels(self._stage(span.name)).observe(span.duration_ms / 1000.0)
        if ctx.first_text_ms is not None:
            self.first_token.labels(app).observe(ctx.first_text_ms / 1000.0)
        model = self._model(ctx.model) if ctx.model else "none"
        if ctx.usage.prompt_tokens:
            self.tokens.labels(app, model, "input").inc(ctx.usage.prompt_tokens)
        if ctx.usage.completion_tokens:
            self.tokens.labels(app, model, "output").inc(ctx.usage.completion_tokens)
        if ctx.cost_usd:
            self.cost.labels(app, model).inc(ctx.cost_usd)
        if ctx.app.retrieval and status < 400:
            self.cache.labels(app, self._cache(ctx.cache)).inc()
        for guard, verdict in ctx.guard_verdicts.items():
            self.guards.labels(
                guard if guard in ("input", "output", "passages", "stream") else OTHER, self._verdict(verdict)
            ).inc()
        if ctx.degraded:
            self.degraded.labels(app).inc()
        if error == "model_busy":
            self.record_shed("model_busy")

    def record_cache_error(self, operation: str) -> None:
        """Count one answer-cache operation (``lookup``, ``store``, ``clear``) the shared store could not serve."""
        self.cache_errors.labels(operation if operation in CACHE_OPERATIONS else OTHER).inc()

    def record_shed(self, reason: str) -> None:
        """Count one request shed (``overloaded``, ``shutting_down`` or ``model_busy``)."""
        self.shed.labels(self._shed_reason(reason)).inc()

    def watch_admission(self, state: AdmissionState) -> None:
        """Expose the replica's in-flight and queued requests as gauges (replacing an earlier app's)."""
        if self._admission is not None:
            self.registry.unregister(self._admission)
        self._admission = _AdmissionCollector(state)
        self.registry.register(self._admission)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)
