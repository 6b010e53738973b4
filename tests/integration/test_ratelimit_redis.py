"""Rate limits in a real Redis: the backend's behaviour, replicas sharing buckets, Redis going away."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from keel.contract.models import RateLimit
from keel.ops.ratelimit import RateLimiter, RedisRateLimiter, Subject
from tests.support.redis_server import RedisServer, own_redis_server, redis_server  # noqa: F401  (fixtures)
from tests.unit.ops.test_ratelimit import (
    ALICE,
    FakeClock,
    MakeLimiter,
    RateLimiterBehaviour,
    _hammer,
    admitted,
    limit,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    """A key prefix of the test's own, so tests sharing the server keep apart."""
    return f"keel:test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:  # noqa: F811
    client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()


class TestRedisRateLimiter(RateLimiterBehaviour):
    """The Redis backend, on the injected fake clock."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    @pytest.fixture
    def make(self, redis_server: RedisServer, clock: FakeClock, prefix: str) -> Iterator[MakeLimiter]:  # noqa: F811
        made: list[RedisRateLimiter] = []

        def factory(limits: list[RateLimit]) -> RateLimiter:
            made.append(RedisRateLimiter(limits, url=redis_server.url, prefix=f"{prefix}{len(made)}:", clock=clock))
            return made[-1]

        yield factory
        for limiter in made:
            limiter.close()


def test_buckets_refill_by_the_server_clock(redis_server: RedisServer, prefix: str) -> None:  # noqa: F811
    limiter = RedisRateLimiter([limit("key", rpm=120)], url=redis_server.url, prefix=prefix)  # two a second
    try:
        assert admitted(limiter, ALICE, 130) == 120
        refused = limiter.acquire(ALICE)
        assert not refused.allowed and 0 < refused.retry_after_s <= 0.5
        time.sleep(refused.retry_after_s + 0.05)
        assert limiter.acquire(ALICE).allowed
    finally:
        limiter.close()


def test_two_replicas_share_a_bucket_under_concurrent_load(redis_server: RedisServer, prefix: str) -> None:  # noqa: F811
    limits = [limit("tenant", rpm=20, tpm=100_000)]  # refills one request in 3 s: none during the test
    replicas = [RedisRateLimiter(limits, url=redis_server.url, prefix=prefix) for _ in range(2)]
    try:
        results = _hammer([replicas[0]] * 4 + [replicas[1]] * 4, attempts=15, tokens=100)
        assert sum(results) == 20
        assert sum(results[:4]) > 0 and sum(results[4:]) > 0
        for replica in replicas:
            refused = replica.acquire(ALICE)
            assert not refused.allowed and refused.limit_name == "tenant:acme:requests"
    finally:
        for replica in replicas:
            replica.close()


def test_replicas_agree_through_the_server_time(redis_server: RedisServer, prefix: str) -> None:  # noqa: F811
    a, b = (RedisRateLimiter([limit("key", rpm=3)], url=redis_server.url, prefix=prefix) for _ in range(2))
    # What a replica whose own clock runs an hour ahead would do: refill an hour at once.
    ahead = RedisRateLimiter(
        [limit("key", rpm=3)], url=redis_server.url, prefix=prefix, clock=lambda: time.time() + 3600
    )
    try:
        assert admitted(a, ALICE, 2) == 2
        assert admitted(b, ALICE, 2) == 1
        assert not a.acquire(ALICE).allowed
        assert admitted(ahead, ALICE, 5) == 3
    finally:
        for limiter in (a, b, ahead):
            limiter.close()


def test_keys_expire_once_refilled(
    redis_server: RedisServer,  # noqa: F811
    admin: redis.Redis,
    prefix: str,
) -> None:
    limiter = RedisRateLimiter([limit("key", rpm=60, tpm=600)], url=redis_server.url, prefix=prefix)
    try:
        assert limiter.acquire(ALICE, tokens=300).allowed
        requests_ttl = admin.pttl(f"{prefix}key:*:k-alice:requests")
        tokens_ttl = admin.pttl(f"{prefix}key:*:k-alice:tokens")
        assert 1000 < requests_ttl <= 2000  # one second to refill, plus a second of margin
        assert 30_000 < tokens_ttl <= 31_000
        limiter.charge_tokens(ALICE, 600)  # into debt: 900 tokens to refill
        assert 90_000 < admin.pttl(f"{prefix}key:*:k-alice:tokens") <= 91_000
    finally:
        limiter.close()


def test_script_is_reloaded_after_a_flush(
    redis_server: RedisServer,  # noqa: F811
    admin: redis.Redis,
    prefix: str,
) -> None:
    limiter = RedisRateLimiter([limit("key", rpm=2)], url=redis_server.url, prefix=prefix)
    try:
        assert limiter.acquire(ALICE).allowed
        admin.script_flush()
        decision = limiter.acquire(ALICE)
        assert decision.allowed and not decision.degraded
        assert not limiter.acquire(ALICE).allowed
    finally:
        limiter.close()


def test_fail_open_or_closed_while_redis_is_away(own_redis_server: RedisServer, prefix: str) -> None:  # noqa: F811
    limits = [limit("key", rpm=1, tpm=100)]
    fail_open = RedisRateLimiter(limits, url=own_redis_server.url, prefix=f"{prefix}open:")
    fail_closed = RedisRateLimiter(limits, url=own_redis_server.url, prefix=f"{prefix}closed:", on_error="deny")
    bob = Subject(key_id="k-bob", app="web", tenant="acme")
    try:
        assert fail_open.acquire(ALICE).allowed
        assert fail_closed.acquire(bob).allowed
        own_redis_server.stop()

        started = time.monotonic()
        opened = fail_open.acquire(ALICE)
        assert opened.allowed and opened.degraded and opened.headers() == {}
        closed = fail_closed.acquire(ALICE)
        assert not closed.allowed and closed.degraded
        assert closed.headers() == {"Retry-After": "1"}
        fail_open.charge_tokens(ALICE, 50)  # never raises
        fail_closed.charge_tokens(ALICE, 50)
        assert time.monotonic() - started < 5

        own_redis_server.start()  # same port, empty: every bucket full again
        for limiter in (fail_open, fail_closed):
            first, second = limiter.acquire(ALICE), limiter.acquire(ALICE)
            assert first.allowed and not first.degraded
            assert not second.allowed and not second.degraded
            limiter.charge_tokens(ALICE, 0)
        assert admitted(fail_open, bob, 2) == 1
    finally:
        fail_open.close()
        fail_closed.close()


def test_missing_server_binary_is_reported_clearly(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support import redis_server as support

    monkeypatch.setattr(support, "REDIS_SERVER", tmp_path_factory.mktemp("nothing") / "redis-server")
    with pytest.raises(RuntimeError, match="scripts/ensure-redis"):
        support.RedisServer(tmp_path_factory.mktemp("redis-missing")).start()
