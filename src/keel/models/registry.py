"""The models the contract declares, each built once with its resilience wrappers.

A call to a model goes through, from the outside in: the concurrency limiter (a
bounded, time-limited queue), the circuit breaker, retries (HTTP upstreams only),
and the provider itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from keel.contract import Contract, ModelSpec
from keel.errors import ConfigError
from keel.models.base import Completion, Provider
from keel.models.breaker import Breaker, BreakerState, CircuitBreaker, CircuitBreakingProvider
from keel.models.breaker_redis import RedisCircuitBreaker
from keel.models.extractive import ExtractiveProvider
from keel.models.limiter import ConcurrencyLimiter, LimitedProvider
from keel.models.local import LocalLlamaProvider
from keel.models.openai_compatible import OpenAICompatibleProvider
from keel.models.retry import RetryingProvider
from keel.models.stats import LatencyWindow

__all__ = ["ModelHealth", "ModelRegistry", "cost_usd", "estimate_cost_usd"]


def cost_usd(spec: ModelSpec, completion: Completion) -> float:
    """What a completion cost at the contract's prices."""
    return (
        completion.prompt_tokens * spec.price.input_per_mtok + completion.completion_tokens * spec.price.output_per_mtok
    ) / 1_000_000


def estimate_cost_usd(spec: ModelSpec, prompt_tokens: int, max_output_tokens: int) -> float:
    """The most a call can cost: its prompt plus the longest answer allowed."""
    return (prompt_tokens * spec.price.input_per_mtok + max_output_tokens * spec.price.output_per_mtok) / 1_000_000


@dataclass(frozen=True, kw_only=True)
class ModelHealth:
    """What routing needs to know about a model right now."""

    breaker: BreakerState
    in_flight: int
    waiting: int
    p95_ms: float | None


class ModelRegistry:
    """Providers by contract name."""

    def __init__(
        self,
        contract: Contract,
        *,
        project_root: Path,
        secrets: Mapping[str, str] | None = None,
        redis_url: str | None = None,
    ) -> None:
        self._specs = {spec.name: spec for spec in contract.models}
        self._shared_breakers = contract.routing.shared_state == "redis"
        if self._shared_breakers and not redis_url:
            raise ConfigError("routing.shared_state is 'redis' but no Redis URL is set (KEEL_REDIS_URL)")
        self._redis_url = redis_url or ""
        self._breakers: dict[str, Breaker] = {}
        self._limiters: dict[str, ConcurrencyLimiter] = {}
        self._latency: dict[str, LatencyWindow] = {}
        self._providers: dict[str, Provider] = {}
        for spec in contract.models:
            self._providers[spec.name] = self._build(spec, project_root, secrets or {})
            self._latency[spec.name] = LatencyWindow()

    def _build(self, spec: ModelSpec, project_root: Path, secrets: Mapping[str, str]) -> Provider:
        if spec.provider == "extractive":
            return ExtractiveProvider(spec.name)
        base: Provider
        if spec.provider == "local":
            base = LocalLlamaProvider(spec, project_root=project_root)
        else:
            key = secrets.get(spec.api_key_secret) if spec.api_key_secret else None
            base = RetryingProvider(OpenAICompatibleProvider(spec, api_key=key), spec.retries)
        breaker: Breaker = (
            RedisCircuitBreaker(spec.breaker, name=spec.name, url=self._redis_url)
            if self._shared_breakers
            else CircuitBreaker(spec.breaker)
        )
        limiter = ConcurrencyLimiter(
            max_concurrency=spec.max_concurrency, max_queue=spec.max_queue, queue_timeout_s=spec.queue_timeout_s
        )
        self._breakers[spec.name] = breaker
        self._limiters[spec.name] = limiter
        return LimitedProvider(CircuitBreakingProvider(base, breaker), limiter)

    def names(self) -> list[str]:
        """Declared model names, in contract order."""
        return list(self._providers)

    def get(self, name: str) -> Provider:
        """The (wrapped) provider for ``name``; ``KeyError`` if undeclared."""
        return self._providers[name]

    def spec(self, name: str) -> ModelSpec:
        """The contract entry for ``name``."""
        return self._specs[name]

    def health(self, name: str) -> ModelHealth:
        """Breaker state, queue and recent latency of ``name``."""
        breaker = self._breakers.get(name)
        limiter = self._limiters.get(name)
        return ModelHealth(
            breaker=breaker.state if breaker else "closed",
            in_flight=limiter.in_flight if limiter else 0,
            waiting=limiter.waiting if limiter else 0,
            p95_ms=self._latency[name].p95(),
        )

    def observe_latency(self, name: str, milliseconds: float) -> None:
        """Record a successful call's duration."""
        self._latency[name].observe(milliseconds)

    async def warm_up(self) -> None:
        """Load every model (an unreachable HTTP upstream is not an error here: its breaker handles it)."""
        for provider in self._providers.values():
            await provider.warm_up()

    async def close(self) -> None:
        """Release every model."""
        for provider in self._providers.values():
            await provider.close()
        for breaker in self._breakers.values():
            if isinstance(breaker, RedisCircuitBreaker):
                breaker.close()
