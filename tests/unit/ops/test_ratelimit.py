"""Rate limits: token buckets per key, app and tenant, in process.

:class:`RateLimiterBehaviour` holds what every backend must do, on a fake clock;
this module runs it against the in-process backend and the integration tests run
it against a real Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Literal

import pytest

from keel.contract.models import RateLimit, RateLimitSettings
from keel.errors import ConfigError
from keel.ops.ratelimit import (
    LimitDecision,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    Subject,
    build_rate_limiter,
)
from keel.ops.ratelimit.buckets import buckets_for


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeLimiter = Callable[[list[RateLimit]], RateLimiter]

ALICE = Subject(key_id="k-alice", app="web", tenant="acme")
BOB = Subject(key_id="k-bob", app="web", tenant="acme")
CAROL = Subject(key_id="k-carol", app="web", tenant="globex")


def limit(
    scope: Literal["key", "app", "tenant"],
    name: str = "*",
    *,
    rpm: int | None = None,
    tpm: int | None = None,
) -> RateLimit:
    return RateLimit(scope=scope, name=name, requests_per_minute=rpm, tokens_per_minute=tpm)


def admitted(limiter: RateLimiter, subject: Subject, attempts: int, *, tokens: int = 0) -> int:
    return sum(limiter.acquire(subject, tokens=tokens).allowed for _ in range(attempts))


class RateLimiterBehaviour:
    """What every backend does; a subclass provides the ``clock`` and ``make`` fixtures."""

    def test_burst_up_to_capacity_then_refusal(self, make: MakeLimiter) -> None:
        limiter = make([limit("key", rpm=5)])
        decisions = [limiter.acquire(ALICE) for _ in range(5)]
        assert all(d.allowed for d in decisions)
        assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
        assert {d.limit_name for d in decisions} == {"key:k-alice:requests"}
        assert {d.limit for d in decisions} == {5}
        refused = limiter.acquire(ALICE)
        assert not refused.allowed and not refused.degraded
        assert refused.limit_name == "key:k-alice:requests" and refused.remaining == 0
        assert refused.retry_after_s == pytest.approx(12.0)
        assert refused.reset_s == pytest.approx(60.0)
        assert refused.headers()["Retry-After"] == "12"
        # Another key has its own bucket.
        assert admitted(limiter, BOB, 6) == 5

    def test_refill_is_continuous_and_capped(self, make: MakeLimiter, clock: FakeClock) -> None:
        limiter = make([limit("tenant", rpm=6)])  # one request every 10 s
        assert admitted(limiter, ALICE, 10) == 6
        clock.advance(25)
        assert admitted(limiter, ALICE, 10) == 2
        clock.advance(3600)  # an idle hour refills to capacity, not beyond
        assert admitted(limiter, ALICE, 10) == 6

    def test_retry_after_is_accurate(self, make: MakeLimiter, clock: FakeClock) -> None:
        limiter = make([limit("key", rpm=4)])  # one request every 15 s
        assert admitted(limiter, ALICE, 4) == 4
        clock.advance(5)
        refused = limiter.acquire(ALICE)
        assert not refused.allowed
        assert refused.retry_after_s == pytest.approx(10.0)
        assert refused.headers()["Retry-After"] == "10"
        clock.advance(refused.retry_after_s - 0.01)
        assert not limiter.acquire(ALICE).allowed
        clock.advance(0.01)
        assert limiter.acquire(ALICE).allowed

    def test_retry_after_header_is_at_least_one_second(self, make: MakeLimiter, clock: FakeClock) -> None:
        limiter = make([limit("key", rpm=60)])
        assert admitted(limiter, ALICE, 60) == 60
        clock.advance(0.9)
        refused = limiter.acquire(ALICE)
        assert refused.retry_after_s == pytest.approx(0.1)
        assert refused.headers()["Retry-After"] == "1"

    def test_refused_request_charges_neither_its_request_nor_its_token_bucket(
        self, make: MakeLimiter, clock: FakeClock
    ) -> None:
        limiter = make([limit("key", rpm=3, tpm=100)])
        first = limiter.acquire(ALICE, tokens=90)
        assert first.allowed
        # The token bucket (10 of 100 left) is closer to empty than the request bucket (2 of 3).
        assert (first.limit_name, first.remaining) == ("key:k-alice:tokens", 10)
        for _ in range(5):
            refused = limiter.acquire(ALICE, tokens=50)
            assert not refused.allowed and refused.limit_name == "key:k-alice:tokens"
        # The refusals took no request: two are left, and tokens are still 10.
        assert limiter.acquire(ALICE, tokens=10).allowed
        second = limiter.acquire(ALICE, tokens=0)
        assert not second.allowed and second.limit_name == "key:k-alice:tokens"
        clock.advance(0.6)  # one token back
        assert limiter.acquire(ALICE, tokens=0).allowed
        refused = limiter.acquire(ALICE, tokens=0)
        assert not refused.allowed and refused.limit_name == "key:k-alice:requests"

    def test_all_or_nothing_across_scopes(self, make: MakeLimiter) -> None:
        limiter = make([limit("key", rpm=2), limit("tenant", rpm=3)])
        assert admitted(limiter, ALICE, 2) == 2
        for _ in range(5):
            refused = limiter.acquire(ALICE)
            assert not refused.allowed and refused.limit_name == "key:k-alice:requests"
        # Alice's refusals did not charge the tenant: Bob gets its last request.
        assert limiter.acquire(BOB).allowed
        refused = limiter.acquire(BOB)
        assert not refused.allowed and refused.limit_name == "tenant:acme:requests"
        # Another tenant is untouched.
        assert admitted(limiter, CAROL, 2) == 2

    def test_refusal_reports_the_bucket_with_the_longest_wait(self, make: MakeLimiter) -> None:
        limiter = make([limit("key", rpm=2), limit("tenant", rpm=60)])
        assert admitted(limiter, ALICE, 2) == 2
        # Only the key bucket refuses, and only it sets the wait.
        refused = limiter.acquire(ALICE)
        assert refused.limit_name == "key:k-alice:requests"
        assert refused.retry_after_s == pytest.approx(30.0)

    def test_star_gives_each_its_own_bucket_and_a_name_replaces_it(self, make: MakeLimiter) -> None:
        limiter = make([limit("tenant", rpm=2), limit("tenant", "acme", rpm=4), limit("app", "mobile", rpm=1)])
        assert admitted(limiter, ALICE, 10) == 4  # acme's own limit
        assert admitted(limiter, CAROL, 10) == 2  # globex: the '*' limit
        assert admitted(limiter, Subject(key_id="k-dan", app="web", tenant="initech"), 10) == 2
        mobile = Subject(key_id="k-erin", app="mobile", tenant="umbrella")
        assert admitted(limiter, mobile, 10) == 1  # the app limit is the binding one
        # A named limit does not apply to anyone else.
        unlimited = make([limit("app", "mobile", rpm=1)])
        decision = unlimited.acquire(ALICE)
        assert decision == LimitDecision.unlimited()
        assert decision.headers() == {}
        assert admitted(unlimited, ALICE, 10) == 10

    def test_token_estimate_must_fit_and_is_charged(self, make: MakeLimiter, clock: FakeClock) -> None:
        limiter = make([limit("app", tpm=600)])  # 10 tokens a second
        assert limiter.acquire(ALICE, tokens=500).allowed
        refused = limiter.acquire(ALICE, tokens=200)
        assert not refused.allowed and refused.remaining == 100
        assert refused.retry_after_s == pytest.approx(10.0)
        assert limiter.acquire(ALICE, tokens=100).allowed
        assert not limiter.acquire(ALICE).allowed  # no token left: even an empty estimate waits
        clock.advance(0.1)
        assert limiter.acquire(ALICE).allowed

    def test_estimate_larger_than_the_bucket_fits_a_full_bucket(self, make: MakeLimiter) -> None:
        limiter = make([limit("key", tpm=100)])
        decision = limiter.acquire(ALICE, tokens=250)
        assert decision.allowed and decision.remaining == 0
        assert decision.reset_s == pytest.approx(150.0)  # 150 in debt: 250 tokens to refill, 100 a minute
        refused = limiter.acquire(ALICE, tokens=250)
        assert not refused.allowed and refused.retry_after_s == pytest.approx(150.0)

    def test_debt_from_charged_tokens_delays_later_requests(self, make: MakeLimiter, clock: FakeClock) -> None:
        limiter = make([limit("key", tpm=60), limit("tenant", rpm=100)])  # one token a second
        assert limiter.acquire(ALICE, tokens=10).allowed
        limiter.charge_tokens(ALICE, 110)  # 120 used in all: 60 in debt
        refused = limiter.acquire(ALICE, tokens=1)
        assert not refused.allowed and refused.limit_name == "key:k-alice:tokens"
        assert refused.remaining == 0
        assert refused.retry_after_s == pytest.approx(61.0)
        assert refused.reset_s == pytest.approx(120.0)
        clock.advance(60.5)
        assert not limiter.acquire(ALICE, tokens=1).allowed
        clock.advance(0.5)
        assert limiter.acquire(ALICE, tokens=1).allowed
        # Charging never raises, whatever the amount, and leaves other subjects alone.
        limiter.charge_tokens(ALICE, 10**12)
        limiter.charge_tokens(CAROL, 0)
        assert limiter.acquire(CAROL, tokens=60).allowed

    def test_negative_charge_returns_an_over_estimate_up_to_capacity(self, make: MakeLimiter, clock: FakeClock) -> None:
        limiter = make([limit("key", tpm=100)])
        assert limiter.acquire(ALICE, tokens=80).allowed
        limiter.charge_tokens(ALICE, -50)  # used 30 of the 80 estimated
        decision = limiter.acquire(ALICE, tokens=70)
        assert decision.allowed and decision.remaining == 0
        limiter.charge_tokens(ALICE, -1000)
        assert limiter.acquire(ALICE, tokens=100).allowed
        assert not limiter.acquire(ALICE, tokens=1).allowed

    def test_charge_without_token_limits_is_a_no_op(self, make: MakeLimiter) -> None:
        limiter = make([limit("key", rpm=2)])
        limiter.charge_tokens(ALICE, 1000)
        assert admitted(limiter, ALICE, 3) == 2

    def test_headers(self, make: MakeLimiter) -> None:
        limiter = make([limit("tenant", rpm=3)])
        allowed = limiter.acquire(ALICE).headers()
        assert allowed == {
            "RateLimit-Limit": "3",
            "RateLimit-Remaining": "2",
            "RateLimit-Reset": "20",
            "X-RateLimit-Limit": "3",
            "X-RateLimit-Remaining": "2",
        }
        admitted(limiter, ALICE, 2)
        refused = limiter.acquire(ALICE).headers()
        assert refused["RateLimit-Remaining"] == "0" and refused["RateLimit-Reset"] == "60"
        assert refused["Retry-After"] == "20"

    def test_concurrent_threads_admit_exactly_the_capacity(self, make: MakeLimiter) -> None:
        limiter = make([limit("tenant", rpm=50, tpm=10_000)])
        results = _hammer([limiter] * 8, attempts=20, tokens=5)
        assert sum(results) == 50
        refused = limiter.acquire(ALICE, tokens=5)
        assert not refused.allowed and refused.limit_name == "tenant:acme:requests"


def _hammer(limiters: list[RateLimiter], *, attempts: int, tokens: int = 0) -> list[int]:
    """Run ``attempts`` acquisitions in one thread per limiter, all at once; admitted per thread."""
    barrier = threading.Barrier(len(limiters))
    results = [0] * len(limiters)
    subjects = [ALICE, BOB]

    def work(i: int) -> None:
        barrier.wait()
        for n in range(attempts):
            results[i] += limiters[i].acquire(subjects[(i + n) % 2], tokens=tokens).allowed

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(limiters))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return results


class TestMemoryRateLimiter(RateLimiterBehaviour):
    """The in-process backend."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def make(self, clock: FakeClock) -> Iterator[MakeLimiter]:
        made: list[MemoryRateLimiter] = []

        def factory(limits: list[RateLimit]) -> RateLimiter:
            made.append(MemoryRateLimiter(limits, clock=clock))
            return made[-1]

        yield factory
        for limiter in made:
            limiter.close()

    def test_full_buckets_are_forgotten(self, clock: FakeClock) -> None:
        limiter = MemoryRateLimiter([limit("key", rpm=60)], clock=clock)
        for i in range(100):
            limiter.acquire(Subject(key_id=f"k{i}", app="web", tenant="acme"))
        clock.advance(61)
        limiter.acquire(ALICE)
        assert list(limiter._states) == ["key:*:k-alice:requests"]
        limiter.close()
        assert limiter._states == {}


