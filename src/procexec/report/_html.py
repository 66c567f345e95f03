"""The report page: one HTML file with its CSS, its script and its data inline.

Everything is drawn here as SVG and tables, so the page shows it all with scripts off; the
script (``assets/report.js``) adds hover details, zoom and pan, and the time axis. Chart x
coordinates are in units of :data:`SPAN` across the wall time, so the bars of 10,000 jobs
stay small (integers), and the timeline and concurrency charts zoom together.
"""

from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

from procexec.report._records import OUTCOMES, JobRecord, signal_name
from procexec.report._stats import (
    Batch,
    concurrency,
    failure_groups,
    percentile,
    slowest,
)

#: The charts' x extent in SVG user units (the whole wall time).
SPAN = 1_000_000
#: Commands longer than this are shortened in the page (hover, tables).
MAX_COMMAND = 400
#: Failed commands listed per group (the rest are counted).
MAX_LISTED = 50
#: Slowest jobs listed.
SLOWEST = 10
#: Up to this many slots, every other row of the timeline is shaded (beyond, rows are
#: thinner than a pixel: the page's height is at most 640 px).
MAX_STRIPED = 1000
#: Runtime histogram bins.
BINS = 40
#: The least distance between the centres of two marker labels of the histogram (SVG units;
#: a label is about 18 wide).
LABEL_GAP = 26.0
#: The least height of a timeline row whose slot number is written beside it, in pixels.
LABELLED_ROW = 14
#: The concurrency chart's height in pixels (assets/report.css says it too).
CONCURRENCY_HEIGHT = 110
TITLES = {
    "ok": "ok",
    "retried": "failed, retried",
    "failed": "failed",
    "signal": "killed by a signal",
    "timeout": "timed out",
}


def render(
    batch: Batch,
    *,
    title: str,
    settings: Mapping[str, str],
    version: str,
) -> str:
    """The whole page for ``batch``."""
    esc = html.escape
    levels = concurrency(batch)
    top = max([batch.max_jobs, *levels]) * 1.1  # the concurrency chart's height
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())
    body = "\n".join(
        [
            f"<header><h1>{esc(title)}</h1>",
            f'<p class="sub">{len(batch.records)} jobs · report generated {esc(generated)} '
            f"by procexec {esc(version)}</p></header>",
            _totals(batch, settings),
            _timeline(batch, levels, top),
            _runtimes(batch),
            _slowest(batch),
            _failures(batch),
            '<div id="tip" hidden></div>',
            f'<script type="application/json" id="jobs-data">{_data(batch, top)}</script>',
            f"<script>{_asset('report.js')}</script>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="procexec {esc(version)}">\n'
        f"<title>{esc(title)}</title>\n<style>{_asset('report.css')}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def _asset(name: str) -> str:
    return resources.files("procexec.report").joinpath(f"assets/{name}").read_text("utf-8")


# --------------------------------------------------------------------------- totals
def seconds(value: float) -> str:
    """A duration for people: 12.3 ms, 4.567 s, 3 min 20 s, 2 h 5 min."""
    if value < 1:
        return f"{value * 1000:.{2 if value < 0.01 else 1}f} ms"
    if value < 120:
        return f"{value:.{3 if value < 10 else 1}f} s"
    if value < 7200:
        return f"{int(value // 60)} min {round(value % 60)} s"
    return f"{int(value // 3600)} h {round(value % 3600 / 60)} min"


def _card(key: str, label: str, value: float | int | None, text: str) -> str:
    raw = "" if value is None else repr(value)
    return (
        f'<div><dt>{html.escape(label)}</dt><dd data-key="{key}" data-value="{raw}">'
        f"{html.escape(text)}</dd></div>"
    )


def _totals(batch: Batch, settings: Mapping[str, str]) -> str:
    jobs = len(batch.records)
    ok = jobs - batch.failed
    slots = f"{batch.max_jobs}" + ("" if batch.max_jobs_given else " (inferred)")
    cards = [
        _card("jobs", "jobs", jobs, f"{jobs}"),
        _card("runs", "runs (with retries)", len(batch.runs), f"{len(batch.runs)}"),
        _card("ok", "succeeded", ok, f"{ok}"),
        _card("failed", "failed", batch.failed, f"{batch.failed}"),
        _card("wall", "wall time", batch.wall, seconds(batch.wall)),
        _card("busy", "job time (sum)", batch.busy, seconds(batch.busy)),
        _card("cpu", "CPU time", batch.cpu, "unknown" if batch.cpu is None else seconds(batch.cpu)),
        _card("rate", "jobs per second", batch.jobs_per_second, f"{batch.jobs_per_second:.3g}"),
        _card("max_jobs", "slots (max_jobs)", batch.max_jobs, slots),
        _card("peak", "peak concurrency", batch.peak, f"{batch.peak}"),
        _card("utilization", "utilization", batch.utilization, f"{batch.utilization:.1%}"),
    ]
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(v)}</code></td></tr>"
        for k, v in settings.items()
    )
    return (
        f'<section id="totals"><h2>Totals</h2><dl class="cards">{"".join(cards)}</dl>'
        f'<table id="settings">{rows}</table></section>'
    )


