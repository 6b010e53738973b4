"""Helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx

__all__ = ["bar", "free_port", "percentile", "wait_ready"]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def bar(value: float, scale: float = 1.0, width: int = 30) -> str:
    """A horizontal bar of ``value`` against ``scale``."""
    if scale <= 0:
        return ""
    n = value / scale * width
    full = int(n)
    return "█" * full + ("▌" if n - full >= 0.5 else "")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], what: str, timeout_s: float = 180) -> None:
    """Poll ``url`` until it answers 200; fail if ``process`` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not become ready")
