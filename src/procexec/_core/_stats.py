"""ExecutorStats: what :meth:`ProcessExecutor.stats` gives. Loaded on the first look (a
dataclass: a run that never asks does not load ``dataclasses``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExecutorStats:
    """A look at an executor (:meth:`ProcessExecutor.stats`).

    Attributes:
        running: jobs started (or being started) and not finished.
        queued: jobs waiting to start.
        held_by: why the waiting jobs wait when it is not for a free slot: ``"memfree"``,
            ``"load"``, ``"pressure:<resource>"`` or ``"delay"``; None otherwise.
        running_calls: how many of ``running`` are Python calls.
        queued_calls: how many of ``queued`` are Python calls.
        idle_workers: worker processes waiting for a call (they hold no slot).
    """

    running: int
    queued: int
    held_by: str | None
    running_calls: int = 0
    queued_calls: int = 0
    idle_workers: int = 0
