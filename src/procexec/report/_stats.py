"""The figures of a batch: slots, wall and busy time, utilization, concurrency, percentiles,
the slowest jobs and the failures grouped by how they ended.

Definitions (docs/report.md repeats them):

- wall time: from the first job's start to the last job's end;
- busy time: the sum of the jobs' durations;
- utilization: busy time / (max_jobs x wall time), the share of slot-time used;
- percentiles: linear interpolation between the closest ranks (numpy's default).
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

from procexec.report._records import OUTCOMES, JobRecord, signal_name

#: Two jobs closer than this (seconds) do not overlap when slots are inferred from a job
#: log: its start times and runtimes are rounded to the millisecond.
SLOT_TOLERANCE = 0.001
#: The concurrency chart's resolution (buckets across the wall time).
BUCKETS = 1000


class Run(NamedTuple):
    """One bar of the timeline: a run of a job (its record) and how it is coloured."""

    record: JobRecord  # with a slot
    kind: str  # one of OUTCOMES: "retried" for an attempt run again, else its outcome


@dataclass(frozen=True)
class Batch:
    """A batch's jobs and runs, and its figures.

    Job figures (counts of failures, runtimes, the slowest) are about each job's last run,
    as GNU parallel's job log records it; time figures (wall, busy, utilization,
    concurrency) count every run, retried attempts included.
    """

    records: list[JobRecord]  # the jobs (their last run), in order
    runs: list[Run]  # every run, a job's attempts in order
    max_jobs: int
    max_jobs_given: bool  # False: inferred from the highest slot used
    t0: float
    wall: float
    busy: float
    cpu: float | None
    peak: int
    counts: dict[str, int]  # runs of each kind

    @property
    def utilization(self) -> float:
        """Busy time / (max_jobs x wall time); 0 for an empty batch."""
        if not self.runs or self.wall <= 0:
            return 0.0
        return self.busy / (self.max_jobs * self.wall)

    @property
    def failed(self) -> int:
        """Jobs whose last run did not succeed (failed, killed by a signal, timed out)."""
        return sum(r.outcome != "ok" for r in self.records)

    @property
    def jobs_per_second(self) -> float:
        """Jobs over wall time (0 when the wall time is 0)."""
        return len(self.records) / self.wall if self.wall > 0 else 0.0


def analyse(records: Sequence[JobRecord], max_jobs: int | None = None) -> Batch:
    """The figures of ``records``; slots are inferred when any run lacks one, and
    ``max_jobs`` (None: the highest slot used) is at least that highest slot."""
    runs = _with_slots([_run(job, run) for job in records for run in job.runs])
    spans = [run.record for run in runs]
    highest = max((r.slot or 1 for r in spans), default=1)
    t0 = min((r.start for r in spans), default=0.0)
    end = max((r.end for r in spans), default=t0)
    cpus = [r.cpu for r in spans if r.cpu is not None]
    counts = Counter(run.kind for run in runs)
    return Batch(
        records=list(records),
        runs=runs,
        max_jobs=max(highest, max_jobs or 0),
        max_jobs_given=max_jobs is not None,
        t0=t0,
        wall=max(0.0, end - t0),
        busy=math.fsum(r.duration for r in spans),
        cpu=math.fsum(cpus) if cpus else None,
        peak=peak_concurrency(spans),
        counts={kind: counts.get(kind, 0) for kind in OUTCOMES},
    )


def _run(job: JobRecord, run: JobRecord) -> Run:
    return Run(run, run.outcome if run is job else "retried")


def _with_slots(runs: list[Run]) -> list[Run]:
    if all(run.record.slot is not None and run.record.slot >= 1 for run in runs):
        return runs
    slots = assign_slots([(run.record.start, run.record.end) for run in runs])
    return [
        Run(replace(run.record, slot=slot), run.kind) for run, slot in zip(runs, slots, strict=True)
    ]


def assign_slots(spans: Sequence[tuple[float, float]]) -> list[int]:
    """A slot for each (start, end): the lowest one free at its start, in start order
    (as a job runner hands them out). Ends within SLOT_TOLERANCE of a start free the slot."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    slots = [0] * len(spans)
    busy: list[tuple[float, int]] = []  # (end, slot)
    free: list[int] = []
    for i in order:
        start, end = spans[i]
        while busy and busy[0][0] <= start + SLOT_TOLERANCE:
            heapq.heappush(free, heapq.heappop(busy)[1])
        slot = heapq.heappop(free) if free else len(busy) + 1
        slots[i] = slot
        heapq.heappush(busy, (max(end, start), slot))
    return slots


def peak_concurrency(records: Sequence[JobRecord]) -> int:
    """The most jobs running at one instant. A job runs from its start up to (not at) its
    end, so one ending as another starts is not both; a job of no duration runs at its
    start only, alongside whatever runs then (but not alongside another such job)."""
    starts = sorted(r.start for r in records if r.end > r.start)
    ends = sorted(r.end for r in records if r.end > r.start)
    peak = done = 0
    for started, when in enumerate(starts, 1):
        while ends[done] <= when:  # a job ends before any job starts at its end
            done += 1
        peak = max(peak, started - done)
    for when in (r.start for r in records if r.end <= r.start):
        running = bisect.bisect_left(starts, when) - bisect.bisect_right(ends, when)
        peak = max(peak, running + 1)
    return peak


def concurrency(batch: Batch, buckets: int = BUCKETS) -> list[float]:
    """The mean number of jobs running in each of ``buckets`` equal parts of the wall time."""
    width = batch.wall / buckets
    if width <= 0 or not batch.runs:  # 0 too for a wall time too small to divide
        return [0.0] * buckets
    partial = [0.0] * buckets
    whole = [0] * (buckets + 1)  # difference array: buckets a job covers entirely
    for record in (run.record for run in batch.runs):
        a = (record.start - batch.t0) / width
        z = max(a, (record.end - batch.t0) / width)
        first, last = min(int(a), buckets - 1), min(int(z), buckets - 1)
        if first == last:
            partial[first] += z - a
            continue
        partial[first] += first + 1 - a
        partial[last] += z - last
        whole[first + 1] += 1
        whole[last] -= 1
    levels: list[float] = []
    covered = 0
    for b in range(buckets):
        covered += whole[b]
        levels.append(covered + partial[b])
    return levels


def percentile(ordered: Sequence[float], percent: float) -> float:
    """The ``percent`` percentile of sorted values, by linear interpolation; 0 if empty."""
    if not ordered:
        return 0.0
    rank = (len(ordered) - 1) * percent / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def slowest(records: Sequence[JobRecord], count: int) -> list[JobRecord]:
    """The ``count`` longest jobs, longest first (ties: lower seq first)."""
    return heapq.nsmallest(count, records, key=lambda r: (-r.duration, r.seq))


def failure_kind(record: JobRecord) -> str:
    """How a failed job ended, as the failures table groups it."""
    if record.timed_out:
        return "timed out"
    if record.signal:
        return f"killed by {signal_name(record.signal)}"
    if record.error is not None:
        return record.error.split(":", 1)[0]
    return f"exit {record.exit}"


def failure_groups(records: Sequence[JobRecord]) -> list[tuple[str, list[JobRecord]]]:
    """Failed jobs grouped by :func:`failure_kind`, the largest group first."""
    groups: dict[str, list[JobRecord]] = {}
    for record in records:
        if record.outcome in ("failed", "signal", "timeout"):
            groups.setdefault(failure_kind(record), []).append(record)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
