"""Does shadowing a candidate release change live responses or their latency?

Copies the sample project, ingests it, adds a candidate release served by a fast fake
upstream (``benchmarks/fake_upstream.py``), starts a real ``keel serve`` on 127.0.0.1,
and asks the sample questions one at a time in interleaved rounds: shadow off, shadow
on (every request copied to the candidate), off, on... The same questions in the same
order each round, caches off, so the rounds differ only by the shadow. Prints p50/p95
per mode with the difference, checks that every live answer is identical with and
without the shadow, and writes JSON.

    .venv/bin/python benchmarks/shadow_overhead.py [--rounds 6] [--requests 40] [--json PATH]

Bounded: rounds x requests requests; every process started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from ask_latency import asker_for, prepare
from common import bar, free_port, percentile

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent


def _wait(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not become ready")


def _contract(root: Path, upstream_port: int) -> None:
    path = root / "keel.yaml"
    contract = yaml.safe_load(path.read_text(encoding="utf-8"))
    contract["models"].append(
        {
            "name": "fake-large",
            "provider": "openai_compatible",
            "tier": "large",
            "base_url": f"http://127.0.0.1:{upstream_port}/v1",
            "upstream_model": "fake",
            "max_concurrency": 8,
            "timeouts": {"connect_s": 1, "first_token_s": 5, "stall_s": 5, "total_s": 10},
            "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        }
    )
    for model in contract["models"]:
        if model.get("provider") == "local":
            model["temperature"] = 0.0  # greedy decoding: the same question gets the same answer every round
    contract["routing"]["cache"] = {"exact": False, "semantic": False}
    contract["releases"] = [{"name": "candidate", "model": "fake-large", "prompt": "answer@2"}]
    path.write_text(yaml.safe_dump(contract, sort_keys=False), encoding="utf-8")


def _keel(root: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "keel", "--project", str(root), *args], check=True, capture_output=True)


def _round(
    client: httpx.Client, questions: list[tuple[str, str]], pause_s: float
) -> tuple[list[float], list[tuple[Any, ...]]]:
    latencies, answers = [], []
    for question, key in questions:
        time.sleep(pause_s)
        started = time.perf_counter()
        response = client.post("/v1/ask", json={"question": question}, headers={"Authorization": f"Bearer {key}"})
        latencies.append((time.perf_counter() - started) * 1000)
        body = response.json()
        answers.append(
            (
                response.status_code,
                body.get("mode"),
                body.get("answer"),
                tuple(c["id"] for c in body.get("citations", [])),
            )
        )
    return latencies, answers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="Rounds in all, alternating shadow off and on.")
    parser.add_argument("--requests", type=int, default=40, help="Requests per round.")
    parser.add_argument(
        "--pause-ms", type=float, default=50.0, help="Pause between requests (a service with gaps in its traffic)."
    )
    parser.add_argument("--json", type=Path, default=HERE / "results" / "shadow_overhead.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keel-shadow-bench-") as tmp:
        root, keys, cases = prepare(Path(tmp))
        principals = yaml.safe_load((root / "principals.yaml").read_text(encoding="utf-8"))["principals"]
        upstream_port, port = free_port(), free_port()
        _contract(root, upstream_port)
        questions = [(case["question"], keys[asker_for(case, principals)]) for case in cases[: args.requests]]
        upstream = subprocess.Popen(
            [sys.executable, str(HERE / "fake_upstream.py"), "--port", str(upstream_port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "keel", "--project", str(root), "serve", "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "KEEL_LOG_LEVEL": "warning"},
        )
        try:
            _wait(f"http://127.0.0.1:{upstream_port}/v1/models", upstream, "fake upstream")
            _wait(f"http://127.0.0.1:{port}/readyz", server, "keel serve")
            results: dict[str, list[float]] = {"off": [], "on": []}
            answers: dict[str, list[list[tuple[Any, ...]]]] = {"off": [], "on": []}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                _round(client, questions[:10], 0.0)  # warm-up: first-use costs out of the figures
                for i in range(args.rounds):
                    mode = "on" if i % 2 else "off"
                    if mode == "on":
                        _keel(root, "release", "shadow", "candidate", "--share", "1.0")
                    time.sleep(1.5)  # the server reads release state at most 1 s old
                    latencies, seen = _round(client, questions, args.pause_ms / 1000)
                    results[mode] += latencies
                    answers[mode].append(seen)
                    if mode == "on":
                        _keel(root, "release", "abort")
                    print(
                        f"  round {i + 1}/{args.rounds} (shadow {mode}): p50 {percentile(latencies, 50):.1f} ms",
                        flush=True,
                    )
                time.sleep(2)
        finally:
            for process in (server, upstream):
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        report = subprocess.run(
            [
                sys.executable,
                "-m",
                "keel",
                "--project",
                str(root),
                "release",
                "shadow-report",
                "--candidate",
                "candidate",
                "--json",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        shadow = json.loads(report.stdout)
    # The local model is not bit-for-bit reproducible between rounds even at temperature 0, so a
    # shadow-on answer counts as unchanged when it is one of the answers the same question got with
    # the shadow off.
    seen_off = [set(round_[i] for round_ in answers["off"]) for i in range(len(questions))]
    differing = {
        "off": sum(len(s) - 1 for s in seen_off),
        "on": sum(seen[i] not in seen_off[i] for seen in answers["on"] for i in range(len(questions))),
    }
    identical = differing["on"] == 0
    figures = {
        mode: {"requests": len(v), "p50_ms": percentile(v, 50), "p95_ms": percentile(v, 95), "mean_ms": sum(v) / len(v)}
        for mode, v in results.items()
    }
    # Paired by question: the same question's median latency with the shadow on minus off, robust to which
    # questions happen to reach the local model in a round.
    n = len(questions)
    per_mode = {m: [results[m][r * n : (r + 1) * n] for r in range(len(results[m]) // n)] for m in results}
    paired = [
        percentile([rnd[i] for rnd in per_mode["on"]], 50) - percentile([rnd[i] for rnd in per_mode["off"]], 50)
        for i in range(n)
    ]
    figures["paired"] = {"median_delta_ms": percentile(paired, 50), "p90_delta_ms": percentile(paired, 90)}
    scale = max(f["p95_ms"] for m, f in figures.items() if m != "paired")
    print(
        f"\nShadow overhead on live /v1/ask (sample corpus, one request at a time, {args.pause_ms:g} ms apart,"
        " caches off)\n"
    )
    print(f"{'shadow':8} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for mode, f in figures.items():
        if mode == "paired":
            continue
        print(f"{mode:8} {f['requests']:>8} {f['p50_ms']:>8.1f} {f['p95_ms']:>8.1f}  {bar(f['p95_ms'], scale)}")
    print(
        f"\ndifference (on - off): p50 {figures['on']['p50_ms'] - figures['off']['p50_ms']:+.1f} ms,"
        f" p95 {figures['on']['p95_ms'] - figures['off']['p95_ms']:+.1f} ms;"
        f" paired by question: median {figures['paired']['median_delta_ms']:+.1f} ms,"
        f" p90 {figures['paired']['p90_delta_ms']:+.1f} ms"
    )
    print(
        f"live responses unchanged by the shadow: {identical} ({differing['on']} shadow-on answers never seen with the"
        f" shadow off; {differing['off']} extra variants between shadow-off rounds alone)"
    )
    print(
        f"shadow pairs recorded: {shadow['pairs']} ({shadow['errors']} errors); mode agreement"
        f" {shadow['mode_agreement']}, answer similarity {shadow['similarity_mean']}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "figures": figures,
                "identical": identical,
                "shadow": {k: v for k, v in shadow.items() if k != "disagreements"},
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    print(f"\nwritten: {args.json}")
    if not identical:
        sys.exit(1)


if __name__ == "__main__":
    main()
