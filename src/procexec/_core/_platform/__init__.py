"""How the reaper learns that a child has exited: the one place the platform is chosen.

- Linux 5.3+: a pidfd per child (``os.pidfd_open``), registered in the lane's poller.
  No extra threads; a child's exit wakes the loop directly.
- Elsewhere, or where pidfd is refused (old kernels, seccomp sandboxes): a small waiter
  thread per running child blocks in ``os.waitid(..., WNOWAIT)`` — it only observes the
  exit, it never reaps — and hands the exit to the loop through its wake-up fd.

In both cases the reaper thread alone reaps and signals children, so a pid is never
signalled after it was reaped. The choice is a runtime probe made on first use, not a
version check; tests set ``_force_fallback`` to run every check on the portable path.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

from procexec._core._platform._base import ExitWatcher, Post
from procexec._core._platform._fallback import WaiterThreadWatcher
from procexec._core._platform._pidfd import PidfdWatcher

if TYPE_CHECKING:
    from procexec._core._poller import Poller

__all__ = ("ExitWatcher", "Post", "make_exit_watcher", "pidfd_usable")

#: Tests set this to True to run the portable path on Linux.
_force_fallback = False


@functools.cache
def pidfd_usable() -> bool:
    """Probe once whether this process may open pidfds."""
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        fd = os.pidfd_open(os.getpid())
    except OSError:
        return False
    os.close(fd)
    return True


def make_exit_watcher(poller: Poller, post: Post) -> ExitWatcher:
    """Return the exit watcher for this platform, for one run of a reaper loop."""
    if pidfd_usable() and not _force_fallback:
        return PidfdWatcher(poller)
    return WaiterThreadWatcher(post)