def test_buckets_for_a_subject() -> None:
    limits = [
        limit("key", rpm=10, tpm=1000),
        limit("tenant", rpm=100),
        limit("tenant", "acme", rpm=50),
        limit("tenant", "acme", rpm=20),  # a duplicate: the smaller one holds
        limit("app", "mobile", rpm=5),
    ]
    found = {b.name: (b.key, b.kind, b.capacity) for b in buckets_for(limits, ALICE)}
    assert found == {
        "key:k-alice:requests": ("key:*:k-alice:requests", "requests", 10),
        "key:k-alice:tokens": ("key:*:k-alice:tokens", "tokens", 1000),
        "tenant:acme:requests": ("tenant:=:acme:requests", "requests", 20),
    }
    assert [b.key for b in buckets_for(limits, CAROL)][-1] == "tenant:*:globex:requests"


def test_decision_headers_without_a_bucket() -> None:
    assert LimitDecision.unlimited().headers() == {}
    fail_open = LimitDecision.unavailable(allowed=True)
    assert fail_open.allowed and fail_open.degraded and fail_open.headers() == {}
    fail_closed = LimitDecision.unavailable(allowed=False)
    assert not fail_closed.allowed and fail_closed.degraded
    assert fail_closed.headers() == {"Retry-After": "1"}


@pytest.mark.parametrize(
    ("retry_after_s", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.0000001, "2"), (59.5, "60")]
)
def test_retry_after_header_rounds_up_to_whole_seconds(retry_after_s: float, header: str) -> None:
    decision = LimitDecision(
        allowed=False, limit_name="key:k:requests", limit=1, remaining=0, retry_after_s=retry_after_s, reset_s=60
    )
    assert decision.headers()["Retry-After"] == header
    assert decision.headers()["RateLimit-Reset"] == "60"


def test_build_rate_limiter() -> None:
    assert build_rate_limiter(RateLimitSettings(), redis_url=None) is None
    memory = build_rate_limiter(RateLimitSettings(limits=[limit("key", rpm=1)]), redis_url="redis://127.0.0.1:1/0")
    assert isinstance(memory, MemoryRateLimiter)
    memory.close()
    redis_settings = RateLimitSettings(backend="redis", limits=[limit("key", rpm=1)])
    with pytest.raises(ConfigError, match="KEEL_REDIS_URL"):
        build_rate_limiter(redis_settings, redis_url=None)
    shared = build_rate_limiter(redis_settings, redis_url="redis://127.0.0.1:1/0")  # connects lazily
    assert isinstance(shared, RedisRateLimiter)
    shared.close()
