"""The reaper: one thread per executor that starts, watches, feeds, stops and reaps children.

```
 caller threads                      the reaper thread (runs while there is work)
 --------------                      --------------------------------------------
 enqueue(job) ──► pending deque ─┐   loop:
 post(fn)     ──► posted deque  ─┼─►   run posted calls (stop requests, exits seen by
 set_max_jobs(n) ───────────────┘        fallback waiter threads)
        │                              start pending jobs while running < max_jobs
        └──► one byte on the wake pipe   wait on the selector (timeout = nearest deadline):
                                           wake pipe   → drain it
                                           pidfd       → reap the child, resolve its future
                                           stdout/err  → append the chunk
                                           stdin       → write the next slice
                                         deadlines passed → next step of the termination
                                           sequence (timeouts start one)
                                       nothing pending, posted or running → the thread ends
```

Only the reaper thread mutates the running set, signals or reaps a child, or touches its
pipes. Other threads reach it through the two deques under ``_lock`` and a byte on the wake
pipe. Futures are resolved on the reaper thread with no lock held, so done-callbacks run
there and may call back into the executor.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from weakref import WeakSet

from procexec import _platform
from procexec._job import Job
from procexec._limits import explain, with_more_files
from procexec._result import Rusage
from procexec._streams import OutputPipe
from procexec._validate import TermSequence

logger = logging.getLogger("procexec")


class Reaper:
    """Runs jobs under a limit on one thread; the methods without a leading underscore are
    safe to call from any thread."""

    def __init__(
        self, max_jobs: int, term_sequence: TermSequence, name: str, *, daemon: bool = False
    ) -> None:
        self.term_sequence = term_sequence
        self._name = name
        self._daemon = daemon  # a daemon thread does not hold up interpreter exit
        #: Notified whenever jobs were started or finished; see ProcessFuture.wait_started.
        self.progress = threading.Condition()
        # _lock guards the fields below it: the hand-over between callers and the thread.
        self._lock = threading.Lock()
        self._max_jobs = max_jobs
        self._pending: deque[Job] = deque()
        self._posted: deque[Callable[[], None]] = deque()
        self._thread: threading.Thread | None = None
        self._finishing: threading.Thread | None = None  # ended its loop, closing its fds
        self._wake_fd: int | None = None  # write end of the wake pipe, while the thread runs
        self._wake_sent = False
        self._closed = False
        self._forked = False  # this is a copy inherited through fork(): refuse work
        # Owned by the reaper thread alone.
        self._running: dict[int, Job] = {}
        self._timed: set[Job] = set()
        self._selector: selectors.BaseSelector | None = None
        self._watcher: _platform.ExitWatcher | None = None
        self._loop_fds: tuple[int, int] | None = None  # the wake pipe, while the loop runs
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
            self._wake_locked()

    def enqueue(self, job: Job) -> None:
        """Queue a job, starting the thread if none runs.

        Raises RuntimeError after close() or in a child process created by fork(), and
        OSError or RuntimeError if the thread cannot be started; the job is then not queued.
        """
        with self._lock:
            if self._forked:
                raise RuntimeError(
                    "this ProcessExecutor was created before os.fork() in the parent process "
                    "and cannot run jobs in the child: create a new ProcessExecutor here"
                )
            if self._closed:
                raise RuntimeError("cannot schedule new jobs after shutdown")
            if self._thread is None:
                self._start_thread_locked()
            else:
                self._wake_locked()
            self._pending.append(job)

    def post(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the reaper thread soon; dropped when no thread runs (no job runs)."""
        with self._lock:
            if self._thread is None:
                return
            self._posted.append(call)
            self._wake_locked()

    def close(self, *, cancel_pending: bool) -> None:
        """Refuse new jobs; with ``cancel_pending``, cancel the jobs not yet started."""
        with self._lock:
            self._closed = True
            cancelled = list(self._pending) if cancel_pending else []
            if cancel_pending:
                self._pending.clear()
        for job in cancelled:
            job.future.cancel()
        self.post(lambda: None)  # let an idle loop notice there is nothing left

    def join(self) -> None:
        """Wait until the thread has finished all work (no-op on the reaper thread)."""
        while True:
            with self._lock:
                threads = [t for t in (self._thread, self._finishing) if t is not None]
            threads = [t for t in threads if t.is_alive() and t is not threading.current_thread()]
            if not threads:
                return
            for thread in threads:
                thread.join()

    def stop_job(self, job: Job, *, kill: bool) -> None:
        """Start stopping ``job`` if it is running."""
        self.post(partial(self._stop_if_running, job, kill))

    def stop_all(self, *, kill: bool) -> None:
        """Start stopping every running job."""
        self.post(partial(self._stop_every_running, kill))

    def _wake_locked(self) -> None:
        """Wake the thread if it runs and was not woken already. Caller holds ``_lock``."""
        if self._thread is not None and not self._wake_sent and self._wake_fd is not None:
            self._wake_sent = True
            os.write(self._wake_fd, b"\0")

    def _start_thread_locked(self) -> None:
        """Start the thread; on failure leave nothing behind and raise. Caller holds ``_lock``."""
        selector, wake_read, wake_write = with_more_files(_open_loop_fds)
        thread = threading.Thread(
            target=self._main,
            args=(selector, wake_read, wake_write),
            name=self._name,
            daemon=self._daemon,
        )
        try:
            thread.start()
        except BaseException:
            _close_loop_fds(selector, wake_read, wake_write)
            raise
        # The thread needs _lock before it looks at any of these, and the caller holds it.
        self._thread, self._wake_fd, self._wake_sent = thread, wake_write, False

    # ------------------------------------------------------- reaper thread
    def _main(self, selector: selectors.BaseSelector, wake_read: int, wake_write: int) -> None:
        selector.register(wake_read, selectors.EVENT_READ, partial(self._on_wake, wake_read))
        self._selector = selector
        self._loop_fds = (wake_read, wake_write)
        try:
            self._watcher = _platform.make_exit_watcher(selector, self.post)
            while self._step():
                pass
        except BaseException as exc:  # a bug here must not leave children or futures behind
            logger.exception("procexec: the reaper loop failed; stopping its jobs")
            self._fail_everything(exc)
        finally:
            if self._loop_fds == (wake_read, wake_write):  # a new run may have begun already
                self._loop_fds = None
            _close_loop_fds(selector, wake_read, wake_write)

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
        with self._lock:
            calls = list(self._posted)
            self._posted.clear()
        return calls

    def _end_if_idle(self) -> bool:
        with self._lock:
            if self._running or self._pending or self._posted:
                return False
            self._finishing, self._thread = self._thread, None
            self._wake_fd = None
            return True

    def _on_wake(self, wake_read: int) -> None:
        # Drain first, then clear the flag: a wake-up sent in between is either read here
        # or finds the flag still set while its work is already queued for the next step.
        with contextlib.suppress(BlockingIOError):
            os.read(wake_read, 4096)
        with self._lock:
            self._wake_sent = False

    def _wait_for_events(self) -> None:
        assert self._selector is not None
        timeout = None
        if self._timed:
            nearest = min(job.deadline for job in self._timed if job.deadline is not None)
            timeout = max(0.0, nearest - time.monotonic())
        for key, _ in self._selector.select(timeout):
            key.data()

    # ------------------------------------------------------------ starting
    def _start_jobs(self) -> None:
        """Start waiting jobs until the limit is reached or none wait."""
        started_any = False
        while batch := self._take_startable():
            for job in batch:
                self._start(job)
            started_any = True
        if started_any:
            self._notify_progress()

    def _take_startable(self) -> list[Job]:
        with self._lock:
            free = min(self._max_jobs - len(self._running), len(self._pending))
            return [self._pending.popleft() for _ in range(free)]

    def _start(self, job: Job) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            popen = with_more_files(partial(_popen, job))
        except Exception as exc:
            job.future.set_exception(explain(exc))
            return
        job.started(popen)
        self._running[popen.pid] = job  # from here on, a failure still reaps this child
        try:
            job.take_pipes()
            self._watch(job, popen.pid)
        except Exception as exc:  # e.g. no fd for a pidfd: do not keep an unwatched child
            self._abandon(job, explain(exc))

    def _watch(self, job: Job, pid: int) -> None:
        assert self._selector is not None and self._watcher is not None
        watcher = self._watcher
        with_more_files(partial(watcher.watch, pid, partial(self._on_exit, job)))
        for pipe in job.output_pipes():
            self._selector.register(pipe.fd, selectors.EVENT_READ, partial(self._on_output, pipe))
        if job.stdin is not None:
            self._selector.register(
                job.stdin.fd, selectors.EVENT_WRITE, partial(self._on_input, job)
            )
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

    # ---------------------------------------------------------------- pipes
    def _on_output(self, pipe: OutputPipe) -> None:
        if pipe.closed:  # closed earlier in this same batch of events
            return
        if not pipe.read_available():
            self._close_output(pipe)

    def _unregister(self, fd: int) -> None:
        assert self._selector is not None
        with contextlib.suppress(KeyError):  # not registered: setting the job up failed
            self._selector.unregister(fd)

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
        self._notify_progress()

    def _reap(self, job: Job) -> tuple[int, Rusage | None]:
        """Reap the exited child, keeping its Popen consistent for a caller who holds it."""
        popen = job.popen
        assert popen is not None
        # Popen serialises its own waitpid calls with this private lock; holding it keeps a
        # caller's concurrent popen.poll()/wait() from reaping the pid between our check
        # and our wait4 (tests/test_executor.py::test_popen_stays_consistent).
        with getattr(popen, "_waitpid_lock", nullcontext()):
            if popen.returncode is not None:  # the caller's poll()/wait() got there first
                return popen.returncode, None
            try:
                _, status, usage = os.wait4(popen.pid, 0)
            except ChildProcessError:  # SIGCHLD ignored: Popen reports 0 in that case too
                popen.returncode = 0
                return 0, None
            popen.returncode = os.waitstatus_to_exitcode(status)
        return popen.returncode, Rusage.from_struct(usage)

    def _release(self, job: Job) -> None:
        """Forget a reaped job: its slot, its deadline, and its pipes (drained first)."""
        assert job.popen is not None
        del self._running[job.popen.pid]
        self._timed.discard(job)
        for pipe in job.output_pipes():
            pipe.read_available()  # what the child wrote before it exited is all there
            self._close_output(pipe)
        if job.stdin is not None:
            self._close_input(job)

    def _notify_progress(self) -> None:
        with self.progress:
            self.progress.notify_all()

    # ------------------------------------------------------------- stopping
    def _stop_if_running(self, job: Job, kill: bool) -> None:
        if job.popen is not None and self._running.get(job.popen.pid) is job:
            self._begin_stop(job, kill=kill)

    def _stop_every_running(self, kill: bool) -> None:
        for job in list(self._running.values()):
            self._begin_stop(job, kill=kill)

    def _begin_stop(self, job: Job, *, kill: bool) -> None:
        if kill:
            job.stop_steps = deque([(int(signal.SIGKILL), 0.0)])
        elif job.stop_steps is None:
            job.stop_steps = deque(self.term_sequence)
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
        """Last resort after a bug in the loop: kill and reap every child, fail every future."""
        with self._lock:
            self._closed = True
            self._thread = None
            self._wake_fd = None
            waiting = list(self._pending)
            self._pending.clear()
        for job in list(self._running.values()):
            self._abandon(job, _failure(exc))
        for job in waiting:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(_failure(exc))
        self._notify_progress()

    # --------------------------------------------------------------- fork()
    def _forget_after_fork(self) -> None:
        """In a child made by ``os.fork()``: the thread and the children are the parent's.

        Runs in the child right after the fork, with no other thread alive there. Locks a
        parent thread held at the fork would stay locked, so they are replaced. Inherited
        fds are closed: a job's stdin pipe still open here would never reach its end.
        Every job's future fails; the executor refuses new jobs.
        """
        self._lock = threading.Lock()
        self.progress = threading.Condition()
        self._forked = self._closed = True
        self._thread = self._finishing = None
        self._wake_fd = None
        jobs = [*self._pending, *self._running.values()]
        self._pending.clear()
        self._posted.clear()
        self._running.clear()
        self._timed.clear()
        if self._watcher is not None:
            self._watcher.forget_after_fork()
        if self._selector is not None and self._loop_fds is not None:
            _close_loop_fds(self._selector, *self._loop_fds)
        self._selector = self._watcher = self._loop_fds = None
        error = RuntimeError(
            "this job belongs to a ProcessExecutor of the parent process; it is not "
            "tracked in the child made by os.fork()"
        )
        for job in jobs:
            job.close_pipes()
            job.future._fail_after_fork(error)


#: Every reaper alive, so that a child made by fork() can disarm its copies.
_live_reapers: WeakSet[Reaper] = WeakSet()


def _after_fork_in_child() -> None:
    for reaper in list(_live_reapers):
        reaper._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _popen(job: Job) -> subprocess.Popen[bytes]:
    return subprocess.Popen(job.argv, **job.popen_kwargs)


def _open_loop_fds() -> tuple[selectors.BaseSelector, int, int]:
    """The selector and the wake pipe (read end non-blocking) for one run of the loop."""
    selector = selectors.DefaultSelector()
    try:
        wake_read, wake_write = os.pipe()
    except BaseException:
        selector.close()
        raise
    os.set_blocking(wake_read, False)
    return selector, wake_read, wake_write


def _close_loop_fds(selector: selectors.BaseSelector, wake_read: int, wake_write: int) -> None:
    selector.close()
    os.close(wake_read)
    os.close(wake_write)


def _failure(exc: BaseException) -> RuntimeError:
    """The error every future gets when the reaper loop itself failed with ``exc``."""
    error = RuntimeError(f"procexec's reaper failed: {exc!r}")
    error.__cause__ = exc
    return error
