"""Linux: one pidfd per child in the lane's poller."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from procexec._core._poller import Poller


class PidfdWatcher:
    """Registers a pidfd per child; it becomes readable when the child exits."""

    def __init__(self, poller: Poller) -> None:
        self._poller = poller
        self._pidfds: dict[int, int] = {}

    def watch(self, pid: int, on_exit: Callable[[], None]) -> None:
        """Open and register the child's pidfd; the poller calls ``on_exit``."""
        pidfd = os.pidfd_open(pid)
        try:
            self._poller.register(pidfd, "read", on_exit)
        except BaseException:
            os.close(pidfd)
            raise
        self._pidfds[pid] = pidfd

    def unwatch(self, pid: int) -> None:
        """Unregister and close the child's pidfd (if it was registered)."""
        pidfd = self._pidfds.pop(pid, None)
        if pidfd is None:
            return
        self._poller.unregister(pidfd)
        os.close(pidfd)

    def forget_after_fork(self) -> None:
        """Close the inherited pidfds (the poller is closed by the lane)."""
        for pidfd in self._pidfds.values():
            os.close(pidfd)
        self._pidfds.clear()