# ------------------------------------------------------------------------- timeline
def _x(batch: Batch, when: float) -> int:
    if batch.wall <= 0:
        return 0
    return round((when - batch.t0) / batch.wall * SPAN)


def _bars(batch: Batch) -> str:
    parts = []
    for run in batch.runs:
        record = run.record
        x = _x(batch, record.start)
        width = max(1, _x(batch, record.end) - x)  # a width of 0 would not be drawn at all
        y = (record.slot or 1) - 0.9
        parts.append(f'<rect class="{run.kind}" x="{x}" y="{y:.1f}" width="{width}" height=".8"/>')
    return "".join(parts)


def _legend(batch: Batch) -> str:
    items = "".join(
        f'<li data-outcome="{o}" data-count="{batch.counts[o]}"><span class="swatch {o}">'
        f"</span>{TITLES[o]} <b>{batch.counts[o]}</b></li>"
        for o in OUTCOMES
    )
    return f'<ul id="legend">{items}</ul>'


def _timeline(batch: Batch, levels: Sequence[float], top: float) -> str:
    rows = batch.max_jobs
    height = min(640, max(80, rows * 18))
    stripes = "".join(
        f'<rect class="lane" x="0" y="{row - 1}" width="{SPAN}" height="1"/>'
        for row in range(2, rows + 1 if rows <= MAX_STRIPED else 0, 2)
    )
    return f"""<section id="timeline-section"><h2>Timeline</h2>
<p class="note">One row per slot, one bar per job from its start to its end (a job run
again by <code>--retries</code> has a bar per attempt). Hover for details; wheel to zoom, drag
to pan, double-click to reset.</p>
<div class="toolbar">{_legend(batch)}<span><button id="zoom-in" type="button">zoom in</button>
<button id="zoom-out" type="button">zoom out</button>
<button id="zoom-reset" type="button">reset</button></span></div>
<div class="plot">{_slot_labels(rows, height)}
<svg id="timeline" viewBox="0 0 {SPAN} {rows}" preserveAspectRatio="none"
 style="height:{height}px" role="img" aria-label="jobs over time, one row per slot">
<g>{stripes}</g><g id="bars">{_bars(batch)}</g></svg>
<svg id="axis"></svg></div>
{_concurrency(batch, levels, top)}</section>"""


def _concurrency(batch: Batch, levels: Sequence[float], top: float) -> str:
    step = SPAN / len(levels)
    path = [f"M0 {top:.4g}"]
    for b, level in enumerate(levels):
        path.append(f"V{top - level:.4g}H{round((b + 1) * step)}")
    path.append(f"V{top:.4g}Z")
    limit = top - batch.max_jobs
    mean = batch.busy / batch.wall if batch.wall > 0 else 0.0
    return f"""<h3>Concurrency</h3>
<p class="note" id="utilization-note">Jobs running over time (mean per
{seconds(batch.wall / len(levels))}); the dashed line is max_jobs = {batch.max_jobs}.
On average {mean:.2f} of {batch.max_jobs} slots were busy: utilization
<b>{batch.utilization:.1%}</b>.</p>
<div class="plot">{_level_labels(batch.max_jobs, top)}
<svg id="concurrency" viewBox="0 0 {SPAN} {top:.4g}" preserveAspectRatio="none"
 role="img" aria-label="jobs running over time"><path class="area" d="{"".join(path)}"/>
<line class="limit" x1="0" x2="{SPAN}" y1="{limit:.4g}" y2="{limit:.4g}"/></svg></div>"""


