"""The reaper: one executor's queue of waiting jobs, its limit, and the lanes that run them.

Callers queue jobs here; the lanes (``_lane.py``, one thread each, while they have work)
take them one at a time. ``max_jobs`` is split into shares, one per lane, so that every
lane keeps children running; a lane takes a job only while it is under its share and the
whole reaper under ``max_jobs``, so the limit holds while shares change. There are as many
lanes as cores, at most ``MAX_LANES`` and at most ``max_jobs``.

Every field of the reaper and the lanes' shared fields are guarded by ``_lock``.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from weakref import WeakSet

from procexec._job import Job
from procexec._lane import Lane
from procexec._validate import TermSequence

#: More lanes than this gain nothing: Popen's Python part holds the GIL.
MAX_LANES = 4


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Reaper:
    """Runs jobs under a limit on its lanes; the methods without a leading underscore are
    safe to call from any thread."""

    def __init__(
        self, max_jobs: int, term_sequence: TermSequence, name: str, *, daemon: bool = False
    ) -> None:
        self.term_sequence = term_sequence
        self._name = name
        self._daemon = daemon  # a daemon thread does not hold up interpreter exit
        #: Notified whenever jobs were started or finished, while someone waits on it in
        #: wait_for_progress (ProcessFuture.wait_started).
        self._progress = threading.Condition()
        self._progress_waiters = 0
        self._lock = threading.Lock()
        self._max_jobs = max_jobs
        self._pending: deque[Job] = deque()
        self._taken: set[Job] = set()  # jobs the lanes took from the queue, not given back
        self._lanes: list[Lane] = []
        self._closed = False
        self._forked = False  # this is a copy inherited through fork(): refuse work
        self._lane_count = min(_cores(), MAX_LANES)
        self._share_locked()
        _live_reapers.add(self)

    # ----------------------------------------------------------- any thread
    @property
    def max_jobs(self) -> int:
        """The current limit on running children."""
        return self._max_jobs

    def set_max_jobs(self, value: int) -> None:
        """Change the limit; waiting jobs start at once if it was raised."""
        with self._lock:
            self._max_jobs = value
            self._share_locked()
            self._wake_takers_locked()

    def wait_for_progress(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` is true, testing it whenever jobs start or finish."""
        with self._progress:
            self._progress_waiters += 1
            try:
                return self._progress.wait_for(predicate, timeout)
            finally:
                self._progress_waiters -= 1

    def enqueue(self, job: Job) -> None:
        """Queue a job, starting a lane's thread if needed.

        Raises RuntimeError after close() or in a child process created by fork(), and
        OSError or RuntimeError if a thread cannot be started; the job is then not queued.
        """
        with self._lock:
            if self._forked:
                raise RuntimeError(
                    "this ProcessExecutor was created before os.fork() in the parent process "
                    "and cannot run jobs in the child: create a new ProcessExecutor here"
                )
            if self._closed:
                raise RuntimeError("cannot schedule new jobs after shutdown")
            self._pending.append(job)
            try:
                self._wake_takers_locked()
            except BaseException:
                self._pending.pop()  # no lane took it: taking needs this lock
                raise

    def close(self, *, cancel_pending: bool) -> None:
        """Refuse new jobs; with ``cancel_pending``, cancel the jobs not yet started."""
        with self._lock:
            self._closed = True
            cancelled = list(self._pending) if cancel_pending else []
            if cancel_pending:
                self._pending.clear()
        for job in cancelled:
            job.future.cancel()
        self._post_to_all(lambda _lane: _nothing)  # let idle loops notice: nothing left

    def join(self) -> None:
        """Wait until every lane has finished all work.

        A no-op on a lane's own thread (a done-callback calling ``shutdown()``): that lane
        cannot end while it waits, nor can the others while its job holds a slot.
        """
        self._release_futures_held_here()
        while True:
            with self._lock:
                threads = [t for lane in self._lanes for t in lane.threads_locked()]
            me = threading.current_thread()
            if me in threads:
                return
            threads = [t for t in threads if t.is_alive()]
            if not threads:
                return
            for thread in threads:
                thread.join()

    def _release_futures_held_here(self) -> None:
        """Give back the locks of this executor's unfinished futures that this thread holds.

        A KeyboardInterrupt that lands inside ``concurrent.futures.wait()`` or
        ``as_completed()`` while they take every future's lock one by one, rather than while
        they block, leaves some of those locks held by the interrupted thread. A lane would
        then block for ever resolving such a future, and this join with it. Nothing else
        makes the joining thread hold a future's lock (the lanes need it to resolve it).
        """
        with self._lock:
            jobs = [*self._pending, *self._taken]
        for job in jobs:
            job.future._release_if_held_here()

    def stop_job(self, job: Job, *, kill: bool) -> None:
        """Start stopping ``job`` if it is running."""
        lane = job.lane
        if lane is not None:
            with self._lock:
                lane.post_locked(partial(lane.stop_if_running, job, kill))

    def stop_all(self, *, kill: bool) -> None:
        """Start stopping every running job."""
        self._post_to_all(lambda lane: partial(lane.stop_every_running, kill))

    def _post_to_all(self, call_for: Callable[[Lane], Callable[[], None]]) -> None:
        with self._lock:
            for lane in self._lanes:
                lane.post_locked(call_for(lane))

    def _share_locked(self) -> None:
        """Split max_jobs among the lanes, adding lanes up to the count this limit uses."""
        wanted = max(1, min(self._max_jobs, self._lane_count))
        while len(self._lanes) < wanted:
            index = len(self._lanes)
            name = self._name if index == 0 else f"{self._name}-lane{index}"
            self._lanes.append(Lane(self, name))
        base, extra = divmod(self._max_jobs, wanted)
        for index, lane in enumerate(self._lanes):
            lane.share = base + (index < extra) if index < wanted else 0

    def _wake_takers_locked(self) -> None:
        """Wake as many lanes as the waiting jobs can keep busy."""
        if len(self._taken) >= self._max_jobs:
            return  # no lane may take a job; the next to give one back takes or wakes
        waiting = len(self._pending)
        for lane in self._lanes:
            if waiting <= 0:
                return
            free = lane.free_locked()
            if free > 0:
                lane.wake_locked()
                waiting -= free

    # ------------------------------------------------------- lanes' threads
    def _take(self, lane: Lane) -> tuple[Job, bool] | None:
        """The next waiting job for ``lane`` if it may take one now, and whether it may
        take another after it (if not, a later enqueue or give-back wakes it)."""
        with self._lock:
            free = lane.free_locked()
            if free <= 0:
                return None
            job = self._pending.popleft()
            job.lane = lane
            lane.taken += 1
            self._taken.add(job)
            return job, free > 1 and bool(self._pending)

    def _busy_locked(self) -> bool:
        """Whether any job waits or runs: the lanes' threads stay until neither does."""
        return bool(self._pending) or bool(self._taken)

    def _give_back(self, lane: Lane, job: Job) -> None:
        """``job`` of ``lane`` no longer runs: its slot is free for any lane."""
        with self._lock:
            lane.taken -= 1
            self._taken.discard(job)
            if not self._busy_locked():  # the last job: let the idle lanes end
                for other in self._lanes:
                    if other is not lane:
                        other.post_locked(_nothing)
            if self._pending and lane.taken >= lane.share:
                # This lane is over its share (the limit was re-split): let another take.
                # A lane whose thread cannot start now is started by the next enqueue.
                with contextlib.suppress(OSError, RuntimeError):
                    self._wake_takers_locked()

    def _notify_progress(self) -> None:
        # Read without the lock, so that a job costs nothing here while nobody waits. A
        # waiter counts itself before it tests its predicate, and the progress was made
        # before this read: either this read sees the waiter or the waiter sees the progress.
        if self._progress_waiters:
            with self._progress:
                self._progress.notify_all()

    def _close_after_failure(self, failed: Lane) -> list[Job]:
        """A lane's loop failed: refuse new jobs and hand back the waiting ones to fail."""
        with self._lock:
            self._closed = True
            failed.forget_thread_locked()
            waiting = list(self._pending)
            self._pending.clear()
        return waiting

    # --------------------------------------------------------------- fork()
    def _forget_after_fork(self) -> None:
        """In a child made by ``os.fork()``: the threads and the children are the parent's.

        Runs in the child right after the fork, with no other thread alive there. Locks a
        parent thread held at the fork would stay locked, so they are replaced. Inherited
        fds are closed: a job's stdin pipe still open here would never reach its end.
        Every job's future fails; the executor refuses new jobs.
        """
        self._lock = threading.Lock()
        self._progress = threading.Condition()
        self._progress_waiters = 0
        self._forked = self._closed = True
        jobs = list(self._pending)
        self._pending.clear()
        self._taken.clear()
        for lane in self._lanes:
            jobs.extend(lane.forget_after_fork())
        error = RuntimeError(
            "this job belongs to a ProcessExecutor of the parent process; it is not "
            "tracked in the child made by os.fork()"
        )
        for job in jobs:
            job.close_pipes()
            job.future._fail_after_fork(error)


def _nothing() -> None:
    """Posted to wake a lane so that it looks at its state again."""


#: Every reaper alive, so that a child made by fork() can disarm its copies.
_live_reapers: WeakSet[Reaper] = WeakSet()


def _after_fork_in_child() -> None:
    for reaper in list(_live_reapers):
        reaper._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
