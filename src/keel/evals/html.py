"""A self-contained HTML report of a run: gate, metrics per tag (bars), latency histogram, cases.

Everything is inline (CSS and SVG); the file opens offline in any browser.
"""

from __future__ import annotations

import html
import itertools
import math
from typing import Any

from keel.evals.report import RunReport

__all__ = ["render_html"]

TAG_METRICS = [
    ("retrieval.recall@k", "recall@k"),
    ("generation.correctness", "correct"),
    ("generation.citation_recall", "cited"),
    ("generation.mode_accuracy", "mode"),
    ("cases.pass_rate", "passed"),
]
COLORS = ["#2b6cb0", "#2f855a", "#b7791f", "#6b46c1", "#c53030"]

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1a202c;background:#f7fafc}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.meta{color:#4a5568} .badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.ok{background:#2f855a} .bad{background:#c53030}
table{border-collapse:collapse;width:100%;background:#fff} th,td{border-bottom:1px solid #e2e8f0;padding:6px 8px;
text-align:left;vertical-align:top} th{background:#edf2f7;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums} tr.fail td{background:#fff5f5}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:12px;overflow-x:auto}
.legend span{display:inline-block;margin-right:14px} .legend i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:-1px}
code{font-size:12px}
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return html.escape(str(value))


def _tag_chart(report: RunReport) -> str:
    tags = list(report.by_tag)
    bar_w, gap, group_gap = 14, 2, 26
    group_w = len(TAG_METRICS) * (bar_w + gap) + group_gap
    height, top, bottom, left = 240, 14, 80, 90
    width = left + max(1, len(tags)) * group_w + 10
    parts = [
        f'<svg role="img" aria-label="Metrics by tag" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    plot_h = height - top - bottom
    for tick in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">{tick:.1f}</text>')
    for i, tag in enumerate(tags):
        x0 = left + i * group_w + 6
        for j, (metric, label) in enumerate(TAG_METRICS):
            value = report.by_tag[tag].get(metric)
            if value is None:
                continue
            h = plot_h * max(0.0, min(1.0, value))
            x = x0 + j * (bar_w + gap)
            parts.append(
                f'<rect x="{x}" y="{top + plot_h - h:.1f}" width="{bar_w}" height="{h:.1f}" fill="{COLORS[j]}">'
                f"<title>{html.escape(tag)} {label}: {value:.3f}</title></rect>"
            )
        cx = x0 + len(TAG_METRICS) * (bar_w + gap) / 2
        parts.append(
            f'<text x="{cx:.1f}" y="{height - bottom + 14}" font-size="11" text-anchor="end" '
            f'transform="rotate(-35 {cx:.1f} {height - bottom + 14})">{html.escape(tag)}</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{COLORS[j]}"></i>{label}</span>' for j, (_, label) in enumerate(TAG_METRICS)
    )
    return f'<div class="legend">{legend}</div>' + "".join(parts)


def _latency_chart(report: RunReport) -> str:
    values = [c["latency_ms"] for c in report.cases]
    if not values:
        return "<p>No cases.</p>"
    edges = [0, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, math.inf]
    counts = [sum(1 for v in values if lo <= v < hi) for lo, hi in itertools.pairwise(edges)]
    labels = [f"<{hi:g}" if hi != math.inf else f"≥{lo:g}" for lo, hi in itertools.pairwise(edges)]
    width, height, left, bottom, top = 720, 210, 40, 40, 20
    bar_w = (width - left - 10) / len(counts)
    peak = max(counts) or 1
    plot_h = height - top - bottom
    parts = [
        f'<svg role="img" aria-label="Latency distribution in milliseconds" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (count, label) in enumerate(zip(counts, labels, strict=True)):
        h = plot_h * count / peak
        x = left + i * bar_w
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" fill="#2b6cb0">'
            f"<title>{label} ms: {count} cases</title></rect>"
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 14}" font-size="11" '
            f'text-anchor="middle">{html.escape(label)}</text>'
        )
        if count:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h - h - 3:.1f}" font-size="10" '
                f'text-anchor="middle">{count}</text>'
            )
    parts.append(f'<text x="{left}" y="{height - 6}" font-size="11">latency (ms)</text></svg>')
    return "".join(parts)


def render_html(report: RunReport, *, trace_url: str | None = None) -> str:
    """The report as one HTML document; ``trace_url`` (e.g. a server's base URL) links each case's trace."""
    status = (
        '<span class="badge ok">gate passed</span>'
        if report.gate_passed
        else '<span class="badge bad">gate failed</span>'
    )
    thresholds = "".join(
        f'<tr class="{"" if t["ok"] else "fail"}"><td><code>{html.escape(t["metric"])}</code></td>'
        f'<td class="num">{_fmt(t["value"])}</td><td class="num">{_fmt(t["min"])}</td>'
        f'<td class="num">{_fmt(t["max"])}</td><td>{"ok" if t["ok"] else "BREACHED"}</td></tr>'
        for t in report.thresholds
    )
    metrics = "".join(
        f"<tr><td><code>{html.escape(name)}</code></td><td class='num'>{_fmt(value)}</td></tr>"
        for name, value in report.aggregate.items()
    )
    stages = (
        ", ".join(f"{html.escape(s)}: {n}" for s, n in sorted(report.stages.items(), key=lambda kv: -kv[1])) or "none"
    )
    rows = []
    for c in sorted(report.cases, key=lambda c: (c["passed"], c["id"])):
        link = html.escape(c["request_id"])
        if trace_url:
            link = f'<a href="{html.escape(trace_url.rstrip("/"))}/v1/traces/{link}">{link}</a>'
        rows.append(
            f'<tr class="{"" if c["passed"] else "fail"}"><td><code>{html.escape(c["id"])}</code></td>'
            f"<td>{html.escape(', '.join(c['tags']))}</td><td>{'pass' if c['passed'] else 'FAIL'}</td>"
            f"<td>{html.escape(c['stage'] or '')}</td><td>{html.escape('; '.join(c['failures']))}</td>"
            f'<td>{html.escape(str(c["mode"]))}</td><td class="num">{c["latency_ms"]:.0f}</td><td>{link}</td></tr>'
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Keel evaluation: {html.escape(report.suite)} ({html.escape(report.run_id)})</title><style>{CSS}</style></head>
<body><main>
<h1>Evaluation of {html.escape(report.suite)} {status}</h1>
<p class="meta">Run {html.escape(report.run_id)} against {html.escape(report.target)}; {len(report.cases)} cases in
{report.seconds:.0f} s; k = {report.k}. Failing cases by stage: {stages}.</p>
<h2>Gate</h2><div class="card"><table><tr><th>metric</th><th>value</th><th>min</th><th>max</th><th></th></tr>
{thresholds}</table></div>
<h2>Metrics by tag</h2><div class="card">{_tag_chart(report)}</div>
<h2>Latency</h2><div class="card">{_latency_chart(report)}</div>
<h2>All metrics</h2><div class="card"><table><tr><th>metric</th><th>value</th></tr>{metrics}</table></div>
<h2>Cases</h2><div class="card"><table><tr><th>case</th><th>tags</th><th>result</th><th>stage</th><th>why</th>
<th>mode</th><th>ms</th><th>trace</th></tr>{"".join(rows)}</table></div>
</main></body></html>
"""
