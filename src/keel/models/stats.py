"""Recent latencies per model, for routing against the latency target."""

from __future__ import annotations

from collections import deque

__all__ = ["LatencyWindow"]


class LatencyWindow:
    """The last ``size`` call durations of one model."""

    def __init__(self, size: int = 200) -> None:
        self._values: deque[float] = deque(maxlen=size)

    def observe(self, milliseconds: float) -> None:
        """Record one call's duration."""
        self._values.append(milliseconds)

    def p95(self) -> float | None:
        """The 95th percentile, or ``None`` before 5 observations."""
        if len(self._values) < 5:
            return None
        ordered = sorted(self._values)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
