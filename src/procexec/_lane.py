"""One lane of a reaper: a thread that starts, watches, feeds, stops and reaps its children.

```
 the Reaper (shared, under its lock)        one Lane's thread (runs while it has work)
 -----------------------------------        ------------------------------------------
 pending deque, max_jobs, jobs taken  ◄──┐  loop:
 per lane: share of max_jobs, posted     │    run posted calls (stop requests, exits
   deque, wake pipe                      │      seen by fallback waiter threads)
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
                                                termination sequence (timeouts start one)
                                              nothing running or posted here, and no
                                                job waiting or running in any lane → end
```

A lane alone mutates its running set, signals or reaps its children, or touches their
pipes; other threads reach it through its posted deque and a byte on its wake pipe.
Futures are resolved on the lane's thread with no lock held, so done-callbacks run there
and may call back into the executor.

Why lanes: ``Popen`` blocks its caller until the child has called ``exec``. With one thread
starting every child, the children that exit meanwhile wait for it; with a lane per core,
one lane starts a child while another reaps and starts the next.
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

from procexec import _platform
from procexec._job import Job
from procexec._limits import explain, with_more_files
from procexec._poller import Poller
from procexec._streams import OutputPipe

if TYPE_CHECKING:
    from procexec._reaper import Reaper

logger = logging.getLogger("procexec")


class Lane:
    """A loop and its children. The fields under "Guarded by reaper._lock" are shared with
    other threads; the rest belong to the lane's thread."""

    def __init__(self, reaper: Reaper, name: str) -> None:
        self._reaper = reaper
        self._name = name
        # Guarded by reaper._lock.
        self.share = 0  # how many of max_jobs this lane may run
        self.taken = 0  # jobs this lane took from the queue and has not given back
        self._posted: deque[Callable[[], None]] = deque()
        self._thread: threading.Thread | None = None
        self._finishing: threading.Thread | None = None  # ended its loop, closing its fds
        self._wake_fd: int | None = None  # write end of the wake pipe, while the thread runs
        self._wake_sent = False
        # Owned by the lane's thread.
        self._running: dict[int, Job] = {}
        self._timed: set[Job] = set()
        self._poller: Poller | None = None
        self._watcher: _platform.ExitWatcher | None = None
        self._loop_fds: tuple[int, int] | None = None  # the wake pipe, while the loop runs

    # ------------------------------------------- any thread, reaper lock held
    def free_locked(self) -> int:
        """How many more jobs this lane may take now."""
        reaper = self._reaper
        if not reaper._pending:
            return 0
        return min(self.share - self.taken, reaper._max_jobs - len(reaper._taken))

    def wake_locked(self) -> None:
        """Start the thread if it does not run, else wake it once; may raise OSError or
        RuntimeError when a thread cannot be started."""
        if self._thread is None:
            self._start_thread_locked()
        elif not self._wake_sent and self._wake_fd is not None:
            self._wake_sent = True
            os.write(self._wake_fd, b"\0")

    def post_locked(self, call: Callable[[], None]) -> None:
        """Run ``call`` on this lane's thread soon; dropped when no thread runs."""
        if self._thread is None:
            return
        self._posted.append(call)
        self.wake_locked()

    def forget_thread_locked(self) -> None:
        """The thread is ending: posts are dropped from now on, and the next wake-up
        starts a new thread."""
        self._thread = None
        self._wake_fd = None

    def threads_locked(self) -> list[threading.Thread]:
        """This lane's threads still to be joined."""
        return [t for t in (self._thread, self._finishing) if t is not None]

    def _start_thread_locked(self) -> None:
        poller, wake_read, wake_write = with_more_files(_open_loop_fds)
        thread = threading.Thread(
            target=self._main,
            args=(poller, wake_read, wake_write),
            name=self._name,
            daemon=self._reaper._daemon,
        )
        try:
            thread.start()
        except BaseException:
            _close_loop_fds(poller, wake_read, wake_write)
            raise
        # The thread needs the lock before it looks at any of these, and the caller holds it.
        self._thread, self._wake_fd, self._wake_sent = thread, wake_write, False

    # ------------------------------------------------------- the lane's thread
    def post(self, call: Callable[[], None]) -> None:
        """Run ``call`` on this lane's thread soon (the exit watchers' hand-over)."""
        with self._reaper._lock:
            self.post_locked(call)

    def _main(self, poller: Poller, wake_read: int, wake_write: int) -> None:
        poller.register(wake_read, "read", partial(self._on_wake, wake_read))
        self._poller = poller
        self._loop_fds = (wake_read, wake_write)
        try:
            self._watcher = _platform.make_exit_watcher(poller, self.post)
            while self._step():
                pass
        except BaseException as exc:  # a bug here must not leave children or futures behind
            logger.exception("procexec: the reaper loop failed; stopping its jobs")
            self._fail_everything(exc)
        finally:
            if self._loop_fds == (wake_read, wake_write):  # a new run may have begun already
                self._loop_fds = None
            _close_loop_fds(poller, wake_read, wake_write)

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
        with self._reaper._lock:
            calls = list(self._posted)
            self._posted.clear()
        return calls

    def _end_if_idle(self) -> bool:
        """End when this lane has nothing to do and neither have the others: a lane that
        ended between two jobs would be started again for the next (a thread and its fds)."""
        if self._running:
            return False
        with self._reaper._lock:
            if self._posted or self._reaper._busy_locked():
                return False
            self._finishing = self._thread
            self.forget_thread_locked()
            return True

    def _on_wake(self, wake_read: int) -> None:
        # Drain first, then clear the flag: a wake-up sent in between is either read here
        # or finds the flag still set while its work is already queued for the next step.
        with contextlib.suppress(BlockingIOError):
            os.read(wake_read, 4096)
        with self._reaper._lock:
            self._wake_sent = False

    def _wait_for_events(self) -> None:
        assert self._poller is not None
        timeout = None
        if self._timed:
            nearest = min(job.deadline for job in self._timed if job.deadline is not None)
            timeout = max(0.0, nearest - time.monotonic())
        for callback in self._poller.wait(timeout):
            callback()

    # ------------------------------------------------------------ starting
    def _start_jobs(self) -> None:
        """Start waiting jobs, one at a time, while this lane may take one.

        One at a time: another lane may take the next job while this one waits in Popen.
        """
        started_any = False
        while (taken := self._reaper._take(self)) is not None:
            job, more = taken
            holds_slot = self._start(job)
            started_any = True
            if not more and holds_slot:
                break  # no room left: asking again would only cost the lock
        if started_any:
            self._reaper._notify_progress()

    def _start(self, job: Job) -> bool:
        """Start ``job``; False if it gave its slot back (cancelled, or it failed)."""
        if not job.future.set_running_or_notify_cancel():
            self._reaper._give_back(self, job)
            return False
        try:
            popen = with_more_files(partial(_popen, job))
        except Exception as exc:
            job.future.set_exception(explain(exc))
            self._reaper._give_back(self, job)
            return False
        job.started(popen)
        self._running[popen.pid] = job  # from here on, a failure still reaps this child
        try:
            job.take_pipes()
            self._watch(job, popen.pid)
        except Exception as exc:  # e.g. no fd for a pidfd: do not keep an unwatched child
            self._abandon(job, explain(exc))
            return False
        return True

    def _watch(self, job: Job, pid: int) -> None:
        assert self._poller is not None and self._watcher is not None
        watcher = self._watcher
        with_more_files(partial(watcher.watch, pid, partial(self._on_exit, job)))
        for pipe in job.output_pipes():
            self._poller.register(pipe.fd, "read", partial(self._on_output, pipe))
        if job.stdin is not None:
            self._poller.register(job.stdin.fd, "write", partial(self._on_input, job))
        if job.deadline is not None:
            self._timed.add(job)

    def _abandon(self, job: Job, exc: BaseException) -> None:
        """Kill and reap a child that cannot be watched, and fail its future with ``exc``."""
        assert job.popen is not None and self._watcher is not None
        self._watcher.unwatch(job.popen.pid)
        self._signal(job, signal.SIGKILL)
        self._reap(job)
        self._release(job)
        job.future.set_exception(exc)
        self._reaper._give_back(self, job)

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
        self._unregister(job.stdin.fd)
        job.stdin.close()
        job.stdin = None

    # ------------------------------------------------------------- exiting
    def _on_exit(self, job: Job) -> None:
        """The child has exited: reap it, collect its output, resolve its future."""
        assert job.popen is not None and self._watcher is not None
        if self._running.get(job.popen.pid) is not job:
            return  # already reaped by _abandon; a late fallback waiter reports it again
        self._watcher.unwatch(job.popen.pid)
        if job.stop_steps is not None and job.own_group:
            # A job being stopped: what is left of its group goes with it. The leader is
            # not reaped yet, so its pid (the group id) cannot have been reused.
            self._signal(job, signal.SIGKILL)
        returncode, rusage = self._reap(job)
        ended = time.monotonic()
        self._release(job)
        value, error = job.outcome(returncode, rusage, ended)
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(value)
        # Only now may another lane start a job in this slot: a caller never sees more
        # than max_jobs futures started and not done.
        self._reaper._give_back(self, job)
        self._reaper._notify_progress()

    def _reap(self, job: Job) -> tuple[int, resource.struct_rusage | None]:
        """Reap the exited child, keeping its Popen consistent for a caller who holds it."""
        popen = job.popen
        assert popen is not None
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
        self._timed.discard(job)
        for pipe in job.output_pipes():
            pipe.read_available()  # what the child wrote before it exited is all there
            self._close_output(pipe)
        if job.stdin is not None:
            self._close_input(job)

    # ------------------------------------------------------------- stopping
    def stop_if_running(self, job: Job, kill: bool) -> None:
        """Start stopping ``job`` if this lane runs it (on the lane's thread)."""
        if job.popen is not None and self._running.get(job.popen.pid) is job:
            self._begin_stop(job, kill=kill)

    def stop_every_running(self, kill: bool) -> None:
        """Start stopping every job this lane runs (on the lane's thread)."""
        for job in list(self._running.values()):
            self._begin_stop(job, kill=kill)

    def _begin_stop(self, job: Job, *, kill: bool) -> None:
        if kill:
            job.stop_steps = deque([(int(signal.SIGKILL), 0.0)])
        elif job.stop_steps is None:
            job.stop_steps = deque(self._reaper.term_sequence)
        else:
            return  # already being stopped
        self._next_stop_step(job)

    def _next_stop_step(self, job: Job) -> None:
        assert job.stop_steps is not None
        signum, grace = job.stop_steps.popleft()
        self._signal(job, signum)
        if job.stop_steps:
            job.deadline = time.monotonic() + grace
            self._timed.add(job)
        else:
            job.deadline = None
            self._timed.discard(job)

    def _pass_deadlines(self) -> None:
        if not self._timed:
            return
        now = time.monotonic()
        for job in [job for job in self._timed if job.deadline is not None and job.deadline <= now]:
            if job.stop_steps is None:
                job.timed_out = True
                self._begin_stop(job, kill=False)
            else:
                self._next_stop_step(job)

    def _signal(self, job: Job, signum: int) -> None:
        """Signal the job's process group (or the child alone if it shares ours)."""
        assert job.popen is not None
        if job.popen.returncode is not None:
            return  # reaped behind our back (a caller's wait()): the pid may be reused
        try:
            if job.own_group:
                os.killpg(job.popen.pid, signum)
            else:
                os.kill(job.popen.pid, signum)
        except ProcessLookupError:
            pass

    def _fail_everything(self, exc: BaseException) -> None:
        """Last resort after a bug in the loop: kill and reap this lane's children, fail
        their futures and every waiting job's, and refuse new jobs."""
        waiting = self._reaper._close_after_failure(self)
        for job in list(self._running.values()):
            self._abandon(job, _failure(exc))
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(_failure(exc))
        self._reaper._notify_progress()

    # --------------------------------------------------------------- fork()
    def forget_after_fork(self) -> list[Job]:
        """In a child made by ``os.fork()``: drop the parent's thread, close the inherited
        fds, and return the jobs this lane was running (see Reaper._forget_after_fork)."""
        self._thread = self._finishing = None
        self._wake_fd = None
        self.taken = 0
        jobs = list(self._running.values())
        self._posted.clear()
        self._running.clear()
        self._timed.clear()
        if self._watcher is not None:
            self._watcher.forget_after_fork()
        if self._poller is not None and self._loop_fds is not None:
            _close_loop_fds(self._poller, *self._loop_fds)
        self._poller = self._watcher = self._loop_fds = None
        return jobs


#: Stands in for Popen's own lock where a Popen has none (it is reusable).
_NO_LOCK = nullcontext()


def _popen(job: Job) -> subprocess.Popen[bytes]:
    return subprocess.Popen(job.argv, **job.popen_kwargs)


def _open_loop_fds() -> tuple[Poller, int, int]:
    """The poller and the wake pipe (read end non-blocking) for one run of the loop."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    return Poller(), wake_read, wake_write


def _close_loop_fds(poller: Poller, wake_read: int, wake_write: int) -> None:
    poller.close()
    os.close(wake_read)
    os.close(wake_write)


def _failure(exc: BaseException) -> RuntimeError:
    """The error every future gets when the reaper loop itself failed with ``exc``."""
    error = RuntimeError(f"procexec's reaper failed: {exc!r}")
    error.__cause__ = exc
    return error
