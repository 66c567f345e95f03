"""Progress on stderr: ``--bar`` (a tqdm bar with ETA), ``--eta`` and ``--progress`` (GNU
parallel's status line: jobs running, completed, and the average time per job)."""

from __future__ import annotations

import sys
import time
from typing import Any

_HEADER = (
    "\nComputers / CPU cores / Max jobs to run\n1:local / {cpus} / {jobs}\n\n"
    "Computer:jobs running/jobs completed/%of started jobs/Average seconds to complete\n"
)


class Progress:
    """Whichever of the bar and the status line were asked for (none: every call is a
    no-op)."""

    def __init__(self, *, bar: bool, eta: bool, status: bool, total: int | None, jobs: int):
        self.bar: Any = _progress_bar(total) if bar else None
        self.eta = eta
        self.status = status or eta
        self.total = total
        self.done = 0
        self.started_at = time.monotonic()
        self.last = 0.0
        if self.status:
            from procexec.cli._machine import cpu_count  # noqa: PLC0415  # only with --eta

            sys.stderr.write(_HEADER.format(cpus=cpu_count(), jobs=jobs))

    def held(self, reason: str | None) -> None:
        """Show on the bar why jobs wait (admission: --memfree, --load, ...)."""
        if self.bar is not None:
            self.bar.set_postfix_str("" if reason is None else f"held: {reason}")

    def update(self, running: int, finished: bool) -> None:
        """A job started (``finished`` False) or ended; at most ten lines a second."""
        if finished:
            self.done += 1
            if self.bar is not None:
                self.bar.update(1)
        now = time.monotonic()
        if self.status and (now - self.last >= 0.1 or running == 0):
            self.last = now
            sys.stderr.write("\r" + self.line(running, now))
            sys.stderr.flush()

    def line(self, running: int, now: float) -> str:
        """The status line: GNU parallel's, with an ETA when the total is known."""
        average = (now - self.started_at) / self.done if self.done else 0.0
        share = 100 if running + self.done else 0  # of the started jobs, run on this host
        local = f"local:{running}/{self.done}/{share}%/{average:.1f}s "
        if not self.eta or self.total is None:
            return local
        left = self.total - self.done
        return f"ETA: {average * left:.0f}s Left: {left} AVG: {average:.2f}s  {local}"

    def close(self) -> None:
        """End the bar and the status line."""
        if self.bar is not None:
            self.bar.close()
        if self.status:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _progress_bar(total: int | None) -> Any:
    from tqdm import tqdm  # noqa: PLC0415  # only with --bar

    return tqdm(total=total, file=sys.stderr, unit="job", dynamic_ncols=True)
