"""A circuit breaker per provider.

Closed: calls go through; failures are counted in a sliding window. When the count
reaches the threshold the breaker opens: calls fail at once with
:class:`~keel.errors.CircuitOpen` for the cool-down. Then it is half-open: exactly
one probe call goes through; its success closes the breaker, its failure opens it
again for another cool-down.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Literal, Protocol

from keel.contract import BreakerSettings
from keel.errors import CircuitOpen, UpstreamError
from keel.models.base import GenerationRequest, Provider, ProviderWrapper, StreamDelta

__all__ = ["Breaker", "BreakerState", "CircuitBreaker", "CircuitBreakingProvider"]

BreakerState = Literal["closed", "open", "half_open"]


class Breaker(Protocol):
    """What :class:`CircuitBreakingProvider` and routing need of a breaker (in process or shared)."""

    @property
    def state(self) -> BreakerState:
        """The current state."""
        ...

    def seconds_until_probe(self) -> float:
        """How long until a probe is allowed."""
        ...

    def acquire(self) -> bool:
        """Whether a call may go through now."""
        ...

    def record_success(self) -> None:
        """A call succeeded."""
        ...

    def record_failure(self) -> None:
        """A call failed."""
        ...

    def release_probe(self) -> None:
        """A probe ended without a verdict."""
        ...


class CircuitBreaker:
    """The state machine, independent of what it guards."""

    def __init__(self, settings: BreakerSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The current state."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._settings.cooldown_s:
            return "half_open"
        return "open"

    def seconds_until_probe(self) -> float:
        """How long until a probe is allowed (0 when closed or half-open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._settings.cooldown_s - (self._clock() - self._opened_at))

    def acquire(self) -> bool:
        """Whether a call may go through now (taking the single probe slot when half-open)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        self._failures.clear()
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        """A call failed: count it, and open the breaker at the threshold or after a failed probe."""
        now = self._clock()
        if self._probing or self.state != "closed":
            self._opened_at = now
            self._probing = False
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self._settings.window_s:
            self._failures.popleft()
        if len(self._failures) >= self._settings.failures:
            self._opened_at = now
            self._failures.clear()

    def release_probe(self) -> None:
        """A probe ended without a verdict (e.g. the caller went away): let another probe through."""
        self._probing = False


class CircuitBreakingProvider(ProviderWrapper):
    """Wraps a provider with a :class:`Breaker`."""

    def __init__(self, inner: Provider, breaker: Breaker) -> None:
        super().__init__(inner)
        self.breaker = breaker

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamDelta]:
        """Stream through the breaker; only upstream failures count against it."""
        if not self.breaker.acquire():
            raise CircuitOpen(
                f"The model {self.name} is failing and is not being called "
                f"(retry in {self.breaker.seconds_until_probe():.0f}s)."
            )
        verdict = False
        try:
            async for delta in self._inner.stream(request):
                yield delta
            self.breaker.record_success()
            verdict = True
        except UpstreamError:
            self.breaker.record_failure()
            verdict = True
            raise
        finally:
            if not verdict:
                self.breaker.release_probe()
