"""Three `keel serve` replicas sharing one real PostgreSQL (pgvector) and one real Redis, driven at once.

The guarantees a load balancer in front of several replicas relies on: a global rate
limit and a budget hold across replicas, the audit chain stays valid, every request has
exactly one trace and one audit record, and a replica killed with SIGKILL mid-load
fails only the requests it held and loses nothing that was committed.

The model is a fake OpenAI-compatible upstream on 127.0.0.1 (benchmarks/fake_upstream.py):
the replicas' own behaviour is under test, not a model's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from keel.audit.log import AuditLog
from keel.identity import KeyStore
from keel.store import PostgresDatabase
from tests.conftest import REPO
from tests.integration.conftest import RunningServer, free_port, start_server, stop_server
from tests.support.redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

REPLICAS = 3
RATE_PER_MINUTE = 30
# The fake upstream reports 15 completion tokens (and a fixed 100 prompt tokens, whatever
# the prompt: unpriced here, so that its usage stays within what Keel reserves up front).
# A call settles at 15 x $10/M and reserves its worst case, 32 x $10/M, before it starts.
PRICE = {"input_per_mtok": 0.0, "output_per_mtok": 10.0}
CALL_USD = 15 * 10.0e-6
RESERVE_USD = 32 * 10.0e-6
BUDGET_USD = 0.0015  # ten calls


@dataclass
class Cluster:
    servers: list[RunningServer]
    db: PostgresDatabase
    keys: dict[str, str]
    env: dict[str, str]
    root: Path


@dataclass
class Outcome:
    request_id: str
    replica: int
    status: int | None  # None: the connection failed
    body: dict[str, Any] = field(default_factory=dict)
    finished_at: float = 0.0


def _contract(upstream_port: int) -> dict[str, Any]:
    model = {
        "provider": "openai_compatible",
        "base_url": f"http://127.0.0.1:{upstream_port}/v1",
        "upstream_model": "fake",
        "trusted": True,
        "max_output_tokens": 32,
        "max_concurrency": 64,
        "max_queue": 128,
        "timeouts": {"connect_s": 2, "first_token_s": 10, "stall_s": 10, "total_s": 30},
        "price": PRICE,
    }
    return {
        "name": "replicas",
        "models": [{"name": "extractive", "provider": "extractive", "tier": "extractive"}, {"name": "fake", **model}],
        "apps": [
            {"name": "gateway", "retrieval": False, "pins": {"model": "fake"}},
            {"name": "limited", "retrieval": False, "pins": {"model": "fake"}},
            {"name": "budgeted", "retrieval": False, "pins": {"model": "fake"}},
        ],
        "routing": {"cache": {"exact": False, "semantic": False}},
        "rate_limits": {
            "backend": "redis",
            "limits": [{"scope": "app", "name": "limited", "requests_per_minute": RATE_PER_MINUTE}],
        },
        "cost": {
            "max_usd_per_request": 1.0,
            "budgets": [{"scope": "app", "name": "budgeted", "period": "day", "usd": BUDGET_USD}],
            "on_budget_exceeded": "cheaper_model",
            "shared_state": "redis",
        },
    }


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("upstream") / "upstream.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "benchmarks" / "fake_upstream.py"), "--port", str(port), "--delay-ms", "40"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_server: RedisServer,  # noqa: F811
    upstream: str,
) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("replicas") / "proj"
    (root / "docs").mkdir(parents=True)
    port = int(upstream.rsplit(":", 1)[1])
    (root / "keel.yaml").write_text(yaml.safe_dump(_contract(port), sort_keys=False), encoding="utf-8")
    schema = f"keel_replicas_{uuid.uuid4().hex[:8]}"
    env = {
        "KEEL_DATABASE_URL": postgres_url,
        "KEEL_DATABASE_SCHEMA": schema,
        "KEEL_REDIS_URL": redis_server.url,
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), "db", "upgrade", "--json"],
        env={**os.environ, **env},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    db = PostgresDatabase(postgres_url, schema=schema, auto_migrate=False)
    store = KeyStore(db)
    keys = {
        name: store.create(principal_id=name, tenant="acme", groups=[], roles=["user"]).secret
        for name in ("load", "limited", "budgeted")
    }
    servers = [start_server(root, root / f"replica{i}.log", extra_env=env) for i in range(REPLICAS)]
    yield Cluster(servers=servers, db=db, keys=keys, env=env, root=root)
    for server in servers:
        stop_server(server)
    db.close()


def _chat(cluster: Cluster, replica: int, app: str, key: str, client: httpx.Client) -> Outcome:
    request_id = f"rep{replica}-{uuid.uuid4().hex}"
    server = cluster.servers[replica]
    body = {"model": app, "messages": [{"role": "user", "content": "How many days of annual leave do I get?"}]}
    headers = {"Authorization": f"Bearer {key}", "X-Request-ID": request_id}
    try:
        response = client.post(server.url + "/v1/chat/completions", json=body, headers=headers, timeout=60)
    except httpx.HTTPError:
        return Outcome(request_id, replica, None, finished_at=time.monotonic())
    return Outcome(request_id, replica, response.status_code, response.json(), time.monotonic())


def _drive(cluster: Cluster, app: str, key: str, total: int, *, concurrency: int = 12) -> list[Outcome]:
    """``total`` requests, round-robin over the replicas, ``concurrency`` at a time."""
    with (
        httpx.Client(limits=httpx.Limits(max_connections=concurrency)) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):
        futures = [pool.submit(_chat, cluster, i % REPLICAS, app, key, client) for i in range(total)]
        return [f.result() for f in futures]


def _traces(db: PostgresDatabase, ids: list[str]) -> dict[str, int]:
    """How many trace rows each request id has."""
    counts = {i: 0 for i in ids}
    for row in db.connection().execute("SELECT request_id, COUNT(*) AS n FROM traces GROUP BY request_id"):
        if row["request_id"] in counts:
            counts[row["request_id"]] = int(row["n"])
    return counts


def _audited(db: PostgresDatabase, ids: list[str]) -> dict[str, int]:
    """How many ``request`` audit records each request id has."""
    counts = {i: 0 for i in ids}
    sql = "SELECT subject, COUNT(*) AS n FROM audit_log WHERE action = 'request' GROUP BY subject"
    for row in db.connection().execute(sql):
        if row["subject"] in counts:
            counts[row["subject"]] = int(row["n"])
    return counts


def _audit_chain_is_valid(db: PostgresDatabase) -> None:
    report = AuditLog(db, redact=lambda text: text).verify()
    assert report.ok, report


def test_a_global_rate_limit_holds_across_replicas(cluster: Cluster) -> None:
    started = time.monotonic()
    outcomes = _drive(cluster, "limited", cluster.keys["limited"], total=3 * RATE_PER_MINUTE)
    elapsed_min = (time.monotonic() - started) / 60
    admitted = [o for o in outcomes if o.status == 200]
    limited = [o for o in outcomes if o.status == 429]
    assert len(admitted) + len(limited) == len(outcomes), {o.status for o in outcomes}
    # The bucket holds RATE_PER_MINUTE and refills at that rate: one shared bucket, not one per replica.
    allowed = RATE_PER_MINUTE + int(RATE_PER_MINUTE * elapsed_min) + 1
    assert RATE_PER_MINUTE <= len(admitted) <= allowed, (len(admitted), allowed)
    assert {o.replica for o in admitted} == set(range(REPLICAS)), "every replica served its share"
    assert all(o.body["error"]["code"] == "rate_limited" for o in limited), limited[0].body


def test_a_budget_holds_across_replicas(cluster: Cluster) -> None:
    outcomes = _drive(cluster, "budgeted", cluster.keys["budgeted"], total=45)
    admitted = [o for o in outcomes if o.status == 200]
    # A plain chat app has no cheaper tier to fall to: a call that would break the budget is refused,
    # by the plan (the settled spend leaves no room) or at the reservation (other calls in flight).
    refused = [o for o in outcomes if o.status != 200]
    assert all(o.body["error"]["code"] == "model_unavailable" for o in refused), refused[0].body
    messages = {o.body["error"]["message"] for o in refused}
    assert all("budget" in m and "would be exceeded" in m for m in messages), messages
    assert admitted and refused, "the budget admitted some calls and refused the rest"
    spent = _spent(cluster.db, "budgeted", written=len(admitted) * CALL_USD)
    # Every replica reserves a call's worst case in Redis first, so together they never overspend.
    assert spent <= BUDGET_USD + 1e-12, spent
    assert spent == pytest.approx(len(admitted) * CALL_USD)
    # Once nothing is in flight, calls go on being admitted, one replica after another, until no worst case fits.
    more = 0
    with httpx.Client() as client:
        for n in range(20):
            if _chat(cluster, n % REPLICAS, "budgeted", cluster.keys["budgeted"], client).status != 200:
                break
            more += 1
    spent = _spent(cluster.db, "budgeted", written=(len(admitted) + more) * CALL_USD)
    assert BUDGET_USD - RESERVE_USD < spent <= BUDGET_USD + 1e-12, spent


def _spent(db: PostgresDatabase, app: str, *, written: float) -> float:
    """The app's spend in the ledger, once ``written`` dollars have arrived (or 10 s have passed).

    Replicas write spend behind the response, in batches, so the last rows land a few
    milliseconds after the last answer.
    """
    deadline = time.monotonic() + 10
    while True:
        row = (
            db.connection()
            .execute("SELECT COALESCE(SUM(cost_usd), 0) AS usd FROM spend WHERE app = ?", (app,))
            .fetchone()
        )
        usd = float(row["usd"])
        if usd >= written - 1e-12 or time.monotonic() > deadline:
            return usd
        time.sleep(0.05)


def test_every_request_has_one_trace_and_one_audit_record_and_the_chain_stays_valid(cluster: Cluster) -> None:
    outcomes = _drive(cluster, "gateway", cluster.keys["load"], total=150, concurrency=16)
    assert all(o.status == 200 for o in outcomes), [o.body for o in outcomes if o.status != 200][:2]
    ids = [o.request_id for o in outcomes]
    assert len(set(ids)) == len(ids)
    deadline = time.monotonic() + 10  # traces and audit records are committed in batches, off the response path
    while time.monotonic() < deadline:
        traces, audited = _traces(cluster.db, ids), _audited(cluster.db, ids)
        if set(traces.values()) == {1} and set(audited.values()) == {1}:
            break
        time.sleep(0.2)
    assert set(traces.values()) == {1}, {k: v for k, v in traces.items() if v != 1}
    assert set(audited.values()) == {1}, {k: v for k, v in audited.items() if v != 1}
    _audit_chain_is_valid(cluster.db)


def test_a_replica_killed_mid_load_fails_only_its_own_requests_and_loses_nothing_committed(cluster: Cluster) -> None:
    victim = REPLICAS - 1
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    stop = threading.Event()
    killed_at: list[float] = []

    def worker(slot: int) -> None:
        with httpx.Client() as client:
            n = 0
            while not stop.is_set():
                replica = (slot + n) % REPLICAS
                n += 1
                if killed_at and replica == victim:
                    continue  # the load balancer has taken the dead replica out
                outcome = _chat(cluster, replica, "gateway", cluster.keys["load"], client)
                with lock:
                    outcomes.append(outcome)

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(12)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    committed_before = _committed(cluster.db)
    cluster.servers[victim].process.send_signal(signal.SIGKILL)
    cluster.servers[victim].process.wait(timeout=10)
    killed_at.append(time.monotonic())
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    failed = [o for o in outcomes if o.status != 200]
    assert failed, "the kill landed mid-load"
    assert {o.replica for o in failed} == {victim}, [(o.replica, o.status, o.body) for o in failed[:3]]
    assert all(o.status is None for o in failed), "the dead replica's requests failed at the connection"
    survivors = [o for o in outcomes if o.status == 200 and o.replica != victim]
    assert any(o.finished_at > killed_at[0] for o in survivors), "the other replicas went on serving"

    committed_after = _committed(cluster.db)
    assert committed_before["audit"] <= committed_after["audit"]
    assert committed_before["traces"] <= committed_after["traces"], "nothing committed before the kill is gone"
    ids = [o.request_id for o in outcomes if o.status == 200]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        traces, audited = _traces(cluster.db, ids), _audited(cluster.db, ids)
        if all(traces[o.request_id] == audited[o.request_id] == 1 for o in survivors):
            break
        time.sleep(0.2)
    assert all(traces[o.request_id] == 1 for o in survivors)
    assert all(audited[o.request_id] == 1 for o in survivors)
    assert max(traces.values()) == 1 and max(audited.values()) == 1, "no record written twice"
    # The victim's answers are in the database unless it died within its last batch commit.
    answered_by_victim = [o for o in outcomes if o.status == 200 and o.replica == victim]
    unrecorded = [o for o in answered_by_victim if traces[o.request_id] == 0 or audited[o.request_id] == 0]
    assert all(killed_at[0] - o.finished_at < 1.0 for o in unrecorded), len(unrecorded)
    _audit_chain_is_valid(cluster.db)


def _committed(db: PostgresDatabase) -> dict[str, int]:
    conn = db.connection()
    return {
        "traces": int(conn.execute("SELECT COUNT(*) AS n FROM traces").fetchone()["n"]),
        "audit": int(conn.execute("SELECT COUNT(*) AS n FROM audit_log").fetchone()["n"]),
    }
