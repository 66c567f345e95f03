"""Portable path: a waiter thread per running child observes its exit without reaping it."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable

from procexec._core._platform._base import Post


class WaiterThreadWatcher:
    """Starts a daemon thread per child that blocks until the child has exited.

    The thread uses ``WNOWAIT`` so the child stays a zombie: its pid cannot be reused before
    the reaper thread has reaped it, and the reaper may still signal its process group.
    """

    def __init__(self, post: Post) -> None:
        self._post = post

    def watch(self, pid: int, on_exit: Callable[[], None]) -> None:
        """Start the waiter thread for ``pid``."""
        thread = threading.Thread(
            target=self._wait, args=(pid, on_exit), name=f"procexec-wait-{pid}", daemon=True
        )
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread": the same limits as fork()
            raise OSError(errno.EAGAIN, f"cannot start a waiter thread ({exc})") from exc

    def unwatch(self, pid: int) -> None:
        """Nothing to undo: the waiter thread has already returned."""

    def forget_after_fork(self) -> None:
        """Nothing to close: the waiter threads do not exist in the child."""

    def _wait(self, pid: int, on_exit: Callable[[], None]) -> None:
        # ChildProcessError: reaped by someone else (a caller's popen.wait()): exited too.
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        self._post(on_exit)
