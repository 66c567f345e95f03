"""Linux: one pidfd per child in the reaper's selector."""

from __future__ import annotations

import os
import selectors
from collections.abc import Callable


class PidfdWatcher:
    """Registers a pidfd per child; it becomes readable when the child exits."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        self._pidfds: dict[int, int] = {}

    def watch(self, pid: int, on_exit: Callable[[], None]) -> None:
        """Open and register the child's pidfd; the selector calls ``on_exit``."""
        pidfd = os.pidfd_open(pid)
        try:
            self._selector.register(pidfd, selectors.EVENT_READ, on_exit)
        except BaseException:
            os.close(pidfd)
            raise
        self._pidfds[pid] = pidfd

    def unwatch(self, pid: int) -> None:
        """Unregister and close the child's pidfd (if it was registered)."""
        pidfd = self._pidfds.pop(pid, None)
        if pidfd is None:
            return
        self._selector.unregister(pidfd)
        os.close(pidfd)

    def forget_after_fork(self) -> None:
        """Close the inherited pidfds (the selector is closed by the reaper)."""
        for pidfd in self._pidfds.values():
            os.close(pidfd)
        self._pidfds.clear()
