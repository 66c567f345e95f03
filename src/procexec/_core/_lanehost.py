"""The conversation between a lane and its reaper: every call that crosses between
``_lane.py`` and ``_reaper.py``, in one place, as two protocols: :class:`LaneHost` (what a
lane asks of its reaper) and :class:`LaneControl` (what the reaper asks of a lane).

```
 Lane (its own thread)                      Reaper (LaneHost; any thread, under lock)
 take(lane)            ─── a waiting job ──►  pending deque, max_jobs, shares
 give_back(lane, job)  ─── a free slot ────►
 requeue(lane, job)    ─── stopped for memfree: first in line again
 held_by(lane)         ─── its jobs ───────►  (to fail them when its loop fails)
 lane_failed(...)      ─── its loop died ──►  restart it, or give up
 notify_progress()     ─── started/ended ──►  wait_started() callers
                       ◄── wake_locked(), post_locked(call), share, taken (under lock)
                       ◄── runs_locked(): the Runs that join() waits for
                       ◄── stop_if_running(job), stop_every_running() (posted)
                       ◄── forget_after_fork() (in a child made by fork())
                       ◄── prestart_workers(), tidy_workers(), idle_workers()
```
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from procexec._validate import TermSequence

if TYPE_CHECKING:
    from procexec._core._job import Job
    from procexec._core._workerspec import WorkerSpec


class LaneControl(Protocol):
    """What the reaper may use of one of its lanes (the Lane implements it). The fields and
    the ``_locked`` methods are used under the host's lock."""

    #: How many of max_jobs this lane may run.
    share: int
    #: Jobs this lane took from the queue and has not given back.
    taken: int
    #: Failed runs of its thread in a row that took no job.
    barren_failures: int

    def wake_locked(self) -> None:
        """Start the lane's thread if it does not run, else wake it once."""

    def post_locked(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the lane's thread soon; dropped when no thread runs."""

    def forget_thread_locked(self) -> None:
        """The thread is ending: the next wake-up starts a new one."""

    def has_thread_locked(self) -> bool:
        """Whether a thread runs the lane's loop, or is about to."""

    def runs_locked(self) -> list[Run]:
        """The lane's runs of its thread that may still be going (to wait for)."""

    def stop_if_running(self, job: Job, kill: bool) -> None:
        """On the lane's thread: start stopping ``job`` if the lane runs it."""

    def stop_every_running(self, kill: bool) -> None:
        """On the lane's thread: start stopping every job the lane runs."""

    def forget_after_fork(self) -> None:
        """In a child made by ``os.fork()``: drop the parent's thread and fds."""

    def prestart_workers(self, count: int, guarded: bool) -> None:
        """On the lane's thread: start ``count`` idle workers for Python calls."""

    def tidy_workers(self) -> None:
        """On the lane's thread: retire the idle workers over the limit."""

    def idle_workers(self) -> int:
        """Workers waiting for a call (a count, read without a lock)."""


class LaneHost(Protocol):
    """What a lane may use of the reaper that feeds it (the Reaper implements it)."""

    #: Guards the host's queue and counts, and the lanes' fields marked as shared.
    lock: threading.Lock
    #: How a job is stopped: ``(signal, grace seconds)`` steps, SIGKILL last.
    term_sequence: TermSequence
    #: Jobs taken from now on are cancelled, not started (``shutdown(cancel_futures=True)``).
    cancelling: bool
    #: No more work will come (``close()`` or ``join()``): idle workers retire as soon as
    #: no job is left waiting.
    draining: bool
    #: How the workers of Python calls are started.
    worker_spec: WorkerSpec

    @property
    def max_jobs(self) -> int:
        """The current limit on running jobs (commands and calls)."""

    def room_locked(self, lane: LaneControl) -> int:
        """How many more jobs ``lane`` may take now."""

    def busy_locked(self) -> bool:
        """Whether any job waits or runs, in any lane."""

    def waiting_locked(self) -> bool:
        """Whether any job waits in the queue."""

    def take(self, lane: LaneControl) -> tuple[Job, bool] | None:
        """The next waiting job for ``lane``, and whether it may take another after it."""

    def give_back(self, lane: LaneControl, job: Job) -> None:
        """``job`` no longer holds a slot (resolved, or never started); idempotent."""

    def requeue(self, lane: LaneControl, job: Job) -> None:
        """``job`` was stopped to free memory (``memfree``) and has exited: it waits again,
        first in line, and no longer holds a slot."""

    def held_by(self, lane: LaneControl) -> list[Job]:
        """The jobs ``lane`` took and has not given back."""

    def notify_progress(self) -> None:
        """Jobs started or finished: wake ``wait_started()`` callers."""

    def lane_failed(self, lane: LaneControl, error: BaseException, *, barren: bool) -> None:
        """``lane``'s loop failed with ``error`` and its jobs are settled; ``barren``: it
        had taken no job in this run of its thread."""


class Run:
    """One run of a lane's thread, and the latch that tells it has ended.

    ``done`` is a lock held from before the thread starts until its last act. Waiting for a
    run is ``with run.done: pass``: a KeyboardInterrupt there leaves everything as it was.
    ``Thread.join()`` will not do: in CPython 3.11, interrupted, it marks a thread that
    still runs as stopped, and every later ``join()`` returns at once.
    """

    __slots__ = ("done", "thread")

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread
        self.done = threading.Lock()
        self.done.acquire()

    def wait(self) -> None:
        """Block until the run has ended."""
        with self.done:
            pass
