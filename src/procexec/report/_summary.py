"""The few lines ``procexec --summary`` prints at the end of a run (hyperfine-like)."""

from __future__ import annotations

from procexec.report._html import seconds
from procexec.report._records import JobRecord
from procexec.report._stats import Batch, failure_groups, percentile, slowest

#: Commands longer than this are shortened in the summary.
WIDTH = 60
SLOWEST = 3


def summary_lines(batch: Batch) -> list[str]:
    """The summary of ``batch``: counts and rates, runtimes, the slowest three jobs and
    the most common failure."""
    jobs = len(batch.records)
    if not jobs:
        return ["procexec: no job ran"]
    ok = jobs - batch.failed
    ordered = sorted(r.duration for r in batch.records)
    lines = [
        f"procexec: {jobs} job{'s' if jobs != 1 else ''} in {seconds(batch.wall)} "
        f"({batch.jobs_per_second:.3g}/s): {ok} ok, {batch.failed} failed; "
        f"{batch.max_jobs} slots, {batch.utilization:.1%} busy",
        f"  runtime  p50 {seconds(percentile(ordered, 50))}   "
        f"p95 {seconds(percentile(ordered, 95))}   max {seconds(ordered[-1])}",
    ]
    for k, record in enumerate(slowest(batch.records, SLOWEST)):
        label = "  slowest " if k == 0 else " " * 10
        lines.append(f"{label} {seconds(record.duration):>10}  #{record.seq}  {_short(record)}")
    groups = failure_groups(batch.records)
    if groups:
        kind, records = groups[0]
        lines.append(
            f"  most common failure: {kind} ({len(records)} job{'s' if len(records) != 1 else ''}"
            f"), e.g. #{records[0].seq}  {_short(records[0])}"
        )
    return lines


def _short(record: JobRecord) -> str:
    text = " ".join(record.command.split())
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"
