"""What a finished ``run()`` job hands back: the CompletedProcess plus timing and usage.

A job's usage stays the figures the engine keeps (``procexec._status.UsageFigures``)
until ``JobResult.rusage`` is read: :class:`~procexec.Rusage`, a dataclass, is loaded
then (``procexec._rusage``)."""

from __future__ import annotations

import reprlib
import subprocess
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from procexec._rusage import Rusage

_T = TypeVar("_T")


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
        rusage: Rusage | None = None,
        limit_hit: str | None = None,
        requeues: int = 0,
        usage: tuple[float, float, int, bool] | None = None,
    ) -> None:
        """``usage``: the figures ``rusage`` is built from when it is first read, where
        ``rusage`` is not given (``procexec._status.UsageFigures``)."""
        super().__init__(args, returncode, stdout, stderr)
        self.requeues = requeues
        self.limit_hit = limit_hit
        self.pid = pid
        self.started_at = started_at
        self.ended_at = ended_at
        self.duration = duration
        self._rusage = rusage
        self._usage = usage

    @property
    def rusage(self) -> Rusage | None:
        """The child's CPU time and peak memory, or None where it cannot be known."""
        if self._rusage is None and self._usage is not None:
            from procexec._rusage import Rusage  # noqa: PLC0415  # a dataclass: on first read

            self._rusage = Rusage.from_figures(self._usage)
        return self._rusage

    @rusage.setter
    def rusage(self, value: Rusage | None) -> None:
        self._rusage, self._usage = value, None

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
