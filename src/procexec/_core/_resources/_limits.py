"""Running out of open files or processes at spawn: raise the soft limit, or say which limit.

When a start fails with EMFILE, the reaper raises the soft ``RLIMIT_NOFILE`` to the hard
limit once and tries again (as the Go runtime does at start-up); a start that failed while
another lane raised the limit tries again too. When that is not possible, or when process
creation fails (EAGAIN), the job's future gets an OSError with the same errno and a
message naming the limit and what to do about it.
"""

from __future__ import annotations

import errno
import resource
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class _Raised:
    """How many times raise_open_file_limit() has raised the limit (read without a syscall)."""

    times = 0


def raise_open_file_limit() -> bool:
    """Raise the soft RLIMIT_NOFILE to the hard limit; True if it went up."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft * 4, 4096)
    if soft != resource.RLIM_INFINITY and target <= soft:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return False
    _Raised.times += 1
    return True


def with_more_files(action: Callable[[], T]) -> T:
    """Run ``action``; if it fails for want of file descriptors, raise the limit and retry once.

    It also retries if another thread raised the limit while ``action`` ran: the limit is
    then already at the hard limit, so raising it again fails, but the retry may not.
    """
    raised_before = _Raised.times
    try:
        return action()
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            raise
        if _Raised.times == raised_before and not raise_open_file_limit():
            raise
    return action()


def explain(exc: BaseException) -> BaseException:
    """The error a job's future gets: ``exc``, or an OSError naming the limit that was hit."""
    if not isinstance(exc, OSError):
        return exc
    if exc.errno == errno.EMFILE:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        why = (
            f"this process may have at most {_show(soft)} open (RLIMIT_NOFILE soft limit, "
            f"hard limit {_show(hard)}); lower max_jobs or raise the limit (ulimit -n)"
        )
    elif exc.errno == errno.ENFILE:
        why = "the system-wide limit on open files is reached (fs.file-max)"
    elif exc.errno == errno.EAGAIN:
        soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
        why = (
            f"cannot create a process: the limit on processes for this user "
            f"(RLIMIT_NPROC {_show(soft)}) or the system's (kernel.pid_max, cgroup pids.max) "
            "is reached; lower max_jobs or raise the limit (ulimit -u)"
        )
    else:
        return exc
    error = OSError(exc.errno, f"{exc.strerror}: {why}")
    error.__cause__ = exc
    return error


def _show(limit: int) -> str:
    return "unlimited" if limit == resource.RLIM_INFINITY else str(limit)
