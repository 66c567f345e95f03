"""What a finished ``run()`` job hands back: the CompletedProcess plus timing and usage."""

from __future__ import annotations

import reprlib
import resource
import subprocess
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True)
class Rusage:
    """Resource usage of one child, from ``os.wait4``.

    Attributes:
        user_time: CPU seconds spent in user mode.
        system_time: CPU seconds spent in the kernel.
        max_rss: peak resident set size in bytes (Linux reports KiB; this is converted).
    """

    user_time: float
    system_time: float
    max_rss: int

    @classmethod
    def from_struct(cls, usage: resource.struct_rusage) -> Rusage:
        """Build from the ``struct_rusage`` that ``os.wait4`` returns (Linux units)."""
        return cls(usage.ru_utime, usage.ru_stime, usage.ru_maxrss * 1024)

    @classmethod
    def from_figures(cls, figures: tuple[float, float, int]) -> Rusage:
        """Build from ``(ru_utime, ru_stime, ru_maxrss)`` as ``os.wait4`` reports them."""
        return cls(figures[0], figures[1], figures[2] * 1024)


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
    ) -> None:
        super().__init__(args, returncode, stdout, stderr)
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


#: Status a shell gives a command it cannot find (program or directory missing).
NOT_FOUND_STATUS = 127
#: Status a shell gives a command it found but cannot execute (permission, format...).
CANNOT_EXECUTE_STATUS = 126


def start_error_status(error: BaseException) -> int:
    """The shell's exit status for a command that could not be started with ``error``."""
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return NOT_FOUND_STATUS
    return CANNOT_EXECUTE_STATUS
