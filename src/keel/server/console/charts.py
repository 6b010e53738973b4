"""Small server-rendered SVG charts: no script, no external asset, readable by screen readers.

Each chart is an ``<svg role="img">`` with an ``aria-label`` and a ``<title>`` saying
what it shows, and a text fallback in the page beside it (the numbers are always also
printed). Colours come from CSS classes so the console's stylesheet keeps contrast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["bar_chart", "line_chart", "meter", "waterfall"]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.1f}"
    return f"{value:.3g}"


def line_chart(
    series: Sequence[float | None],
    *,
    label: str,
    target: float | None = None,
    unit: str = "",
    width: int = 560,
    height: int = 140,
) -> str:
    """A line over time (oldest first); gaps for missing points; an optional dashed target line."""
    values = [v for v in series if v is not None and math.isfinite(v)]
    top = max([*values, target or 0.0]) * 1.1 or 1.0
    pad_l, pad_b, pad_t = 48, 18, 8
    inner_w, inner_h = width - pad_l - 8, height - pad_b - pad_t
    step = inner_w / max(1, len(series) - 1)

    def y(v: float) -> float:
        return pad_t + inner_h - v / top * inner_h

    paths: list[list[str]] = []
    current: list[str] = []
    for i, v in enumerate(series):
        if v is None or not math.isfinite(v):
            if current:
                paths.append(current)
            current = []
            continue
        current.append(f"{pad_l + i * step:.1f},{y(v):.1f}")
    if current:
        paths.append(current)
    lines = "".join(
        f'<polyline class="series" points="{" ".join(p)}"/>'
        if len(p) > 1
        else f'<circle class="dot" cx="{p[0].split(",")[0]}" cy="{p[0].split(",")[1]}" r="2.5"/>'
        for p in paths
    )
    target_line = ""
    if target is not None:
        ty = y(target)
        target_line = (
            f'<line class="target" x1="{pad_l}" x2="{width - 8}" y1="{ty:.1f}" y2="{ty:.1f}"/>'
            f'<text class="axis" x="{width - 10}" y="{ty - 3:.1f}" text-anchor="end">target {_fmt(target)}{unit}</text>'
        )
    summary = (
        f"{label}: latest {_fmt(values[-1])}{unit}, max {_fmt(max(values))}{unit}" if values else f"{label}: no data"
    )
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(summary)}">'
        f"<title>{escape(summary)}</title>"
        f'<line class="axis-line" x1="{pad_l}" x2="{pad_l}" y1="{pad_t}" y2="{pad_t + inner_h}"/>'
        f'<line class="axis-line" x1="{pad_l}" x2="{width - 8}" y1="{pad_t + inner_h}" y2="{pad_t + inner_h}"/>'
        f'<text class="axis" x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">{_fmt(top)}{unit}</text>'
        f'<text class="axis" x="{pad_l - 4}" y="{pad_t + inner_h}" text-anchor="end">0</text>'
        f"{target_line}{lines}</svg>"
    )


def bar_chart(items: Sequence[tuple[str, float]], *, label: str, unit: str = "", width: int = 560) -> str:
    """Horizontal bars, one per item, with its value written at the end."""
    row, pad_l = 22, 130
    height = max(row, row * len(items)) + 4
    top = max([v for _, v in items] + [1e-9])
    bars = []
    for i, (name, value) in enumerate(items):
        w = (width - pad_l - 70) * value / top
        yy = 2 + i * row
        bars.append(
            f'<text class="axis" x="{pad_l - 6}" y="{yy + 14}" text-anchor="end">{escape(name)}</text>'
            f'<rect class="bar" x="{pad_l}" y="{yy + 3}" width="{max(w, 1):.1f}" height="{row - 8}"/>'
            f'<text class="axis" x="{pad_l + w + 6:.1f}" y="{yy + 14}">{_fmt(value)}{unit}</text>'
        )
    summary = f"{label}: " + ", ".join(f"{n} {_fmt(v)}{unit}" for n, v in items) if items else f"{label}: no data"
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(summary)}">'
        f"<title>{escape(summary)}</title>{''.join(bars)}</svg>"
    )


def meter(value: float | None, *, maximum: float, label: str, danger_above: float | None = None) -> str:
    """A horizontal meter of ``value`` against ``maximum`` (e.g. budget used), red past ``danger_above``."""
    share = 0.0 if value is None or maximum <= 0 else max(0.0, min(1.0, value / maximum))
    over = danger_above is not None and value is not None and value > danger_above
    text = f"{label}: {'no data' if value is None else f'{share:.0%}'}"
    return (
        f'<svg class="meter" viewBox="0 0 200 14" role="img" aria-label="{escape(text)}"><title>{escape(text)}</title>'
        f'<rect class="meter-track" x="0" y="2" width="200" height="10" rx="3"/>'
        f'<rect class="{"meter-over" if over else "meter-fill"}" x="0" y="2" width="{200 * share:.1f}"'
        ' height="10" rx="3"/>'
        "</svg>"
    )


def waterfall(spans: Sequence[dict[str, object]], *, total_ms: float, width: int = 640) -> str:
    """One bar per stage at its start offset with its duration: where the request's time went."""
    row, pad_l = 22, 110
    visible = [s for s in spans if s.get("status") != "skipped"]
    height = max(row, row * len(visible)) + 4
    scale = (width - pad_l - 80) / max(total_ms, 1e-6)
    bars = []
    for i, span in enumerate(visible):
        start = float(span.get("start_ms") or 0.0)  # type: ignore[arg-type]
        duration = float(span.get("duration_ms") or 0.0)  # type: ignore[arg-type]
        yy = 2 + i * row
        css = "bar-error" if span.get("status") == "error" else "bar"
        name = escape(str(span.get("name")))
        bars.append(
            f'<text class="axis" x="{pad_l - 6}" y="{yy + 14}" text-anchor="end">{name}</text>'
            f'<rect class="{css}" x="{pad_l + start * scale:.1f}" y="{yy + 3}" width="{max(duration * scale, 1.5):.1f}"'
            f' height="{row - 8}"><title>{name}: {duration:.1f} ms from {start:.1f} ms</title></rect>'
            f'<text class="axis" x="{pad_l + (start + duration) * scale + 6:.1f}" y="{yy + 14}">'
            f"{duration:.1f} ms</text>"
        )
    summary = "Stage timings: " + ", ".join(
        f"{s.get('name')} {float(s.get('duration_ms') or 0):.1f} ms"  # type: ignore[arg-type]
        for s in visible
    )
    return (
        f'<svg class="chart waterfall" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(summary)}"'
        f' data-testid="waterfall"><title>{escape(summary)}</title>{"".join(bars)}</svg>'
    )
