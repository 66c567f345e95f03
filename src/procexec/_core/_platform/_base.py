"""The interface both exit watchers offer to the reaper loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

#: Hands a callable to the reaper thread and wakes it; safe from any thread.
Post = Callable[[Callable[[], None]], None]


class ExitWatcher(Protocol):
    """Tells the reaper loop when a child has exited, without reaping it."""

    def watch(self, pid: int, on_exit: Callable[[], None]) -> None:
        """Arrange for ``on_exit()`` to run on the reaper thread once ``pid`` has exited."""

    def unwatch(self, pid: int) -> None:
        """Forget ``pid``; called by the reaper thread from ``on_exit`` before reaping."""

    def forget_after_fork(self) -> None:
        """In a child made by fork(): close what was inherited, watch nothing."""
