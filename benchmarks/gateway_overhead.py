"""What does a gateway add over calling the model server directly? Keel beside LiteLLM.

Starts the fast fake upstream (``benchmarks/fake_upstream.py``), ``keel serve`` with a
plain gateway app (``retrieval: false``) and the full request path on (API-key auth, a
rate limit too generous to trigger, routing, guards, trace, audit, metrics), and the
LiteLLM proxy against the same upstream (``openai/`` provider, no database, a master key
since it refuses to start without one, logging off; installed into
``benchmarks/.venv-litellm`` on first run). Then, per mode (JSON, SSE streaming) and
concurrency level, it loads the targets in turn (direct, Keel, LiteLLM), round-robin,
for a fixed time after a warm-up. CPU per request is the server's user + system time
(Keel's one process, LiteLLM's process tree) over the requests served.

Non-streaming load comes from ``wrk`` (Debian package, installed by ``scripts/ensure-wrk``
when missing) with a Lua script; streaming
load from a small asyncio client in this file (``client`` subcommand) that times the
first SSE data chunk. The load generator and the fake upstream are pinned to core 1,
the gateway under test to core 0 (``taskset``), so a 2-core machine does not starve it.
Prints throughput, p50/p95/p99 latency, latency added over direct at the same level,
errors and server CPU seconds per request, checks the targets, and writes JSON.

    .venv/bin/python benchmarks/gateway_overhead.py [--duration 6] [--warmup 2] [--levels 1,8,32,64]
        [--modes json,stream] [--no-litellm] [--baseline-src DIR] [--json PATH]

``--baseline-src DIR`` adds a fourth target, ``keel-base``: the same project served by
the package in ``DIR`` (a copy of ``src/`` from before a change), loaded in the same
rounds, so a change's effect is measured under the same conditions.

Bounded: levels x modes x targets cells of warm-up + duration seconds; every process
started is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from common import free_port, percentile, wait_ready

HERE = Path(__file__).resolve().parent
LITELLM_VENV = HERE / ".venv-litellm"
LITELLM_PIN = "litellm[proxy]==1.108.5"
GATEWAY_CORE, LOAD_CORE = "0", "1"
PROMPT = "What is the annual leave allowance for employees?"
TARGETS = ("direct", "keel", "litellm")

_WRK_LUA = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, '
    .. '"errors": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


# -- the streaming load client (runs in its own process, pinned to the load core) --------------------


async def _one_stream(
    host: str, port: int, request: bytes, deadline: float, out: list[tuple[float, float]], errors: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            first = 0.0
            body = b""
            if b"transfer-encoding: chunked" in head.lower():
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    data = await reader.readexactly(size + 2)
                    if size == 0:
                        break
                    if not first and b"data:" in data:
                        first = time.perf_counter()
                    body += data
            else:
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                first = time.perf_counter()
            done = time.perf_counter()
            if status != 200 or b"[DONE]" not in body:
                errors.append(status)
            else:
                out.append(((first - started) * 1000, (done - started) * 1000))
    finally:
        writer.close()


async def _stream_load(url: str, headers: dict[str, str], body: bytes, concurrency: int, duration: float) -> None:
    parsed = httpx.URL(url)
    lines = [f"POST {parsed.raw_path.decode()} HTTP/1.1", f"Host: {parsed.host}:{parsed.port}"]
    lines += [f"{k}: {v}" for k, v in {**headers, "Content-Type": "application/json"}.items()]
    lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    out: list[tuple[float, float]] = []
    errors: list[int] = []
    started = time.perf_counter()
    deadline = started + duration
    results = await asyncio.gather(
        *(_one_stream(parsed.host, parsed.port or 80, request, deadline, out, errors) for _ in range(concurrency)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    failed = sum(isinstance(r, BaseException) for r in results)
    ttft = [t for t, _ in out]
    total = [d for _, d in out]
    print(
        "CLIENTJSON "
        + json.dumps(
            {
                "requests": len(out) + len(errors),
                "duration_s": elapsed,
                "errors": len(errors) + failed,
                "p50_ms": percentile(total, 50),
                "p95_ms": percentile(total, 95),
                "p99_ms": percentile(total, 99),
                "ttft_p50_ms": percentile(ttft, 50),
                "ttft_p95_ms": percentile(ttft, 95),
                "ttft_p99_ms": percentile(ttft, 99),
            }
        )
    )


def client_main(argv: list[str]) -> None:
    """The ``client`` subcommand: stream load on one target, one JSON line out."""
    parser = argparse.ArgumentParser(prog="gateway_overhead.py client")
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--duration", type=float, required=True)
    args = parser.parse_args(argv)
    headers = dict(h.split(": ", 1) for h in args.header)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_stream_load(args.url, headers, args.body.encode(), args.concurrency, args.duration))


# -- set-up ------------------------------------------------------------------------------------------


def _pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv


def _probe(target: dict[str, Any]) -> None:
    body = {"model": target["model"], "messages": [{"role": "user", "content": PROMPT}]}
    response = httpx.post(target["url"], json=body, headers=target["headers"], timeout=60)
    if response.status_code != 200:
        raise RuntimeError(f"{target['url']} answered {response.status_code}: {response.text[:300]}")


def _keel_project(root: Path, upstream_port: int) -> str:
    """A gateway-only project: one upstream model, one app without retrieval, a generous limit; its API key."""
    keel = [sys.executable, "-m", "keel"]
    subprocess.run([*keel, "init", str(root)], check=True, capture_output=True)
    path = root / "keel.yaml"
    contract = yaml.safe_load(path.read_text(encoding="utf-8"))
    contract["models"] = [
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
            "retries": {"max_attempts": 2, "backoff_s": 0.2, "max_backoff_s": 1},
            "price": {"input_per_mtok": 0.5, "output_per_mtok": 1.5},
        }
    ]
    contract["apps"] = [{"name": "gateway", "description": "plain chat passthrough", "retrieval": False}]
    contract["routing"]["cache"] = {"exact": False, "semantic": False}
    contract["rate_limits"] = {"limits": [{"scope": "key", "name": "*", "requests_per_minute": 10_000_000}]}
    path.write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")
    create = ["keys", "create", "--principal", "bench", "--tenant", "acme", "--roles", "user"]
    created = subprocess.run(
        [*keel, "--project", str(root), *create],
        check=True,
        capture_output=True,
        text=True,
    )
    return created.stdout.strip().splitlines()[-1].strip()


def _litellm_python() -> Path:
    python = LITELLM_VENV / "bin" / "python"
    if not (LITELLM_VENV / "bin" / "litellm").exists():
        print(f"installing {LITELLM_PIN} into {LITELLM_VENV} (first run only)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(LITELLM_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", LITELLM_PIN], check=True)
    return python


def _litellm_config(path: Path, upstream_port: int, master_key: str) -> None:
    config = {
        "model_list": [
            {
                "model_name": "fake",
                "litellm_params": {
                    "model": "openai/fake",
                    "api_base": f"http://127.0.0.1:{upstream_port}/v1",
                    "api_key": "unused",
                },
            }
        ],
        "litellm_settings": {"set_verbose": False, "telemetry": False, "drop_params": True},
        "general_settings": {"master_key": master_key},  # no database: checked against this string
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _cpu_seconds(pid: int, tree: bool) -> float:
    """User + system CPU of ``pid`` (and, with ``tree``, its live descendants)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    wanted = {pid}
    if tree:
        grew = True
        while grew:
            more = {p for p, (ppid, _) in stats.items() if ppid in wanted} - wanted
            grew = bool(more)
            wanted |= more
    return sum(stats[p][1] for p in wanted if p in stats)


