"""Durations as the contract writes them (``15m``, ``6h``, ``1d``, ``7d``, ``1h30m``) and ages as people read them."""

from __future__ import annotations

import re

__all__ = ["DURATION_UNITS", "format_age", "parse_duration"]

DURATION_UNITS: dict[str, int] = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
"""Seconds per unit, largest first."""

_WHOLE = re.compile(r"(?:\d+[wdhms])+")
_PART = re.compile(r"(\d+)([wdhms])")
_HINT = "write whole numbers with a unit (s, m, h, d, w), e.g. 15m, 6h, 1d, 7d or 1h30m"


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ``ValueError``, with a message for the operator, unless it is a duration above 0."""
    if not _WHOLE.fullmatch(text):
        raise ValueError(f"{text!r} is not a duration: {_HINT}")
    parts = _PART.findall(text)
    units = [unit for _, unit in parts]
    if len(set(units)) != len(units):
        raise ValueError(f"{text!r} names a unit twice: {_HINT}")
    seconds = sum(int(number) * DURATION_UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r} is not longer than zero")
    return float(seconds)


def format_age(seconds: float) -> str:
    """A short age for tables: ``45s``, ``12m``, ``3h``, ``2d 4h``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(seconds)}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 86400:
        hours, rest = divmod(int(seconds), 3600)
        minutes = rest // 60
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, rest = divmod(int(seconds), 86400)
    hours = rest // 3600
    return f"{days}d {hours}h" if hours else f"{days}d"
