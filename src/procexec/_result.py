"""What a finished ``run()`` job hands back: the CompletedProcess plus timing and usage.

Loaded when a result is first built or named, not by a plain run of commands (a dataclass
brings ``dataclasses`` and ``inspect`` in): the engine keeps a job's figures as a tuple
(``procexec._status.UsageFigures``) until :class:`Rusage` is asked for."""

from __future__ import annotations

import reprlib
import subprocess
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True)
class Rusage:
    """Resource usage of one child, from ``os.wait4``.

    Linux carries the peak memory of the process that starts a child across ``exec``: the
    kernel's figure for a child is the higher of its own peak and the peak its parent (this
    Python process) had when it started it. ``true`` started from a 500 MiB interpreter
    reports 500 MiB. So the figure is kept as an upper bound, and counts as the child's own
    peak only when it is higher than this process's own peak.

    Attributes:
        user_time: CPU seconds spent in user mode.
        system_time: CPU seconds spent in the kernel.
        max_rss: the child's own peak resident set size in bytes, or None when it cannot
            be told apart from the parent's peak it inherited (a child that stayed smaller
            than this process); it is then at most ``max_rss_upper``.
        max_rss_upper: the kernel's figure (``ru_maxrss``, in bytes): the higher of the
            child's own peak and this process's peak when it started the child.
    """

    user_time: float
    system_time: float
    max_rss: int | None
    max_rss_upper: int

    def __repr__(self) -> str:
        """The times rounded to the microsecond, the resolution ``wait4`` gives them in
        (the attributes keep the exact values)."""
        return (
            f"Rusage(user_time={round(self.user_time, 6)!r}, "
            f"system_time={round(self.system_time, 6)!r}, max_rss={self.max_rss!r}, "
            f"max_rss_upper={self.max_rss_upper!r})"
        )

    @classmethod
    def from_figures(cls, figures: tuple[float, float, int, bool]) -> Rusage:
        """Build from the figures a job keeps (``procexec._status.UsageFigures``)."""
        utime, stime, kib, own = figures
        return cls(utime, stime, kib * 1024 if own else None, kib * 1024)


class JobResult(subprocess.CompletedProcess[_T]):
    """A ``subprocess.CompletedProcess`` with the job's pid, timing and resource usage.

    Attributes:
        args: the argv as given.
        returncode: exit status (negative N: killed by signal N).
        stdout: captured output (bytes, or str in text mode), or None if not captured.
        stderr: captured error output, or None if not captured.
        pid: the child's process id.
        started_at: wall-clock time (``time.time()``) when the child was started.
        ended_at: wall-clock time when the child was reaped.
        duration: seconds from start to reap on the monotonic clock; time spent waiting
            for a free slot is not included.
        rusage: the child's CPU time and peak memory, or None where it cannot be known
            (the child was reaped by someone else, e.g. a caller's ``popen.wait()``).
        requeues: how many times the job was stopped to free memory (``memfree``) and
            run again from the start; its output is the last run's.
        limit_hit: for a job run with ``limits=`` that failed, the limit it most likely
            ran into ("cpu", "memory" or "data"; see :class:`procexec.Limits`), else None.
    """

    def __init__(
        self,
        args: Any,
        returncode: int,
        stdout: Any = None,
        stderr: Any = None,
        *,
        pid: int,
        started_at: float,
        ended_at: float,
        duration: float,
        rusage: Rusage | None,
        limit_hit: str | None = None,
        requeues: int = 0,
    ) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.requeues = requeues
        self.limit_hit = limit_hit
        self.pid = pid
        self.started_at = started_at
        self.ended_at = ended_at
        self.duration = duration
        self.rusage = rusage

    def __repr__(self) -> str:
        """The args, status, pid and duration, and the size of the output (not the output:
        it can be megabytes)."""
        return (
            f"JobResult(args={reprlib.repr(self.args)}, returncode={self.returncode!r}, "
            f"pid={self.pid}, duration={self.duration:.3f}, stdout={_size(self.stdout)}, "
            f"stderr={_size(self.stderr)})"
        )


def _size(output: object) -> str:
    if output is None:
        return "None"
    unit = "chars" if isinstance(output, str) else "bytes"
    return f"<{len(output)} {unit}>"  # type: ignore[arg-type]
