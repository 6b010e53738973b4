"""Circuit breakers in a real Redis: a breaker one replica opens is open for the others; one probe across replicas."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.contract import BreakerSettings, Contract
from keel.errors import ConfigError
from keel.models.breaker_redis import RedisCircuitBreaker
from keel.models.registry import ModelRegistry
from tests.support.redis_server import RedisServer, own_redis_server, redis_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

SETTINGS = BreakerSettings(failures=3, window_s=10, cooldown_s=0.5)


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[tuple[RedisCircuitBreaker, RedisCircuitBreaker]]:  # noqa: F811
    prefix = f"keel:test:{uuid.uuid4().hex[:12]}:"
    a, b = (RedisCircuitBreaker(SETTINGS, name="m", url=redis_server.url, prefix=prefix) for _ in range(2))
    yield a, b
    a.close()
    b.close()


def _open(breaker: RedisCircuitBreaker) -> None:
    for _ in range(SETTINGS.failures):
        assert breaker.acquire()
        breaker.record_failure()


def test_failures_of_both_replicas_count_in_one_window(pair: tuple[RedisCircuitBreaker, RedisCircuitBreaker]) -> None:
    a, b = pair
    a.record_failure()
    b.record_failure()
    assert a.state == "closed"
    b.record_failure()
    assert a.state == "open" and b.state == "open"


def test_a_breaker_opened_by_one_replica_is_open_for_the_other(
    pair: tuple[RedisCircuitBreaker, RedisCircuitBreaker],
) -> None:
    a, b = pair
    _open(a)
    assert b.state == "open"  # on its very next read: no delay to wait for
    assert not b.acquire()
    assert 0 < b.seconds_until_probe() <= SETTINGS.cooldown_s


def test_after_the_cooldown_exactly_one_probe_is_admitted_across_replicas(
    pair: tuple[RedisCircuitBreaker, RedisCircuitBreaker],
) -> None:
    a, b = pair
    _open(a)
    time.sleep(SETTINGS.cooldown_s + 0.1)
    assert a.state == "half_open" and b.state == "half_open"
    admitted: list[str] = []
    barrier = threading.Barrier(8)

    def attempt(i: int) -> None:
        breaker = pair[i % 2]
        barrier.wait()
        if breaker.acquire():
            admitted.append("a" if breaker is a else "b")

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(admitted) == 1
    prober, other = (a, b) if admitted[0] == "a" else (b, a)
    assert not other.acquire() and not prober.acquire()
    other.release_probe()  # the other replica does not hold the slot: nothing is freed
    assert not a.acquire() and not b.acquire()
    prober.record_success()
    assert a.state == "closed" and b.state == "closed"
    assert a.acquire() and b.acquire()


def test_a_failed_probe_opens_the_breaker_again_for_both(pair: tuple[RedisCircuitBreaker, RedisCircuitBreaker]) -> None:
    a, b = pair
    _open(a)
    time.sleep(SETTINGS.cooldown_s + 0.1)
    assert b.acquire()
    b.record_failure()
    assert a.state == "open" and not a.acquire()
    time.sleep(SETTINGS.cooldown_s + 0.1)
    assert a.acquire()  # a new cool-down, a new single probe
    assert not b.acquire()


def test_a_probe_without_a_verdict_frees_the_slot(pair: tuple[RedisCircuitBreaker, RedisCircuitBreaker]) -> None:
    a, b = pair
    _open(a)
    time.sleep(SETTINGS.cooldown_s + 0.1)
    assert a.acquire()
    a.release_probe()
    assert b.acquire()


def test_redis_away_falls_back_to_a_breaker_per_replica(own_redis_server: RedisServer) -> None:  # noqa: F811
    breaker = RedisCircuitBreaker(SETTINGS, name="m", url=own_redis_server.url)
    try:
        own_redis_server.stop()
        assert breaker.state == "closed"
        _open(breaker)
        assert breaker.state == "open" and not breaker.acquire()
    finally:
        breaker.close()


def test_the_registry_builds_shared_breakers_from_the_contract(
    redis_server: RedisServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    data = {
        "name": "x",
        "routing": {"shared_state": "redis"},
        "models": [
            {"name": f"up-{uuid.uuid4().hex[:8]}", "provider": "openai_compatible", "base_url": "http://127.0.0.1:9/v1"}
        ],
    }
    contract = Contract.model_validate(data)
    with pytest.raises(ConfigError, match="KEEL_REDIS_URL"):
        ModelRegistry(contract, project_root=tmp_path)
    registry = ModelRegistry(contract, project_root=tmp_path, redis_url=redis_server.url)
    name = contract.models[0].name
    other = RedisCircuitBreaker(contract.models[0].breaker, name=name, url=redis_server.url)
    try:
        for _ in range(contract.models[0].breaker.failures):
            other.record_failure()
        assert registry.health(name).breaker == "open"
    finally:
        other.close()
        asyncio.run(registry.close())
