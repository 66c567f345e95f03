"""One lane of a reaper: a thread that starts, watches, feeds, stops and reaps its children.

```
 the reaper (LaneHost, under its lock)      one Lane's thread (runs while it has work)
 -------------------------------------      ------------------------------------------
 pending deque, max_jobs, jobs taken  ◄──┐  begin: make the wake pipe (or fail the jobs
 per lane: share of max_jobs, posted     │         it would take: no fd for it)
   deque, wake fd                        │  loop:
                                         │    run posted calls (stop requests, exits
                                         │      seen by fallback waiter threads)
                                         └──  take pending jobs one at a time while this
                                                lane is under its share and the reaper
                                                under max_jobs; start each
                                              wait on the poller (timeout = nearest
                                                deadline):
                                                wake pipe   → drain it
                                                pidfd       → reap the child, resolve
                                                              its future, give its slot back
                                                stdout/err  → append the chunk
                                                stdin       → write the next slice
                                              deadlines passed → next step of the
                                                termination sequence (timeouts start one;
                                                ``_stops.py``)
                                              nothing running or posted here, and no
                                                job waiting or running in any lane → end
 lane_failed(): restart the lane, or    ◄──── the loop raised: kill, reap and fail every
   give up after failures that took           job this lane holds, give their slots back
   no job
```

A lane alone mutates its running set, signals or reaps its children, or touches their
pipes; other threads reach it through its posted deque and a byte on its wake pipe. The
lane's thread makes that pipe when it begins and closes it when it ends, so no fd changes
hands at ``Thread.start()``, which a KeyboardInterrupt may interrupt: the starter then
forgets the thread, which returns at once if it runs at all. It may also never run: an
interrupt inside ``start()``'s wait can leave the lock of threading's own start-up event
held (``Condition.__enter__`` is Python code), and the new thread blocks on it for ever
before it reaches this module. So lanes are daemon threads, and the executor's exit hook,
not the interpreter's join of non-daemon threads, waits for the jobs at exit. Futures are
resolved on the lane's thread with no lock held, so done-callbacks run there and may call
back into the executor.

A failure stays with its job: each event of a job (start, output, input, exit, a stop
step) is handled under :meth:`Lane.contain`, and what it raises kills and reaps that
job's child, fails its future and gives its slot back. If the loop itself fails, every job
the lane holds goes the same way and the lane is handed back to the reaper. What crosses
between a lane and its reaper is listed in ``_lanehost.py``.

Why lanes: ``Popen`` blocks its caller until the child has called ``exec``. With one thread
starting every child, the children that exit meanwhile wait for it; with a lane per core,
one lane starts a child while another reaps and starts the next. The first lane also owns
the worker processes of Python calls (``_workers.py``), lane children like commands.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from typing import TYPE_CHECKING

from procexec._core import _platform
from procexec._core._calljob import CallJob
from procexec._core._failures import (
    contain_callback_errors,
    interrupt_behind,
    job_error,
    logged,
    loop_failure,
)
from procexec._core._job import Job
from procexec._core._lanehost import LaneHost, Run
from procexec._core._poller import Poller
from procexec._core._resources._guardian import GUARDIAN
from procexec._core._resources._limits import explain, with_more_files
from procexec._core._stops import Stops, send_signal
from procexec._core._streams import OutputPipe

if TYPE_CHECKING:
    from procexec._core._workers import Pool

logger = logging.getLogger("procexec")


class Lane:
    """A loop and its children. The fields under "Guarded by host.lock" are shared with
    other threads; the rest belong to the lane's thread."""

    def __init__(self, host: LaneHost, name: str) -> None:
        self._host = host
        self._name = name
        # Guarded by host.lock.
        self.share = 0  # how many of max_jobs this lane may run
        self.taken = 0  # jobs this lane took from the queue and has not given back
        self.barren_failures = 0  # failed runs in a row that took no job
        self._posted: deque[Callable[[], None]] = deque()
        self._run: Run | None = None  # the thread running the loop now, or about to
        self._finishing: Run | None = None  # ended its loop, closing its fds
        self._wake_fd: int | None = None  # write end of the wake pipe, once the thread made it
        self._wake_sent = False
        self._loop_fds: tuple[int, int] | None = None  # the wake pipe, while the loop runs
        # Owned by the lane's thread.
        self._running: dict[int, Job] = {}
        self._stops = Stops(host.term_sequence)
        self._poller: Poller | None = None
        self._watcher: _platform.ExitWatcher | None = None
        self._took_a_job = False  # in this run of the thread: a failure then made progress
        self._pool: Pool | None = None  # the workers of Python calls, once a call came here

    # ------------------------------------------- any thread, host lock held
    def wake_locked(self) -> None:
        """Start the thread if it does not run, else wake it once; may raise RuntimeError
        when a thread cannot be started (and KeyboardInterrupt in the main thread)."""
        if self._run is None:
            self._start_thread_locked()
        elif not self._wake_sent and self._wake_fd is not None:
            # No fd yet: the thread has not begun, and looks at its work when it does.
            self._wake_sent = True
            os.write(self._wake_fd, b"\0")

    def post_locked(self, call: Callable[[], None]) -> None:
        """Run ``call`` on this lane's thread soon; dropped when no thread runs."""
        if self._run is None:
            return
        self._posted.append(call)
        self.wake_locked()

    def forget_thread_locked(self) -> None:
        """The thread is ending: posts are dropped from now on, nobody writes to its wake
        pipe any more, and the next wake-up starts a new thread."""
        if self._run is not None:
            self._finishing = self._run
        self._run = None
        self._wake_fd = None

    def has_thread_locked(self) -> bool:
        """Whether a thread runs this lane's loop, or is about to."""
        return self._run is not None

    def runs_locked(self) -> list[Run]:
        """This lane's runs of its thread that may still be going (to wait for)."""
        return [run for run in (self._run, self._finishing) if run is not None]

    def _start_thread_locked(self) -> None:
        # A daemon: a KeyboardInterrupt inside start() can leave the new thread blocked for
        # ever in threading's own bootstrap (see the module docstring); it must not hold up
        # interpreter exit. Waiting for the jobs at exit is the executor's exit hook's work.
        run = Run(threading.Thread(target=self._main, name=self._name, daemon=True))
        self._run, self._wake_fd, self._wake_sent = run, None, False
        try:
            run.thread.start()
        except BaseException as exc:
            # Not started, or started and interrupted (KeyboardInterrupt) while start()
            # waited for it. Either way it is forgotten: to begin, the thread needs the lock
            # the caller holds, and then finds it is not this lane's thread and returns.
            self._run = None
            raise interrupt_behind(exc) from None

    # ------------------------------------------------------- the lane's thread
    def post(self, call: Callable[[], None]) -> None:
        """Run ``call`` on this lane's thread soon (the exit watchers' hand-over)."""
        with self._host.lock:
            self.post_locked(call)

    def _main(self) -> None:
        contain_callback_errors()
        with self._host.lock:
            run = self._run
        if run is None or run.thread is not threading.current_thread():
            return  # its start was interrupted: the starter forgot this thread
        try:
            self._loop()
        finally:
            run.done.release()  # the very last act: join() may go on

    def _loop(self) -> None:
        loop = self._begin()
        if loop is None:
            return
        poller, wake_read, wake_write = loop
        try:
            self._watcher = _platform.make_exit_watcher(poller, self.post)
            if self._pool is not None:
                self._pool.attach(poller, self._watcher)
            while self._step():
                pass
        except BaseException as exc:  # a bug here must not leave children or futures behind
            logger.exception("procexec: the reaper loop failed; stopping its jobs")
            self._recover(exc)
        finally:
            self._end(poller, wake_read, wake_write)

    def _begin(self) -> tuple[Poller, int, int] | None:
        """This run's poller and wake pipe; None if no pipe can be made (the jobs it would
        take then fail with that error)."""
        error: BaseException | None = None
        with self._host.lock:
            try:
                wake_read, wake_write = with_more_files(_wake_pipe)
            except OSError as exc:
                self.forget_thread_locked()
                error = explain(exc)
            else:
                self._wake_fd, self._loop_fds = wake_write, (wake_read, wake_write)
        if error is not None:
            self._refuse_work(error)
            return None
        self._poller = Poller()
        self._poller.register(wake_read, "read", partial(self._on_wake, wake_read))
        self._took_a_job = False
        return self._poller, wake_read, wake_write

    def _refuse_work(self, error: BaseException) -> None:
        """Fail the jobs this lane may take now with ``error``: it cannot run them."""
        while (taken := self._host.take(self)) is not None:
            job = taken[0]
            job.future._fail(error)
            self._host.give_back(self, job)

    def _end(self, poller: Poller, wake_read: int, wake_write: int) -> None:
        """Close this run's fds once nobody can write to them any more."""
        with self._host.lock:
            if self._run is not None and self._run.thread is threading.current_thread():
                self.forget_thread_locked()  # not forgotten yet: a recovery that failed
            if self._loop_fds == (wake_read, wake_write):
                self._loop_fds = None
        poller.close()
        os.close(wake_read)
        os.close(wake_write)

    def _step(self) -> bool:
        """One turn of the loop; False when the thread should end."""
        for call in self._take_posted():
            call()
        self._start_jobs()
        if self._end_if_idle():
            return False
        self._wait_for_events()
        self._pass_deadlines()
        return True

    def _take_posted(self) -> list[Callable[[], None]]:
        if not self._posted:  # a post after this check comes with a wake-up byte
            return []
        with self._host.lock:
            calls = list(self._posted)
            self._posted.clear()
        return calls

    def _end_if_idle(self) -> bool:
        """End when this lane has nothing to do and neither have the others: a lane that
        ended between two jobs would be started again for the next (a thread and its fds).
        Workers keep it going: idle ones retire after their idle timeout, or at once when
        the reaper drains (``join()``)."""
        if self._running:
            return False
        if self._pool is not None and self._pool.has_workers():
            self._pool.tidy()
            return False
        with self._host.lock:
            if self._posted or self._host.busy_locked():
                return False
            self.forget_thread_locked()
            return True

    def _on_wake(self, wake_read: int) -> None:
        # Drain first, then clear the flag: a wake-up sent in between is either read here
        # or finds the flag still set while its work is already queued for the next step.
        with contextlib.suppress(BlockingIOError):
            os.read(wake_read, 4096)
        with self._host.lock:
            self._wake_sent = False

    def _wait_for_events(self) -> None:
        assert self._poller is not None
        timeout = self._stops.wait_timeout() if self._stops.timed else None
        retire_at = self._pool.next_deadline() if self._pool is not None else None
        if retire_at is not None:
            until = max(0.0, retire_at - time.monotonic())
            timeout = until if timeout is None else min(timeout, until)
        for callback in self._poller.wait(timeout):
            callback()

    # ------------------------------------------------------------- failures
    def contain(self, handle: Callable[[], None], job: Job) -> None:
        """Run ``handle()``, one of ``job``'s events; what it raises fails that job alone."""
        try:
            handle()
        except BaseException as exc:
            logger.debug("procexec: handling the job %r failed", job.argv, exc_info=True)
            self._finish_failed(job, job_error(exc))

    def _finish_failed(self, job: Job, error: BaseException) -> None:
        """The last word on a job that cannot go on: kill and reap its child if it has one,
        close its pipes, fail its future with ``error`` and give its slot back. Every step
        runs even if one before it raised, and is a no-op if already done."""
        with logged("killing and reaping a failed job's child"):
            self._kill_and_reap(job)
        self._forget(job)
        with logged("failing a job's future"):
            job.future._fail(error)
        job.let_go()
        self._host.give_back(self, job)
        self._host.notify_progress()

    def _kill_and_reap(self, job: Job) -> None:
        if isinstance(job, CallJob):
            if self._pool is not None:
                self._pool.abandon(job)
            return
        popen = job.popen
        if popen is None:
            return  # not started
        assert self._watcher is not None
        self._watcher.unwatch(popen.pid)
        if popen.returncode is None:
            send_signal(job, signal.SIGKILL)
            self._reap(job)

    def _forget(self, job: Job) -> None:
        """Drop a failed job: its deadline, its pipes (unread output too)."""
        if job.popen is not None and self._running.get(job.popen.pid) is job:
            del self._running[job.popen.pid]
        self._stops.forget(job)
        for pipe in (job.stdout, job.stderr):
            if pipe is not None and not pipe.closed:
                with logged("closing a failed job's pipe"):
                    self._unregister(pipe.fd)
                    pipe.abandon()
        if job.stdin is not None:
            with logged("closing a failed job's stdin"):
                self._close_input(job)

    def _recover(self, exc: BaseException) -> None:
        """The loop failed with ``exc``: fail every job this lane holds (its child killed
        and reaped first) and hand the lane back to the reaper."""
        error = loop_failure(exc)
        for job in self._host.held_by(self):
            self._finish_failed(job, error)
        if self._pool is not None:
            with logged("killing and reaping the workers of a failed lane"):
                self._pool.kill_all()
        self._running.clear()  # what a failed cleanup left belongs to this failed run
        self._stops.timed.clear()
        self._host.lane_failed(self, error, barren=not self._took_a_job)

    # ------------------------------------------------------------ starting
    def _start_jobs(self) -> None:
        """Start waiting jobs, one at a time, while this lane may take one.

        One at a time: another lane may take the next job while this one waits in Popen.
        """
        started_any = False
        while (taken := self._host.take(self)) is not None:
            job, more = taken
            started_any = self._took_a_job = True
            holds_slot = self._start(job)
            if not more and holds_slot:
                break  # no room left: asking again would only cost the lock
        if started_any:
            self._host.notify_progress()

    def _start(self, job: Job) -> bool:
        """Start ``job``; False if it gave its slot back (cancelled, or it failed)."""
        if not job.requeues:  # a job queued again after a memfree stop is running already
            if self._host.cancelling:
                job.future.cancel()
            if not job.future.set_running_or_notify_cancel():
                self._host.give_back(self, job)
                return False
        if isinstance(job, CallJob):
            return self._start_call(job)
        try:
            popen = with_more_files(partial(_popen, job))
        except BaseException as exc:
            self._finish_failed(job, job_error(exc))
            return False
        job.started(popen)
        self._running[popen.pid] = job  # from here on, a failure still reaps this child
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("procexec: started pid %d: %r", popen.pid, job.argv)
        try:
            if job.guarded:
                job.guard_slot = GUARDIAN.watch(popen.pid, group=job.own_group)
            job.take_pipes()
            self._watch(job, popen.pid)
        except BaseException as exc:  # e.g. no fd for a pidfd: do not keep an unwatched child
            self._finish_failed(job, job_error(exc))
            return False
        return True

    def _start_call(self, job: CallJob) -> bool:
        """Give a call to a worker (one is started if none is idle)."""
        try:
            return self._pool_here().start(job)
        except BaseException as exc:
            self._finish_failed(job, job_error(exc))
            return False

    def _pool_here(self) -> Pool:
        if self._pool is None:
            # Loaded with the first call: a run of commands never needs pickle or workers.
            from procexec._core._workers import Pool  # noqa: PLC0415

            self._pool = Pool(self._host.worker_spec, self, self._running, self._stops)
            assert self._poller is not None and self._watcher is not None
            self._pool.attach(self._poller, self._watcher)
        return self._pool

    # ------------------------------------------- PoolHost: this lane's workers
    def call_ended(self, job: CallJob) -> None:
        """A call's outcome is in (or it was stopped): its slot goes back."""
        self._host.give_back(self, job)
        self._host.notify_progress()

    def worker_limit(self) -> int:
        """How many workers may live: ``max_jobs``; none once the reaper drains and no job
        is left waiting (until then the queued calls reuse the idle workers)."""
        with self._host.lock:
            if self._host.draining and not self._host.waiting_locked():
                return 0
        return self._host.max_jobs

    def prestart_workers(self, count: int, guarded: bool) -> None:
        """On this lane's thread: start ``count`` idle workers (``WorkerOptions.prestart``)."""
        with logged("starting workers ahead of the calls"):
            self._pool_here().prestart(count, guarded)

    def tidy_workers(self) -> None:
        """On this lane's thread: retire the idle workers over the limit (it was lowered)."""
        if self._pool is not None:
            self._pool.tidy()

    def idle_workers(self) -> int:
        """Workers waiting for a call (any thread: a count read without a lock)."""
        return self._pool.idle_count if self._pool is not None else 0

    def _watch(self, job: Job, pid: int) -> None:
        assert self._poller is not None and self._watcher is not None
        watcher = self._watcher
        on_exit = partial(self.contain, partial(self._on_exit, job), job)
        with_more_files(partial(watcher.watch, pid, on_exit))
        for pipe in job.output_pipes():
            on_output = partial(self.contain, partial(self._on_output, pipe), job)
            self._poller.register(pipe.fd, "read", on_output)
        if job.stdin is not None:
            on_input = partial(self.contain, partial(self._on_input, job), job)
            self._poller.register(job.stdin.fd, "write", on_input)
        if job.deadline is not None:
            self._stops.watch(job)

    # ---------------------------------------------------------------- pipes
    def _on_output(self, pipe: OutputPipe) -> None:
        if pipe.closed:  # closed earlier in this same batch of events
            return
        if not pipe.read_available():
            self._close_output(pipe)

    def _unregister(self, fd: int) -> None:
        assert self._poller is not None
        with contextlib.suppress(KeyError):  # not registered: setting the job up failed
            self._poller.unregister(fd)

    def _close_output(self, pipe: OutputPipe) -> None:
        self._unregister(pipe.fd)
        pipe.close()

    def _on_input(self, job: Job) -> None:
        if job.stdin is not None and not job.stdin.write_available():
            self._close_input(job)

    def _close_input(self, job: Job) -> None:
        assert job.stdin is not None
        stdin, job.stdin = job.stdin, None
        self._unregister(stdin.fd)
        stdin.close()

    # ------------------------------------------------------------- exiting
    def _on_exit(self, job: Job) -> None:
        """The child has exited: reap it, collect its output, resolve its future."""
        assert job.popen is not None and self._watcher is not None
        if self._running.get(job.popen.pid) is not job:
            return  # failed and reaped already; a late fallback waiter reports it again
        self._watcher.unwatch(job.popen.pid)
        if job.stop_steps is not None and job.own_group:
            # A job being stopped: what is left of its group goes with it. The leader is
            # not reaped yet, so its pid (the group id) cannot have been reused.
            send_signal(job, signal.SIGKILL)
        returncode, rusage = self._reap(job)
        ended = time.monotonic()
        self._release(job)
        if job.requeue and returncode != 0:  # stopped to free memory: it runs again later
            job.reset_for_requeue()
            self._host.requeue(self, job)
            self._host.notify_progress()
            return
        if job.timed_out:
            job.exited(returncode)
        value, error = job.outcome(returncode, rusage, ended)
        if logger.isEnabledFor(logging.DEBUG):
            job.log_end(returncode, ended)
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)
        job.let_go()
        # Only now may another lane start a job in this slot: a caller never sees more
        # than max_jobs futures started and not done.
        self._host.give_back(self, job)
        self._host.notify_progress()

    def _reap(self, job: Job) -> tuple[int, resource.struct_rusage | None]:
        """Reap the exited child, keeping its Popen consistent for a caller who holds it."""
        popen = job.popen
        assert popen is not None
        if job.guard_slot:  # reaped from here on: its pid may be reused
            GUARDIAN.forget(job.guard_slot)
            job.guard_slot = 0
        # Popen serialises its own waitpid calls with this private lock; holding it keeps a
        # caller's concurrent popen.poll()/wait() from reaping the pid between our check
        # and our wait4 (tests/test_executor.py::test_popen_stays_consistent).
        with getattr(popen, "_waitpid_lock", _NO_LOCK):
            if popen.returncode is not None:  # the caller's poll()/wait() got there first
                return popen.returncode, None
            try:
                _, status, usage = os.wait4(popen.pid, 0)
            except ChildProcessError:  # SIGCHLD ignored: Popen reports 0 in that case too
                popen.returncode = 0
                return 0, None
            popen.returncode = os.waitstatus_to_exitcode(status)
        return popen.returncode, usage

    def _release(self, job: Job) -> None:
        """Forget a reaped job: its deadline and its pipes (drained first). Its slot is given
        back once its future is resolved."""
        assert job.popen is not None
        del self._running[job.popen.pid]
        if self._stops.timed:
            self._stops.forget(job)
        for pipe in job.output_pipes():
            pipe.read_available()  # what the child wrote before it exited is all there
            self._close_output(pipe)
        if job.stdin is not None:
            self._close_input(job)

    # ------------------------------------------------------------- stopping
    def stop_if_running(self, job: Job, kill: bool) -> None:
        """Start stopping ``job`` if this lane runs it (on the lane's thread)."""
        if job.popen is not None and self._running.get(job.popen.pid) is job:
            self.contain(partial(self._stops.begin, job, kill=kill), job)

    def stop_every_running(self, kill: bool) -> None:
        """Start stopping every job this lane runs (on the lane's thread)."""
        for job in list(self._running.values()):
            self.contain(partial(self._stops.begin, job, kill=kill), job)

    def _pass_deadlines(self) -> None:
        if self._stops.timed:
            for job in self._stops.due():
                self.contain(partial(self._stops.deadline_passed, job), job)

    # --------------------------------------------------------------- fork()
    def forget_after_fork(self) -> None:
        """In a child made by ``os.fork()``: drop the parent's thread and close the
        inherited fds (see Reaper.forget_after_fork)."""
        self._run = self._finishing = None
        self._wake_fd = None
        self.taken = 0
        self._posted.clear()
        self._running.clear()
        self._stops.timed.clear()
        if self._watcher is not None:
            self._watcher.forget_after_fork()
        if self._pool is not None:
            self._pool.forget_after_fork()
            self._pool = None
        for fd in self._loop_fds or ():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._poller = self._watcher = self._loop_fds = None


#: Stands in for Popen's own lock where a Popen has none (it is reusable).
_NO_LOCK = nullcontext()


def _popen(job: Job) -> subprocess.Popen[bytes]:
    return subprocess.Popen(job.launch, **job.popen_kwargs)


def _wake_pipe() -> tuple[int, int]:
    """A lane's wake pipe, both ends non-blocking: at most one byte is ever in it."""
    return os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
