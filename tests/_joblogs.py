"""Job logs in GNU parallel's format, written by the report tests with known contents."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


@dataclass(frozen=True)
class Row:
    """A job log row as a test writes it, and what the test expects of it."""

    seq: int
    start: float
    runtime: float
    exitval: int
    signum: int
    command: str

    def line(self) -> str:
        return (
            f"{self.seq}\t:\t{self.start:.3f}\t{self.runtime:10.3f}\t0\t0\t{self.exitval}\t"
            f"{self.signum}\t{self.command}\n"
        )

    @property
    def outcome(self) -> str:  # the test's own reading of GNU parallel's columns
        if self.exitval == -1:
            return "timeout"
        if self.signum:
            return "signal"
        return "failed" if self.exitval else "ok"


def write_log(path: Path, rows: Sequence[Row]) -> Path:
    path.write_text(HEADER + "".join(row.line() for row in rows))
    return path


def batch_rows(count: int, slots: int, seed: int = 7) -> list[Row]:
    """A plausible batch: ``slots`` slots kept busy, runtimes spread, some failures."""
    rnd = random.Random(seed)
    free = [1_800_000_000.0] * slots
    rows = []
    for seq in range(1, count + 1):
        slot = min(range(slots), key=free.__getitem__)
        start = round(free[slot] + rnd.choice([0.001, 0.002, 0.05]), 3)
        runtime = round(rnd.lognormvariate(-1, 1), 3)
        kind = rnd.random()
        exitval, signum = (
            ((-1, 15) if kind < 0.01 else (0, 9) if kind < 0.02 else (rnd.choice([1, 2]), 0))
            if kind < 0.06
            else (0, 0)
        )
        rows.append(Row(seq, start, runtime, exitval, signum, f"convert img-{seq:05d}.png"))
        free[slot] = start + runtime
    return rows
