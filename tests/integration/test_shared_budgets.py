"""Budget reservations in a real Redis: two replicas sharing one Redis and one ledger never overspend together."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from keel.contract import Budget, Contract
from keel.errors import ConfigError
from keel.ops.costs import CostLedger
from keel.routing.budget_redis import RedisBudgetState
from keel.routing.budgets import BudgetGuard, budget_state
from tests.support.database import database_at
from tests.support.redis_server import RedisServer, own_redis_server, redis_server  # noqa: F401  (fixtures)

pytestmark = pytest.mark.integration

BUDGET = Budget(scope="app", name="default", period="day", usd=1.0)


@pytest.fixture
def prefix() -> str:
    return f"keel:test:{uuid.uuid4().hex[:12]}:"


class Replicas:
    """Two guards, each with its own Redis client and its own connection to one ledger database."""

    def __init__(self, db_path: Path, url: str, prefix: str, *, ttl_s: float = 300.0) -> None:
        self.ledgers = [CostLedger(database_at(db_path)) for _ in range(2)]
        self.states = [RedisBudgetState(url=url, prefix=prefix, ttl_s=ttl_s) for _ in range(2)]
        self.guards = [
            BudgetGuard([BUDGET], ledger, state=s) for ledger, s in zip(self.ledgers, self.states, strict=True)
        ]

    def close(self) -> None:
        for state in self.states:
            state.close()


@pytest.fixture
def replicas(tmp_path: Path, redis_server: RedisServer, prefix: str) -> Iterator[Replicas]:  # noqa: F811
    made = Replicas(tmp_path / "k.db", redis_server.url, prefix)
    yield made
    made.close()


def _call(guard: BudgetGuard, ledger: CostLedger, amount: float, cost: float, admitted: list[float]) -> None:
    """One request as the generate stage makes it: reserve, call, settle, then record in the ledger."""
    reservation = guard.reserve(app="default", tenant="t", amount=amount)
    if reservation is None:
        return
    time.sleep(0.001)  # the model call
    guard.settle(reservation, spent_usd=cost)
    ledger.record(
        request_id=uuid.uuid4().hex,
        when=time.time(),
        tenant="t",
        app="default",
        model="m",
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=cost,
    )
    admitted.append(cost)


def test_concurrent_replicas_never_admit_more_than_the_budget(replicas: Replicas) -> None:
    # The bound guaranteed: zero overshoot. Every admitted call's worst case fitted beside the spend
    # settled and the reservations in flight of both replicas, so admitted spend <= budget (the
    # brief's allowance of one in-flight reservation per replica is not needed).
    amount, cost = 0.03, 0.03
    admitted: list[float] = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        guard, ledger = replicas.guards[i % 2], replicas.ledgers[i % 2]
        barrier.wait()
        for _ in range(12):
            _call(guard, ledger, amount, cost, admitted)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = replicas.ledgers[0].spent(scope="app", name="default", period="day", when=time.time())
    assert sum(admitted) == pytest.approx(spent)
    assert spent <= BUDGET.usd + 1e-9
    assert 0 < len(admitted) <= 33
    assert replicas.guards[1].status_of(BUDGET).reserved_usd == 0.0  # every reservation was settled
    # What concurrent refusals left unused is still there: calls one after another use it up, exactly.
    while len(admitted) < 40:
        before = len(admitted)
        _call(replicas.guards[len(admitted) % 2], replicas.ledgers[0], amount, cost, admitted)
        if len(admitted) == before:
            break
    assert len(admitted) == 33


def test_a_reservation_is_seen_by_the_other_replica(replicas: Replicas) -> None:
    first = replicas.guards[0].reserve(app="default", tenant="t", amount=0.8)
    assert first is not None
    assert replicas.guards[1].status_of(BUDGET).reserved_usd == pytest.approx(0.8)
    assert replicas.guards[1].reserve(app="default", tenant="t", amount=0.3) is None
    replicas.guards[0].release(first)
    assert replicas.guards[1].reserve(app="default", tenant="t", amount=0.3) is not None


def test_in_memory_replicas_overshoot_which_redis_prevents(tmp_path: Path) -> None:
    ledger = CostLedger(database_at(tmp_path / "m.db"))
    a, b = BudgetGuard([BUDGET], ledger), BudgetGuard([BUDGET], ledger)
    assert a.reserve(app="default", tenant="t", amount=0.8) is not None
    assert b.reserve(app="default", tenant="t", amount=0.8) is not None  # each sees only its own


def test_settled_spend_counts_before_the_ledger_has_it(replicas: Replicas) -> None:
    reservation = replicas.guards[0].reserve(app="default", tenant="t", amount=0.6)
    assert reservation is not None
    replicas.guards[0].settle(reservation, spent_usd=0.6)  # the ledger write comes just after
    assert replicas.guards[1].reserve(app="default", tenant="t", amount=0.6) is None
    assert replicas.guards[1].reserve(app="default", tenant="t", amount=0.4) is not None


def test_spend_already_in_the_ledger_seeds_the_shared_state(replicas: Replicas) -> None:
    replicas.ledgers[0].record(
        request_id="old",
        when=time.time(),
        tenant="t",
        app="default",
        model="m",
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=0.9,
    )
    assert replicas.guards[1].reserve(app="default", tenant="t", amount=0.2) is None
    assert replicas.guards[1].reserve(app="default", tenant="t", amount=0.1) is not None


def test_a_dead_replicas_reservation_expires(tmp_path: Path, redis_server: RedisServer, prefix: str) -> None:  # noqa: F811
    made = Replicas(tmp_path / "k.db", redis_server.url, prefix, ttl_s=1.0)
    try:
        assert made.guards[0].reserve(app="default", tenant="t", amount=0.9) is not None  # never settled
        made.states[0].close()  # the replica is gone
        assert made.guards[1].reserve(app="default", tenant="t", amount=0.5) is None
        time.sleep(1.2)
        assert made.guards[1].status_of(BUDGET).reserved_usd == 0.0
        assert made.guards[1].reserve(app="default", tenant="t", amount=0.5) is not None
    finally:
        made.close()


def test_redis_away_falls_back_to_reservations_per_replica(
    tmp_path: Path,
    own_redis_server: RedisServer,  # noqa: F811
    prefix: str,
) -> None:
    made = Replicas(tmp_path / "k.db", own_redis_server.url, prefix)
    try:
        own_redis_server.stop()
        guard = made.guards[0]
        held = guard.reserve(app="default", tenant="t", amount=0.7)
        assert held is not None
        assert guard.reserve(app="default", tenant="t", amount=0.7) is None  # still enforced in process
        guard.release(held)
        assert guard.status_of(BUDGET).reserved_usd == 0.0
    finally:
        made.close()


def test_redis_state_needs_a_url() -> None:
    cost = Contract.model_validate({"name": "x", "cost": {"shared_state": "redis"}}).cost
    with pytest.raises(ConfigError, match="KEEL_REDIS_URL"):
        budget_state(cost, redis_url=None)
