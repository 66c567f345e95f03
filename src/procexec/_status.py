"""How a reaped child's figures are kept, and the exit statuses a shell gives a command it
could not start. A leaf: it imports nothing of procexec, and nothing costly (a plain run of
commands loads it; :mod:`procexec._result`, with its dataclass, is loaded on use)."""

from __future__ import annotations

import resource

#: ``(ru_utime, ru_stime, ru_maxrss in KiB, whether ru_maxrss is the child's own)``, as a
#: job keeps them once reaped.
UsageFigures = tuple[float, float, int, bool]


class ParentPeak:
    """This process's peak RSS in KiB as last read; it only grows, so a child's figure at
    or under it needs no new read (no system call for the many small children)."""

    kib = 0


def exceeds_parent_peak(kib: int) -> bool:
    """Whether a child's ``ru_maxrss`` (KiB) is higher than this process's own peak, so
    that it is the child's own and not the peak it inherited."""
    if kib <= ParentPeak.kib:
        return False
    ParentPeak.kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib > ParentPeak.kib


#: Status a shell gives a command it cannot find (program or directory missing).
NOT_FOUND_STATUS = 127
#: Status a shell gives a command it found but cannot execute (permission, format...).
CANNOT_EXECUTE_STATUS = 126


def start_error_status(error: BaseException) -> int:
    """The shell's exit status for a command that could not be started with ``error``."""
    if isinstance(error, (FileNotFoundError, NotADirectoryError)):
        return NOT_FOUND_STATUS
    return CANNOT_EXECUTE_STATUS
