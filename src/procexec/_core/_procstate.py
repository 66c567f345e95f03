"""What the kernel says about a child that has not been reaped yet.

When a job's timeout passes, the child may be exiting by itself at that very moment. A
signal sent to a child that has already exited (a zombie) is accepted and does nothing, so
``timed_out`` must not be decided by the sending alone: the lane asks :func:`has_exited`
before it signals, and :func:`signal_kills` whether the signal would end the child for
sure, so that an exit status of 0 after it can only mean the signal came too late.
"""

from __future__ import annotations

import os
import signal

#: Signals whose default action does not end a process: it ignores them or stops.
_NOT_FATAL_BY_DEFAULT = frozenset(
    int(s)
    for s in (
        signal.SIGCHLD,
        signal.SIGCONT,
        signal.SIGURG,
        signal.SIGWINCH,
        signal.SIGSTOP,
        signal.SIGTSTP,
        signal.SIGTTIN,
        signal.SIGTTOU,
    )
)

#: The masks of /proc/PID/status that keep a signal from ending a process at once.
_MASKS = (b"SigBlk", b"SigIgn", b"SigCgt")


def has_exited(pid: int) -> bool:
    """Whether our child ``pid`` has exited; it is not reaped."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped by someone else (a caller's popen.wait())
        return True


def signal_kills(pid: int, signum: int) -> bool:
    """Whether ``signum`` ends ``pid`` for sure: its default action ends a process, and the
    process neither blocks, ignores nor catches it. False when that cannot be told."""
    if signum == signal.SIGKILL:
        return True
    if signum in _NOT_FATAL_BY_DEFAULT:
        return False
    try:
        with open(f"/proc/{pid}/status", "rb") as file:
            status = file.read()
    except OSError:  # no /proc here, or the process is gone
        return False
    bit = 1 << (signum - 1)
    masks = [
        int(value, 16)
        for name, _, value in (line.partition(b":") for line in status.splitlines())
        if name in _MASKS
    ]
    return len(masks) == len(_MASKS) and not any(mask & bit for mask in masks)
