"""Handing jobs to the runner as their input arrives.

Jobs made from ``:::`` values are all known up front. Jobs made from stdin or a file are
read by a thread a bounded number ahead of the runner, which it wakes as each arrives: a
slow producer's first lines start at once, and endless input keeps memory flat.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Job:
    """One job: its sequence number ({#}), its position among the jobs that run (for
    ``--keep-order``), and its arguments."""

    seq: int
    index: int
    args: tuple[str, ...]
    data: bytes | None = None  # --pipe: the block of input for the job's stdin
    stdin: Any = None  # --pipe --round-robin: what feeds its stdin (a RoundRobin)


_END = object()


class Feed:
    """Jobs from an iterator: ``take()`` the next one if it is there."""

    def __init__(
        self,
        jobs: Iterator[Job],
        *,
        threaded: bool,
        ahead: int = 256,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._jobs = jobs
        self._on_close = on_close
        self._queue: queue.Queue[object] | None = queue.Queue(ahead) if threaded else None
        self._wake: Callable[[], None] = lambda: None
        self.delivered = 0  # jobs handed out so far
        self.exhausted = False

    def start(self, wake: Callable[[], None]) -> None:
        """Start reading (in a thread, when threaded); ``wake`` is called as a job arrives."""
        self._wake = wake
        if self._queue is not None:
            threading.Thread(target=self._read, name="procexec-input", daemon=True).start()

    def take(self) -> Job | None:
        """The next job, or None when none is ready now (``exhausted`` tells whether more
        will come). An error reading the input (InputError, OSError) is raised here."""
        if self.exhausted:
            return None
        if self._queue is None:
            job = next(self._jobs, None)
        else:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return None
            if isinstance(item, BaseException):
                self.exhausted = True
                raise item
            job = None if item is _END else item  # type: ignore[assignment]
        if job is None:
            self.exhausted = True
            return None
        self.delivered += 1
        return job

    def close(self) -> None:
        """The run is over: release what the jobs' input holds (round robin's pipes)."""
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __iter__(self) -> Iterator[Job]:
        """Every job, waiting for input as needed (for ``--dry-run``; not with start())."""
        for job in self._jobs:
            self.delivered += 1
            yield job
        self.exhausted = True

    def _read(self) -> None:
        assert self._queue is not None
        try:
            for job in self._jobs:
                self._queue.put(job)
                self._wake()
            self._queue.put(_END)
        except Exception as error:  # handed to the runner, raised by take()
            self._queue.put(error)
        self._wake()
