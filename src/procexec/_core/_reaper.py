"""The reaper: one executor's queue of waiting jobs, its limit, and the lanes that run them.

Callers queue jobs here; the lanes (``_lane.py``, one thread each, while they have work)
take them one at a time. ``max_jobs`` is split into shares, one per lane, so that every
lane keeps children running; a lane takes a job only while it is under its share and the
whole reaper under ``max_jobs``, so the limit holds while shares change. There are as many
lanes as cores, at most ``MAX_LANES`` and at most ``max_jobs``. What a lane may ask of the
reaper, and the reaper of a lane, are the two protocols of ``_lanehost.py``; what a future
may ask of it is ``JobControl`` (``_future.py``). The reaper alone knows which lane holds
which job.

Every field of the reaper and the lanes' shared fields are guarded by ``lock``.

A KeyboardInterrupt may land on any bytecode of the caller's thread. So work taken out of
the queue is recorded in the same locked step (``take``), a queued job is either left in
the queue or taken out again before ``enqueue`` raises, and cancelling for
``shutdown(cancel_futures=True)`` leaves the jobs queued while it runs: the lanes cancel
whatever they take from then on, so an interrupted cancel loses no future.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING
from weakref import WeakSet

from procexec._core._job import Job
from procexec._core._lane import Lane
from procexec._core._lanehost import LaneControl
from procexec._core._workerspec import WorkerSpec
from procexec._validate import TermSequence

if TYPE_CHECKING:
    from procexec._core._resources._admission import Admission, AdmissionWatch
    from procexec._core._stats import ExecutorStats

#: More lanes than this gain nothing: Popen's Python part holds the GIL.
MAX_LANES = 4
#: A lane whose loop fails this many times in a row without having taken a job would
#: fail for ever: the reaper then gives up (closes, and fails the waiting jobs).
MAX_BARREN_FAILURES = 3

logger = logging.getLogger("procexec")


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
        self,
        max_jobs: int,
        term_sequence: TermSequence,
        name: str,
        *,
        admission: Admission | None = None,
        on_held: Callable[[str | None], object] | None = None,
        worker_spec: WorkerSpec | None = None,
    ) -> None:
        self.term_sequence = term_sequence
        self.worker_spec = worker_spec or WorkerSpec()
        #: Starts only what the machine has room for (``_admission.py``), or None.
        self._admission: AdmissionWatch | None = None
        if admission is not None:  # its module is loaded: make_admission made it
            from procexec._core._resources._admission import AdmissionWatch  # noqa: PLC0415

            self._admission = AdmissionWatch(admission, self, on_held)
        self._name = name
        #: Notified whenever jobs were started or finished, while someone waits on it in
        #: wait_for_progress (ProcessFuture.wait_started).
        self._progress = threading.Condition()
        self._progress_waiters = 0
        self.lock = threading.Lock()
        self.cancelling = False  # lanes cancel the jobs they take (shutdown(cancel_futures))
        self.draining = False  # close() or join(): idle workers retire once no job waits
        self._max_jobs = max_jobs
        self._pending: deque[Job] = deque()
        #: The jobs the lanes took from the queue and have not given back, and which lane
        #: holds each.
        self._taken: dict[Job, LaneControl] = {}
        self._lanes: list[LaneControl] = []
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

    @property
    def closed(self) -> bool:
        """Whether new jobs are refused (``close()``, a failed reaper, a fork's copy)."""
        return self._closed

    def set_max_jobs(self, value: int) -> None:
        """Change the limit; waiting jobs start at once if it was raised, and idle workers
        over it retire if it was lowered. Never waits for running jobs."""
        with self.lock:
            self._max_jobs = value
            self._share_locked()
            self._wake_takers_locked()
            self._lanes[0].post_locked(self._lanes[0].tidy_workers)

    def prestart(self, count: int, *, guarded: bool) -> None:
        """Start ``count`` idle workers for Python calls now, on the lane that runs calls."""
        with self.lock:
            lane = self._lanes[0]
            lane.wake_locked()
            lane.post_locked(partial(lane.prestart_workers, count, guarded))

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
        RuntimeError if a thread cannot be started; the job is then not queued. So is it
        if a KeyboardInterrupt lands here.
        """
        with self.lock:
            if self._forked:
                raise RuntimeError(
                    "this ProcessExecutor was created before os.fork() in the parent process "
                    "and cannot run jobs in the child: create a new ProcessExecutor here"
                )
            if self._closed:
                raise RuntimeError("cannot schedule new jobs after shutdown")
            try:
                self._pending.append(job)
                if self._admission is not None:
                    self._admission.ensure_running_locked(self._name)
                self._wake_takers_locked()
            except BaseException:
                if self._pending and self._pending[-1] is job:  # no lane took it: it needs
                    self._pending.pop()  # this lock
                raise

    def close(self, *, cancel_pending: bool) -> None:
        """Refuse new jobs; with ``cancel_pending``, cancel the jobs not yet started. Idle
        workers retire as soon as no job waits.

        The jobs stay queued while they are cancelled here, and the lanes, woken to drain
        the queue, cancel any they take from now on: if this thread is interrupted, no job
        is lost and none is started.
        """
        with self.lock:
            self._closed = True
            self.draining = True  # no new work: idle workers retire once none waits
            waiting = list(self._pending) if cancel_pending else []
            if cancel_pending:
                self.cancelling = True
            with contextlib.suppress(RuntimeError):  # no thread now: join() tries again
                self._wake_takers_locked()
            for lane in self._lanes:
                lane.post_locked(_nothing)  # let idle loops notice: nothing left
        for job in waiting:
            job.future.cancel()

    def join(self) -> None:
        """Wait until every lane has finished all work.

        A no-op on a lane's own thread (a done-callback calling ``shutdown()``): that lane
        cannot end while it waits, nor can the others while its job holds a slot.
        """
        self._release_futures_held_here()
        with self.lock:
            if not self.draining:
                self.draining = True  # idle workers retire once no work is left
                for lane in self._lanes:
                    lane.post_locked(_nothing)
        me = threading.current_thread()
        while True:
            with self.lock:
                runs = [run for lane in self._lanes for run in lane.runs_locked()]
            if any(run.thread is me for run in runs):
                return
            going = [run for run in runs if run.done.locked()]
            if not going and self._held_back():
                # Admission holds the waiting jobs: its watch wakes a lane when they may go.
                self.wait_for_progress(self._lane_runs_or_nothing_waits, None)
                continue
            if not going and not self._drain_without_threads():
                return
            for run in going:
                run.wait()

    def _held_back(self) -> bool:
        """Whether jobs wait, with no lane running, because admission holds them back."""
        with self.lock:
            return (
                self._admission is not None
                and self._admission.watching_locked()
                and bool(self._pending)
                and not any(lane.has_thread_locked() for lane in self._lanes)
            )

    def _lane_runs_or_nothing_waits(self) -> bool:
        with self.lock:
            return not self._pending or any(lane.has_thread_locked() for lane in self._lanes)

    def _drain_without_threads(self) -> bool:
        """No lane's thread runs: start one if jobs still wait (a thread could not be
        started for them before); if none can start, fail those jobs rather than leave
        them waiting for ever. True if there is now a thread to wait for."""
        with self.lock:
            if not self._pending:
                return False
            try:
                self._wake_takers_locked()
            except RuntimeError as exc:
                error = RuntimeError(f"procexec could not start a thread for this job: {exc}")
            else:
                if any(lane.has_thread_locked() for lane in self._lanes):
                    return True
                error = RuntimeError("procexec: no lane could take this job")
            waiting = list(self._pending)
            self._pending.clear()
        for job in waiting:
            job.future._fail(error)
        return False

    def _release_futures_held_here(self) -> None:
        """Give back the locks of this executor's unfinished futures that this thread holds.

        A KeyboardInterrupt that lands inside ``concurrent.futures.wait()`` or
        ``as_completed()`` while they take every future's lock one by one, rather than while
        they block, leaves some of those locks held by the interrupted thread. A lane would
        then block for ever resolving such a future, and this join with it. Nothing else
        makes the joining thread hold a future's lock (the lanes need it to resolve it).
        """
        with self.lock:
            jobs = [*self._pending, *self._taken]
        for job in jobs:
            job.future._release_if_held_here()

    def stop_job(self, job: Job, *, kill: bool) -> None:
        """Start stopping ``job`` if it is running (``JobControl``)."""
        with self.lock:
            lane = self._taken.get(job)
            if lane is not None:
                lane.post_locked(partial(lane.stop_if_running, job, kill))

    def stop_all(self, *, kill: bool) -> None:
        """Start stopping every running job."""
        with self.lock:
            for lane in self._lanes:
                lane.post_locked(partial(lane.stop_every_running, kill))

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
            free = self.room_locked(lane)
            if free > 0:
                lane.wake_locked()
                waiting -= free

    # ---------------------------------------- LaneHost: the lanes' threads
    def room_locked(self, lane: LaneControl) -> int:
        """How many more jobs ``lane`` may take now. A call (the next in line) is for the
        first lane, which owns the workers, within ``max_jobs`` whatever its share; the
        other lanes wait behind it, so jobs start in the order they were queued."""
        if not self._pending:
            return 0
        free = self._max_jobs - len(self._taken)
        if self._pending[0].counts_in_share:
            room = min(lane.share - lane.taken, free)
        else:
            room = free if lane is self._lanes[0] else 0
        if self._admission is None or self._pending[0].future.cancelled():
            return room  # a cancelled job is only dropped: nothing to admit
        return self._admitted_locked(room) if room > 0 else room

    def _admitted_locked(self, room: int) -> int:
        """``room``, or 0 while admission holds jobs back (1 with a delay between starts)."""
        assert self._admission is not None
        admission = self._admission.admission
        reason = admission.check(time.monotonic())
        if reason is not None:
            self._admission.hold_locked(reason)
            return 0
        self._admission.held_by = None
        return 1 if admission.one_at_a_time() else room

    def busy_locked(self) -> bool:
        """Whether any job waits or runs: the lanes' threads stay until neither does."""
        return bool(self._pending) or bool(self._taken)

    def waiting_locked(self) -> bool:
        """Whether any job waits in the queue."""
        return bool(self._pending)

    def take(self, lane: LaneControl) -> tuple[Job, bool] | None:
        """The next waiting job for ``lane`` if it may take one now, and whether it may
        take another after it (if not, a later enqueue or give-back wakes it). A lane that
        may not take the next job while a slot is free (a call, which only the first lane
        runs, or a command over its share) wakes the lanes that may."""
        with self.lock:
            free = self.room_locked(lane)
            if free <= 0:
                with contextlib.suppress(RuntimeError):  # the next enqueue or join retries
                    self._wake_takers_locked()
                return None
            job = self._pending.popleft()
            lane.taken += job.counts_in_share
            self._taken[job] = lane
            if self._admission is not None and not job.future.cancelled():
                self._admission.started_locked(len(self._taken))
            return job, free > 1 and bool(self._pending)

    def give_back(self, lane: LaneControl, job: Job) -> None:
        """``job`` of ``lane`` no longer runs: its slot is free for any lane. Idempotent."""
        with self.lock:
            if self._taken.pop(job, None) is None:  # given back already (a failed job's cleanup)
                return
            lane.taken -= job.counts_in_share
            if self._admission is not None:
                self._admission.admission.after_stop = False  # memory was given back
            if not self.busy_locked():  # the last job: let the idle lanes end
                for other in self._lanes:
                    if other is not lane:
                        other.post_locked(_nothing)
                if self._admission is not None:
                    self._admission.poke()
            if self._pending and lane.taken >= lane.share:
                # This lane is over its share (the limit was re-split): let another take.
                # A lane whose thread cannot start now is started by the next enqueue.
                with contextlib.suppress(RuntimeError):
                    self._wake_takers_locked()

    def requeue(self, lane: LaneControl, job: Job) -> None:
        """``job`` of ``lane`` was stopped to free memory: it waits again, first in line."""
        with self.lock:
            self._taken.pop(job, None)
            lane.taken -= 1
            self._pending.appendleft(job)
            if self._admission is not None:
                self._admission.admission.after_stop = True
            with contextlib.suppress(RuntimeError):  # the next enqueue or join retries
                self._wake_takers_locked()

    # --------------------------------------------- AdmissionWatch's thread
    def running_count_locked(self) -> int:
        """How many jobs the lanes hold."""
        return len(self._taken)

    def recheck(self) -> None:
        """Look again whether held-back jobs may start; wake the lanes if they may."""
        with self.lock:
            assert self._admission is not None
            if self._admission.admission.check(time.monotonic()) is None:
                self._admission.held_by = None
            if self._pending:
                with contextlib.suppress(RuntimeError):
                    self._wake_takers_locked()
        self.notify_progress()  # a join() waiting for held-back jobs looks again

    def requeue_youngest(self) -> None:
        """Memory is under half of ``memfree``: stop the youngest running job (of two or
        more) with the termination sequence; its lane queues it again when it has exited."""
        with self.lock:
            running = [  # commands only: running a Python call again is not known to be safe
                job
                for job in self._taken
                if job.counts_in_share
                and job.popen is not None
                and job.stop_steps is None
                and not job.requeue
            ]
            if len(running) < 2:
                return
            job = max(running, key=lambda j: j.started_mono)
            job.requeue = True
            lane = self._taken[job]
            lane.post_locked(partial(lane.stop_if_running, job, False))
        logger.warning(
            "procexec: memfree: less than half of the memory asked for is available; "
            "stopping the youngest job (pid %d) to run it again later: %r",
            job.popen.pid if job.popen is not None else 0,
            job.argv,
        )

    def stats(self) -> ExecutorStats:
        """How many jobs run and wait now, and why the waiting ones wait."""
        from procexec._core._stats import ExecutorStats  # noqa: PLC0415  # a dataclass: on use

        with self.lock:
            held = self._admission.held_by if self._admission is not None else None
            calls_running = sum(not job.counts_in_share for job in self._taken)
            calls_queued = sum(not job.counts_in_share for job in self._pending)
            return ExecutorStats(
                len(self._taken),
                len(self._pending),
                held if self._pending else None,
                calls_running,
                calls_queued,
                self._lanes[0].idle_workers(),
            )

    def held_by(self, lane: LaneControl) -> list[Job]:
        """The jobs ``lane`` took and has not given back."""
        with self.lock:
            return [job for job, holder in self._taken.items() if holder is lane]

    def notify_progress(self) -> None:
        """Wake ``wait_for_progress`` callers, if any."""
        # Read without the lock, so that a job costs nothing here while nobody waits. A
        # waiter counts itself before it tests its predicate, and the progress was made
        # before this read: either this read sees the waiter or the waiter sees the progress.
        if self._progress_waiters:
            with self._progress:
                self._progress.notify_all()

    def lane_failed(self, lane: LaneControl, error: BaseException, *, barren: bool) -> None:
        """``lane``'s loop failed; its jobs are settled. The waiting jobs go on, on a new
        thread for this lane or on the others, unless the lane failed
        ``MAX_BARREN_FAILURES`` times in a row without taking a job: then the reaper
        closes and the waiting jobs fail with ``error``."""
        with self.lock:
            lane.forget_thread_locked()
            lane.barren_failures = lane.barren_failures + 1 if barren else 0
            if lane.barren_failures < MAX_BARREN_FAILURES:
                with contextlib.suppress(RuntimeError):  # the next enqueue or join retries
                    self._wake_takers_locked()
                return
            self._closed = True
            waiting = list(self._pending)
            self._pending.clear()
        logger.error("procexec: the reaper loop keeps failing; failing the waiting jobs")
        for job in waiting:
            job.future._fail(error)

    # --------------------------------------------------------------- fork()
    def forget_after_fork(self) -> None:
        """In a child made by ``os.fork()``: the threads and the children are the parent's.

        Runs in the child right after the fork, with no other thread alive there. Locks a
        parent thread held at the fork would stay locked, so they are replaced. Inherited
        fds are closed: a job's stdin pipe still open here would never reach its end.
        Every job's future fails, those being started at the fork too; the executor
        refuses new jobs.
        """
        self.lock = threading.Lock()
        self._progress = threading.Condition()
        self._progress_waiters = 0
        self._forked = self._closed = True
        jobs = [*self._pending, *self._taken]
        self._pending.clear()
        self._taken.clear()
        for lane in self._lanes:
            lane.forget_after_fork()
        error = RuntimeError(
            "this job belongs to a ProcessExecutor of the parent process; it is not "
            "tracked in the child made by os.fork()"
        )
        for job in jobs:
            job.close_pipes()
            try:
                job.future._fail_after_fork(error)
            except BaseException:  # a done-callback of the caller's: the others still fail
                logger.exception("procexec: failing a job's future after fork() failed")


def _nothing() -> None:
    """Posted to wake a lane so that it looks at its state again."""


#: Every reaper alive, so that a child made by fork() can disarm its copies.
_live_reapers: WeakSet[Reaper] = WeakSet()


def _about_to_exec() -> bool:
    """Whether this fork handler runs in a child that subprocess is about to exec.

    With a ``preexec_fn``, subprocess runs the at-fork child handlers in the new child
    before it calls the function and then exec: disarming the executor there would fail the
    parent's futures and run their done-callbacks in that child. That child is the one
    whose Python frame, below this handler (called from C), is ``Popen._execute_child``.
    """
    try:
        caller = sys._getframe(2)  # 0: here, 1: the handler, 2: the code that forked
    except ValueError:  # forked from C with no Python code running
        return False
    code = caller.f_code
    return code.co_name == "_execute_child" and caller.f_globals.get("__name__") == "subprocess"


def _after_fork_in_child() -> None:
    if _about_to_exec():
        return
    for reaper in list(_live_reapers):
        reaper.forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
