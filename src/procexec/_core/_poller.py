"""A lane's wait for events: file descriptors mapped to callbacks, over ``poll()``.

Why not ``selectors`` with epoll: every job registers its pidfd and unregisters it once the
child has exited, and each ``epoll_ctl`` is a system call that releases and retakes the
GIL, two per job beside the wait itself. ``poll()`` is handed the whole set at each wait,
so registering is a dict update. A lane's set is small (its share of ``max_jobs``, their
pipes, the wake pipe), and handing it over costs less than the two calls saved. On storm
(1000 x ``/bin/true``, j=2) the parent's CPU went down about a tenth (docs/benchmarks-log.md).
"""

from __future__ import annotations

import math
import select
from collections.abc import Callable
from typing import Literal

#: The longest single wait, in milliseconds (poll() takes a C int). A later deadline, or an
#: infinite one, is waited for in turns of this length.
MAX_WAIT_MS = 2**31 - 1

_READY = {
    # End of file and a closed reader show as POLLHUP / POLLERR: the callback must run then
    # too, to read what is left or to stop writing.
    "read": select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR,
    "write": select.POLLOUT | select.POLLHUP | select.POLLERR,
}


class Poller:
    """Waits until registered fds are ready and hands back their callbacks.

    Used by one thread (its lane) only. An fd is registered once, for reading or writing.
    """

    def __init__(self) -> None:
        self._poll = select.poll()
        self._callbacks: dict[int, Callable[[], object]] = {}

    def register(
        self, fd: int, kind: Literal["read", "write"], callback: Callable[[], object]
    ) -> None:
        """Call ``callback`` (through :meth:`wait`) whenever ``fd`` is ready for ``kind``."""
        self._poll.register(fd, _READY[kind])
        self._callbacks[fd] = callback

    def registered(self, fd: int) -> bool:
        """Whether ``fd`` is watched."""
        return fd in self._callbacks

    def unregister(self, fd: int) -> None:
        """Stop watching ``fd`` (before closing it); KeyError if it is not registered."""
        del self._callbacks[fd]
        self._poll.unregister(fd)

    def wait(self, timeout: float | None) -> list[Callable[[], object]]:
        """Block until an fd is ready or ``timeout`` seconds (None: no limit) have passed;
        return the callbacks of the ready fds."""
        ready = []
        for fd, events in self._poll.poll(self.milliseconds(timeout)):
            if events & select.POLLNVAL:  # closed while registered: forget it, as epoll does
                self.unregister(fd)
            else:
                ready.append(self._callbacks[fd])
        return ready

    def close(self) -> None:
        """Forget every fd (a poll set holds no file descriptor of its own)."""
        for fd in list(self._callbacks):
            self.unregister(fd)

    @staticmethod
    def milliseconds(timeout: float | None) -> int | None:
        """``poll()``'s timeout for ``timeout`` seconds, rounded up so that a short wait
        does not become a busy loop, and at most ``MAX_WAIT_MS``."""
        if timeout is None:
            return None
        if timeout * 1000 >= MAX_WAIT_MS:  # also infinity, which math.ceil refuses
            return MAX_WAIT_MS
        return math.ceil(timeout * 1000)