# -- one cell ----------------------------------------------------------------------------------------


def _wrk(url: str, headers: dict[str, str], body: str, concurrency: int, duration: float, lua: Path) -> dict[str, Any]:
    auth = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    lua.write_text(_WRK_LUA.format(body=body, auth=auth), encoding="utf-8")
    argv = ["wrk", "-t", "1", "-c", str(concurrency), "-d", f"{max(1, round(duration))}s", "--timeout", "10s"]
    argv += ["-s", str(lua), url]
    out = subprocess.run(_pinned(LOAD_CORE, argv), check=True, capture_output=True, text=True).stdout
    raw = json.loads(next(line for line in out.splitlines() if line.startswith("WRKJSON "))[8:])
    return {
        "requests": raw["requests"],
        "duration_s": raw["duration_us"] / 1e6,
        "errors": raw["errors"],
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
    }


def _client(url: str, headers: dict[str, str], body: str, concurrency: int, duration: float) -> dict[str, Any]:
    argv = [sys.executable, str(Path(__file__).resolve()), "client", "--url", url, "--body", body]
    argv += ["--concurrency", str(concurrency), "--duration", f"{duration:g}"]
    for k, v in headers.items():
        argv += ["--header", f"{k}: {v}"]
    out = subprocess.run(_pinned(LOAD_CORE, argv), check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(next(line for line in out.splitlines() if line.startswith("CLIENTJSON "))[11:])
    return result


def _cell(
    target: dict[str, Any], mode: str, concurrency: int, duration: float, warmup: float, lua: Path
) -> dict[str, Any]:
    body = json.dumps(
        {"model": target["model"], "messages": [{"role": "user", "content": PROMPT}], "stream": mode == "stream"}
    )

    def run(seconds: float) -> dict[str, Any]:
        if mode == "json":
            return _wrk(target["url"], target["headers"], body, concurrency, seconds, lua)
        return _client(target["url"], target["headers"], body, concurrency, seconds)

    run(warmup)
    pid = target["pid"]
    cpu_before = _cpu_seconds(pid, target["tree"]) if pid else 0.0
    result = run(duration)
    cpu = _cpu_seconds(pid, target["tree"]) - cpu_before if pid else None
    result["rps"] = result["requests"] / result["duration_s"]
    result["cpu_ms_per_request"] = cpu * 1000 / result["requests"] if cpu is not None and result["requests"] else None
    return result


# -- report ------------------------------------------------------------------------------------------


def _added(results: dict[str, Any]) -> None:
    for levels in results.values():
        for level in levels.values():
            base = level["direct"]
            for cell in level.values():
                for key in ("p50_ms", "p95_ms", "p99_ms", "ttft_p50_ms", "ttft_p95_ms"):
                    if key in cell:
                        cell["added_" + key] = cell[key] - base[key]


def _checks(results: dict[str, Any], have_litellm: bool) -> list[dict[str, Any]]:
    checks = []
    keel32 = results.get("json", {}).get("32", {}).get("keel")
    if keel32:
        checks.append(_check("Keel p50 added latency at c=32 (JSON)", keel32["added_p50_ms"], "<", 1.0, "ms"))
        checks.append(_check("Keel p95 added latency at c=32 (JSON)", keel32["added_p95_ms"], "<", 3.0, "ms"))
    if have_litellm and "json" in results:
        json_levels = results["json"]
        best = max(json_levels, key=lambda c: json_levels[c]["litellm"]["rps"])
        keel_best = max(json_levels, key=lambda c: json_levels[c]["keel"]["rps"])
        litellm_rps = max(json_levels[best]["litellm"]["rps"], 1e-9)
        # Throughput is what a server sustains at its best level: Keel's best against LiteLLM's best.
        ratio = json_levels[keel_best]["keel"]["rps"] / litellm_rps
        name = f"Keel's best throughput (c={keel_best}) / LiteLLM's best (c={best})"
        checks.append(_check(name, ratio, ">=", 5.0, "x"))
        same_level = json_levels[best]["keel"]["rps"] / litellm_rps
        checks.append(_info(f"Keel / LiteLLM throughput both at c={best} (for comparison)", same_level, "x"))
    if "stream" in results:
        level = "32" if "32" in results["stream"] else next(iter(results["stream"]))
        added = results["stream"][level]["keel"]["added_ttft_p50_ms"]
        checks.append(_check(f"Keel p50 added time to first token at c={level}", added, "<", 1.0, "ms"))
    return checks


def _info(name: str, value: float, unit: str) -> dict[str, Any]:
    """A figure printed beside the checks, with no target of its own."""
    return {"check": name, "value": value, "target": None, "unit": unit, "pass": None}


def _check(name: str, value: float, op: str, target: float, unit: str) -> dict[str, Any]:
    ok = value < target if op == "<" else value >= target
    return {"check": name, "value": value, "target": f"{op} {target:g} {unit}", "pass": ok}


def _print(results: dict[str, Any], checks: list[dict[str, Any]], pinning: str) -> None:
    for mode, levels in results.items():
        latency = "total" if mode == "json" else "time to first token"
        print(f"\n{'JSON' if mode == 'json' else 'SSE streaming'} ({latency} latency; {pinning})\n")
        print(
            f"{'c':>3} {'target':8} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
            f"{'+p50':>7} {'+p95':>7} {'+p99':>7} {'errors':>6} {'cpu ms/req':>10}"
        )
        for c, cells in levels.items():
            for name, r in cells.items():
                p = "ttft_" if mode == "stream" else ""
                added = [r.get(f"added_{p}p{q}_ms") for q in (50, 95)] + [r.get("added_p99_ms")]
                added_s = " ".join(f"{'':>7}" if name == "direct" or a is None else f"{a:+7.2f}" for a in added)
                cpu = r["cpu_ms_per_request"]
                p99 = r["p99_ms"] if mode == "json" else r["ttft_p99_ms"]
                print(
                    f"{c:>3} {name:8} {r['rps']:8.0f} {r[p + 'p50_ms']:7.2f} {r[p + 'p95_ms']:7.2f} "
                    f"{p99:7.2f} {added_s} {r['errors']:6d} {'-' if cpu is None else f'{cpu:.2f}':>10}"
                )
    print("\nTargets\n")
    for check in checks:
        if check["pass"] is None:
            print(f"  info  {check['check']}: {check['value']:.2f} {check['unit']}")
            continue
        mark = "PASS" if check["pass"] else "MISS"
        print(f"  {mark}  {check['check']}: {check['value']:.2f} (target {check['target']})")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "client":
        client_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=6, help="Measured seconds per cell.")
    parser.add_argument("--warmup", type=int, default=2, help="Unmeasured seconds before each cell.")
    parser.add_argument("--levels", default="1,8,32,64", help="Concurrency levels, comma-separated.")
    parser.add_argument("--modes", default="json,stream", help="json, stream or both.")
    parser.add_argument("--no-litellm", action="store_true", help="Leave LiteLLM out (no install).")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="Also load a second Keel run from this copy of src/ (target keel-base): before/after in one run.",
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "gateway_overhead.json")
    args = parser.parse_args()
    if not shutil.which("wrk") and "json" in args.modes:
        subprocess.run([str(HERE.parent / "scripts" / "ensure-wrk")], check=False)
        if not shutil.which("wrk"):
            sys.exit("wrk is needed for the JSON mode and could not be installed: apt-get install -y wrk")
    levels = [int(x) for x in args.levels.split(",")]
    modes = args.modes.split(",")
    targets = [t for t in TARGETS if not (t == "litellm" and args.no_litellm)]
    if args.baseline_src is not None:
        targets.insert(2, "keel-base")
    cells = len(levels) * len(modes) * len(targets)
    print(
        f"{cells} cells x ({args.warmup:g} s warm-up + {args.duration:g} s) = about "
        f"{cells * (args.warmup + args.duration + 0.5) / 60:.1f} min, plus start-up",
        flush=True,
    )
    litellm_python = _litellm_python() if "litellm" in targets else None
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="keel-gateway-bench-") as tmp:
        work = Path(tmp)
        upstream_port, keel_port, litellm_port, base_port = free_port(), free_port(), free_port(), free_port()
        key = _keel_project(work / "project", upstream_port)
        keel_argv = [sys.executable, "-m", "keel", "--project", str(work / "project"), "serve", "--port"]
        try:
            upstream = subprocess.Popen(
                _pinned(LOAD_CORE, [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(upstream_port)]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(upstream)
            keel = subprocess.Popen(
                _pinned(GATEWAY_CORE, [*keel_argv, str(keel_port)]),
                env={**os.environ, "KEEL_LOG_LEVEL": "warning"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            processes.append(keel)
            base: dict[str, dict[str, Any]] = {
                "direct": {
                    "url": f"http://127.0.0.1:{upstream_port}/v1/chat/completions",
                    "model": "fake",
                    "headers": {},
                    "pid": None,
                    "tree": False,
                },
                "keel": {
                    "url": f"http://127.0.0.1:{keel_port}/v1/chat/completions",
                    "model": "gateway",
                    "headers": {"Authorization": f"Bearer {key}"},
                    "pid": keel.pid,
                    "tree": False,
                },
            }
            if args.baseline_src is not None:
                keel_base = subprocess.Popen(
                    _pinned(GATEWAY_CORE, [*keel_argv, str(base_port)]),
                    env={**os.environ, "KEEL_LOG_LEVEL": "warning", "PYTHONPATH": str(args.baseline_src.resolve())},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                processes.append(keel_base)
                base["keel-base"] = {
                    **base["keel"],
                    "url": f"http://127.0.0.1:{base_port}/v1/chat/completions",
                    "pid": keel_base.pid,
                }
                wait_ready(f"http://127.0.0.1:{base_port}/healthz", keel_base, "keel serve (baseline)")
            if litellm_python is not None:
                master_key = "sk-" + secrets.token_hex(32)
                _litellm_config(work / "litellm.yaml", upstream_port, master_key)
                litellm = subprocess.Popen(
                    _pinned(
                        GATEWAY_CORE,
                        [
                            str(LITELLM_VENV / "bin" / "litellm"),
                            "--config",
                            str(work / "litellm.yaml"),
                            "--host",
                            "127.0.0.1",
                            "--port",
                            str(litellm_port),
                            "--num_workers",
                            "1",
                        ],
                    ),
                    env={
                        **os.environ,
                        "LITELLM_LOG": "ERROR",
                        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                        "LITELLM_MODE": "PRODUCTION",
                        "NO_DOCS": "True",
                    },
                    cwd=work,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                processes.append(litellm)
                base["litellm"] = {
                    "url": f"http://127.0.0.1:{litellm_port}/v1/chat/completions",
                    "model": "fake",
                    "headers": {"Authorization": f"Bearer {master_key}"},
                    "pid": litellm.pid,
                    "tree": True,
                }
            wait_ready(f"http://127.0.0.1:{upstream_port}/v1/models", upstream, "fake upstream")
            wait_ready(f"http://127.0.0.1:{keel_port}/healthz", keel, "keel serve")  # /readyz wants an index
            if litellm_python is not None:
                wait_ready(f"http://127.0.0.1:{litellm_port}/health/liveliness", litellm, "litellm proxy", 300)
            for name in targets:
                _probe(base[name])
            print(f"keel serve PID {keel.pid} (for a profiler); targets: {', '.join(targets)}", flush=True)
            results: dict[str, Any] = {}
            lua = work / "post.lua"
            for mode in modes:
                results[mode] = {}
                for c in levels:
                    results[mode][str(c)] = {}
                    for name in targets:
                        cell = _cell(base[name], mode, c, args.duration, args.warmup, lua)
                        results[mode][str(c)][name] = cell
                        print(f"  {mode:6} c={c:<3} {name:8} {cell['rps']:7.0f} req/s", flush=True)
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
    _added(results)
    checks = _checks(results, "litellm" in targets)
    pinning = (
        f"gateway on core {GATEWAY_CORE}, load generator and fake upstream on core {LOAD_CORE}"
        if shutil.which("taskset")
        else "no pinning (taskset missing)"
    )
    _print(results, checks, pinning)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "setup": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "pinning": pinning,
            "load": {"json": "wrk, 1 thread", "stream": "asyncio client (uvloop), 1 process"},
            "litellm": LITELLM_PIN if "litellm" in targets else None,
            "cpus": os.cpu_count(),
        },
        "results": results,
        "checks": checks,
    }
    args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
