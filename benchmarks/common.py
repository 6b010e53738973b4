"""Helpers shared by the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import socket

__all__ = ["bar", "free_port", "percentile"]


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
