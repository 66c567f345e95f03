"""Handing jobs to the runner as their input arrives.

Jobs made from ``:::`` values are all known up front. Jobs made from stdin or a file are
read by a thread ahead of the runner, which it wakes as each arrives, by at most so many
jobs and so many bytes: a slow producer's first lines start at once, and endless input, or
jobs of many values each, keep memory flat.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any


class Job:
    """One job: its sequence number ({#}), its position among the jobs that run (for
    ``--keep-order``), and its arguments. Not changed once made (:meth:`in_slot` makes a
    copy)."""

    __slots__ = ("args", "data", "index", "seq", "slot", "stdin")

    seq: int
    index: int
    args: tuple[str, ...]
    data: bytes | None  # --pipe: the block of input for the job's stdin
    stdin: Any  # --pipe --round-robin: what feeds its stdin (a RoundRobin)
    slot: int  # {%}: the job slot it runs in, once it runs (0: not known)

    def __init__(
        self,
        seq: int,
        index: int,
        args: tuple[str, ...],
        *,
        data: bytes | None = None,
        stdin: Any = None,
        slot: int = 0,
    ) -> None:
        self.seq = seq
        self.index = index
        self.args = args
        self.data = data
        self.stdin = stdin
        self.slot = slot

    def in_slot(self, slot: int) -> Job:
        """The same job, run in ``slot``."""
        return Job(self.seq, self.index, self.args, data=self.data, stdin=self.stdin, slot=slot)

    def __repr__(self) -> str:
        return f"Job(seq={self.seq}, index={self.index}, args={self.args!r}, slot={self.slot})"


_END = object()

#: Input read ahead of the jobs is bounded in bytes too (a job of ``-n 10000`` values is
#: large): the reader waits while this much is queued, but always queues at least one job.
AHEAD_BYTES = 16 << 20


def _size(item: object) -> int:
    """The bytes a queued item holds (its arguments and its --pipe block)."""
    if not isinstance(item, Job):
        return 0
    return sum(len(arg) for arg in item.args) + (len(item.data) if item.data else 0)


class Feed:
    """Jobs from an iterator: ``take()`` the next one if it is there.

    Threaded, a reader thread runs ahead of the runner by at most ``ahead`` jobs and
    ``ahead_bytes`` bytes of input (the queue and its byte count guarded by ``_ready``)."""

    def __init__(
        self,
        jobs: Iterator[Job],
        *,
        threaded: bool,
        ahead: int = 256,
        ahead_bytes: int = AHEAD_BYTES,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._jobs = jobs
        self._on_close = on_close
        self._threaded = threaded
        self._queue: deque[object] = deque()  # guarded by _ready
        self._queued_bytes = 0  # guarded by _ready
        self._limits = (ahead, ahead_bytes)
        self._ready = threading.Condition()
        self._wake: Callable[[], None] = lambda: None
        self.delivered = 0  # jobs handed out so far
        self.exhausted = False

    def start(self, wake: Callable[[], None]) -> None:
        """Start reading (in a thread, when threaded); ``wake`` is called as a job arrives."""
        self._wake = wake
        if self._threaded:
            threading.Thread(target=self._read, name="procexec-input", daemon=True).start()

    def take(self) -> Job | None:
        """The next job, or None when none is ready now (``exhausted`` tells whether more
        will come). An error reading the input (InputError, OSError) is raised here."""
        if self.exhausted:
            return None
        if not self._threaded:
            job = next(self._jobs, None)
        else:
            with self._ready:
                if not self._queue:
                    return None
                item = self._queue.popleft()
                self._queued_bytes -= _size(item)
                self._ready.notify()
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
        try:
            for job in self._jobs:
                self._put(job)
            self._put(_END)
        except Exception as error:  # handed to the runner, raised by take()
            self._put(error)

    def _put(self, item: object) -> None:
        """Queue ``item`` once there is room (in jobs and in bytes), and wake the runner."""
        jobs, size = self._limits
        with self._ready:
            self._ready.wait_for(
                lambda: not self._queue or (len(self._queue) < jobs and self._queued_bytes < size)
            )
            self._queue.append(item)
            self._queued_bytes += _size(item)
        self._wake()