def _y_labels(chart: str, height: int, labels: Sequence[tuple[str, float]]) -> str:
    """Labels left of a chart ``height`` pixels high: (text, where as a share of its
    height, from the top)."""
    spans = "".join(
        f'<span style="top:{share:.4%}">{html.escape(text)}</span>' for text, share in labels
    )
    return (
        f'<div class="yaxis" id="{chart}-yaxis" style="height:{height}px" aria-hidden="true">'
        f"{spans}</div>"
    )


def _slot_labels(rows: int, height: int) -> str:
    """Slot numbers beside the timeline's rows: every row's when they are tall enough, else
    every n-th row's (the first and last always)."""
    every = max(1, math.ceil(LABELLED_ROW * rows / height))
    slots = sorted({*range(1, rows + 1, every), rows}) if rows <= height else [1, rows]
    return _y_labels("timeline", height, [(str(slot), (slot - 0.5) / rows) for slot in slots])


def _level_labels(max_jobs: int, top: float) -> str:
    """The concurrency chart's scale: 0, half of max_jobs (from 4), and max_jobs (the
    dashed line)."""
    levels = {0, max_jobs}
    if max_jobs >= 4:
        levels.add(max_jobs // 2)
    labels = [(str(n), (top - n) / top) for n in sorted(levels)]
    return _y_labels("concurrency", CONCURRENCY_HEIGHT, labels)


# ------------------------------------------------------------------------- runtimes
def _runtimes(batch: Batch) -> str:
    ordered = sorted(r.duration for r in batch.records)
    marks = {
        "min": ordered[0] if ordered else 0.0,
        "p50": percentile(ordered, 50),
        "p95": percentile(ordered, 95),
        "max": ordered[-1] if ordered else 0.0,
        "mean": math.fsum(ordered) / len(ordered) if ordered else 0.0,
    }
    cards = "".join(_card(k, k, v, seconds(v)) for k, v in marks.items())
    return (
        f'<section id="runtimes"><h2>Runtimes</h2><dl class="cards">{cards}</dl>'
        f"{_histogram(ordered, marks)}</section>"
    )


def _histogram(ordered: Sequence[float], marks: Mapping[str, float]) -> str:
    if not ordered:
        return ""
    low, high = ordered[0], ordered[-1]
    logscale = low > 0 and high / low > 100
    scale: Callable[[float], float] = math.log10 if logscale else float
    s_low, s_high = scale(low), scale(high)
    span = (s_high - s_low) or 1.0
    counts = [0] * BINS
    for value in ordered:
        counts[min(BINS - 1, int((scale(value) - s_low) / span * BINS))] += 1
    left, right, top, bottom = 40.0, 790.0, 18.0, 130.0
    width = (right - left) / BINS
    unit = (bottom - top) / max(counts)
    bins = "".join(
        f'<rect class="bin" x="{left + i * width:.1f}" y="{bottom - unit * c:.1f}"'
        f' width="{width - 1:.1f}" height="{unit * c:.1f}"><title>{c} jobs</title></rect>'
        for i, c in enumerate(counts)
        if c
    )
    names = ("p50", "p95", "max")  # in increasing order
    xs = [left + (scale(marks[name]) - s_low) / span * (right - left) for name in names]
    lines = [
        f'<line class="mark {name}" x1="{x:.1f}" x2="{x:.1f}" y1="{top - 4}" y2="{bottom}"/>'
        f'<text class="mark-label {name}" x="{at:.1f}" y="{top - 6}" text-anchor="middle">'
        f"{name}</text>"
        for name, x, at in zip(names, xs, spread(xs, LABEL_GAP, right), strict=True)
    ]
    axis_note = "log scale" if logscale else "linear scale"
    return (
        f'<svg id="histogram" viewBox="0 0 800 160" role="img" aria-label="runtime histogram">'
        f'{bins}{"".join(lines)}<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" '
        f'stroke="#999"/><text x="{left}" y="148">{seconds(low)}</text>'
        f'<text x="{right}" y="148" text-anchor="end">{seconds(high)}</text>'
        f'<text x="400" y="148" text-anchor="middle">job runtime ({axis_note})</text></svg>'
    )


def spread(xs: Sequence[float], gap: float, end: float) -> list[float]:
    """Positions for labels meant at ``xs`` (increasing): each as near its own as can be
    with at least ``gap`` between two, none past ``end``."""
    placed: list[float] = []
    for x in xs:
        placed.append(max(x, placed[-1] + gap) if placed else x)
    limit = end
    for k in reversed(range(len(placed))):
        placed[k] = limit = min(placed[k], limit)
        limit -= gap
    return placed


# ------------------------------------------------------------------ slowest, failures
def _command(record: JobRecord) -> str:
    text = record.command
    if len(text) > MAX_COMMAND:
        text = text[:MAX_COMMAND] + "…"
    return f"<code>{html.escape(text)}</code>"


def _slowest(batch: Batch) -> str:
    rows = "".join(
        f'<tr><td class="num">{r.seq}</td><td class="num">{seconds(r.duration)}</td>'
        f"<td>{html.escape(r.status_text)}</td><td>{_command(r)}</td></tr>"
        for r in slowest(batch.records, SLOWEST)
    )
    return (
        '<section id="slowest"><h2>Slowest jobs</h2><table><thead><tr><th>seq</th>'
        f"<th>runtime</th><th>ended</th><th>command</th></tr></thead><tbody>{rows}</tbody>"
        "</table></section>"
    )


def _failures(batch: Batch) -> str:
    groups = failure_groups(batch.records)
    if not groups:
        return '<section id="failures"><h2>Failures</h2><p>None: every job succeeded.</p></section>'
    parts = []
    for kind, records in groups:
        listed = "".join(f"<li>#{r.seq}: {_command(r)}</li>" for r in records[:MAX_LISTED])
        more = len(records) - MAX_LISTED
        rest = f"<li>… and {more} more</li>" if more > 0 else ""
        parts.append(
            f'<details data-kind="{html.escape(kind)}" data-count="{len(records)}" open>'
            f"<summary><b>{html.escape(kind)}</b>: {len(records)} "
            f"job{'s' if len(records) != 1 else ''}</summary><ul>{listed}{rest}</ul></details>"
        )
    return f'<section id="failures"><h2>Failures</h2>{"".join(parts)}</section>'


# ----------------------------------------------------------------------------- data
def _data(batch: Batch, top: float) -> str:
    """The runs' details for the hover, one column entry per bar, compact, safe inside
    <script>.

    Start and slot are read from each bar, so they are not repeated here; signals and
    attempts are listed only where they are not 0 and 1; and the commands' common prefix
    and suffix (a template's fixed words) are stored once.
    """
    records = [run.record for run in batch.runs]
    commands = [r.command[:MAX_COMMAND] for r in records]
    prefix, middles, suffix = _factor(commands)
    columns: dict[str, Any] = {
        "span": SPAN,
        "wall": batch.wall,
        "rows": batch.max_jobs,
        "conc_height": float(f"{top:.4g}"),
        "seq": [r.seq for r in records],
        "cmd": {"prefix": prefix, "middle": middles, "suffix": suffix},
        "dur": [round(r.duration * 1e6) for r in records],
        "exit": [r.exit for r in records],
        "pid": [r.pid for r in records],
        "sig": {str(k): r.signal for k, r in enumerate(records) if r.signal},
        "att": {str(k): r.attempts for k, r in enumerate(records) if r.attempts != 1},
        "timed_out": [k for k, r in enumerate(records) if r.timed_out],
        "errors": {str(k): r.error for k, r in enumerate(records) if r.error is not None},
        "signames": {str(s): signal_name(s) for s in {r.signal for r in records} if s},
        "calls": [k for k, r in enumerate(records) if r.kind == "call"],
    }
    if any(r.cpu is not None for r in records):
        columns["cpu"] = [None if r.cpu is None else round(r.cpu * 1000) for r in records]
    if any(r.max_rss is not None for r in records):
        columns["rss"] = [None if r.max_rss is None else r.max_rss // 1024 for r in records]
    hosts = sorted({r.host for r in records})
    if len(hosts) > 1:
        number = {host: k for k, host in enumerate(hosts)}
        columns["hosts"] = hosts
        columns["host"] = [number[r.host] for r in records]
    text = json.dumps(columns, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _factor(texts: Sequence[str]) -> tuple[str, list[str], str]:
    """(prefix, middles, suffix) with ``prefix + middle + suffix`` giving each text back."""
    if len(texts) < 2:
        return "", list(texts), ""
    prefix = _common_prefix(texts)
    rest = [t[len(prefix) :] for t in texts]
    suffix = _common_prefix([t[::-1] for t in rest])[::-1]
    return prefix, [t[: len(t) - len(suffix)] for t in rest], suffix


def _common_prefix(texts: Sequence[str]) -> str:
    """The longest string every text starts with (that of the first and last in order)."""
    first, last = min(texts), max(texts)
    size = 0
    while size < len(first) and first[size] == last[size]:
        size += 1
    return first[:size]
