"""The worker processes of a lane: they run Python calls, each worker one call at a time.

A worker is a child of the lane like a command's: a fresh interpreter (``_worker_main.py``,
started by fork+exec as commands are, never by a ``fork()`` of this threaded process) in a
process group of its own, whose exit the lane's watcher reports at once. Its pipes carry
one length-prefixed message per call each way; its process group is what stopping a call
kills.

```
 the lane takes a call ──► an idle worker, else a new one (the init message first)
                           write the call (non-blocking; the rest when the pipe drains)
 results pipe readable ──► frames: "ok"/"error" settle the call, the slot goes back,
                           the worker is idle (or retired: max_tasks, limits, over max_jobs)
 report pipe readable ──► the last 2 KiB kept: what the worker wrote to sys.stderr and
                           faulthandler's traceback (its stderr itself is this process's)
 the worker exits ──────► reaped; its call, if any: cancelled (stopped by its future),
                           CallTimeout, InitializerError, or CallLost naming the cause
 idle past idle_timeout, or the reaper draining ──► retired: its tasks pipe closed
```

Every event of a worker that runs a call is handled under the lane's containment, so a
failure while handling it fails that call alone. Only the lane's thread uses a pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from procexec._core import _worker_main
from procexec._core._calljob import CallJob
from procexec._core._job import Job
from procexec._core._platform import ExitWatcher
from procexec._core._poller import Poller
from procexec._core._resources._guardian import GUARDIAN
from procexec._core._resources._limits import with_more_files
from procexec._core._resources._rlimits import limited
from procexec._core._stops import Stops, send_signal
from procexec._core._streams import READ_SIZE, READS_PER_EVENT, WRITE_SIZE
from procexec._core._workerspec import WorkerSpec

logger = logging.getLogger("procexec")

_PROGRAM = str(Path(_worker_main.__file__).resolve())
#: How much of what a worker wrote to its stderr a CallLost quotes.
STDERR_TAIL = 2048
#: Failed worker starts in a row after which the calls already queued fail at once.
MAX_FAILED_STARTS = 3


class PoolHost(Protocol):
    """What a pool needs of its lane beyond the poller and watcher it is attached to."""

    def contain(self, handle: Callable[[], None], job: Job) -> None:
        """Run ``handle()``, an event of ``job``; what it raises fails that job alone."""

    def call_ended(self, job: CallJob) -> None:
        """``job``'s outcome is in (or it was stopped): its slot goes back."""

    def worker_limit(self) -> int:
        """How many workers may live: ``max_jobs``, or 0 while the reaper drains."""


class Worker:
    """One worker process, and the lane's ends of its pipes."""

    __slots__ = (
        "call",
        "calls_run",
        "dedicated",
        "guard_slot",
        "idle_since",
        "init_error",
        "lifeline",
        "outbox",
        "popen",
        "reader",
        "ready",
        "report",
        "results",
        "retiring",
        "tail",
        "tasks",
    )

    def __init__(
        self, popen: subprocess.Popen[bytes], tasks: int, results: int, lifeline: int, report: int
    ) -> None:
        self.popen = popen
        self.tasks: int | None = tasks  # write end of its tasks pipe; None once closed
        self.results: int | None = results
        self.lifeline = lifeline  # only this process writes to it: its end tells the worker
        self.report: int | None = report  # a copy of its stderr, crash traceback included
        self.reader = _worker_main.FrameReader()
        self.outbox = memoryview(b"")  # bytes still to write to the tasks pipe
        self.tail = b""  # the last STDERR_TAIL bytes of its stderr
        self.call: CallJob | None = None
        self.calls_run = 0
        self.idle_since = time.monotonic()
        self.ready = False  # its initializer has run
        self.init_error: str | None = None
        self.retiring = False
        self.dedicated = False  # started for one call with limits: retired after it
        self.guard_slot = 0

    @property
    def pid(self) -> int:
        return self.popen.pid


class Pool:
    """The workers of one lane."""

    def __init__(
        self, spec: WorkerSpec, host: PoolHost, running: dict[int, Job], stops: Stops
    ) -> None:
        self._spec = spec
        self._host = host
        self._running = running  # the lane's: a running call is there under its worker's pid
        self._stops = stops
        self._workers: dict[int, Worker] = {}
        self._idle: list[Worker] = []
        self._failed_starts = 0
        self._gave_up_at = -1.0  # when starts last failed MAX_FAILED_STARTS times in a row
        self._last_init_error = ""
        self._poller: Poller | None = None
        self._watcher: ExitWatcher | None = None

    # ------------------------------------------------------------- the lane's calls
    def attach(self, poller: Poller, watcher: ExitWatcher) -> None:
        """Use this run of the lane's loop (it has no worker when it begins)."""
        self._poller, self._watcher = poller, watcher

    @property
    def idle_count(self) -> int:
        """Workers waiting for a call (read from any thread, for stats)."""
        return len(self._idle)

    def has_workers(self) -> bool:
        """Whether any worker lives (the lane's loop must run until none does)."""
        return bool(self._workers)

    def start(self, job: CallJob) -> bool:
        """Give ``job`` to a worker; False if it failed at once (its slot is back then)."""
        if self._failed_starts >= MAX_FAILED_STARTS and job.queued_mono <= self._gave_up_at:
            from procexec._core._callerrors import InitializerError  # noqa: PLC0415

            self._fail(job, InitializerError(self._last_init_error))
            return False
        worker = self._worker_for(job)
        worker.call = job
        job.worker_pid = worker.pid
        job.started(worker.popen)
        if not worker.ready:
            job.deadline = None  # its timeout counts once the worker is ready (_on_ready)
        self._running[worker.pid] = job
        self._stops.watch(job)
        payload, job.payload = job.payload, None
        assert payload is not None
        self._send(worker, _worker_main.frame(payload))
        return True

    def prestart(self, count: int, guarded: bool) -> None:
        """Start ``count`` idle workers now (``WorkerOptions.prestart``)."""
        for _ in range(max(0, min(count, self._host.worker_limit()) - len(self._workers))):
            self._idle.append(self._spawn(None, guarded))

    def next_deadline(self) -> float | None:
        """When the longest-idle worker reaches ``idle_timeout``, if any does."""
        if self._spec.idle_timeout is None or not self._idle:
            return None
        return min(w.idle_since for w in self._idle) + self._spec.idle_timeout

    def tidy(self) -> None:
        """Retire the idle workers past ``idle_timeout`` or beyond the worker limit."""
        busy = sum(not worker.retiring for worker in self._workers.values()) - len(self._idle)
        keep = self._host.worker_limit() - busy
        timeout = self._spec.idle_timeout
        now = time.monotonic()
        for worker in list(self._idle):
            if keep <= 0 or (timeout is not None and now - worker.idle_since >= timeout):
                self._retire(worker)
            else:
                keep -= 1

    def abandon(self, job: CallJob) -> None:
        """``job`` failed in the lane's hands: kill and reap its worker (its future is
        failed by the caller)."""
        pid = job.worker_pid
        worker = self._workers.get(pid) if pid is not None else None
        if worker is not None and worker.call is job:
            worker.call = None
            self._kill_and_reap(worker)
        self._running.pop(pid or 0, None)
        self._stops.forget(job)

    def kill_all(self) -> None:
        """The lane's loop failed: kill and reap every worker (their calls are failed by
        the lane)."""
        for worker in list(self._workers.values()):
            with contextlib.suppress(Exception):
                self._kill_and_reap(worker)

    def forget_after_fork(self) -> None:
        """In a child made by ``os.fork()``: the workers are the parent's; close the fds."""
        for worker in self._workers.values():
            for fd in (worker.tasks, worker.results, worker.lifeline, worker.report):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        self._workers.clear()
        self._idle.clear()
        self._poller = self._watcher = None

    # --------------------------------------------------------------- starting
    def _worker_for(self, job: CallJob) -> Worker:
        if job.limits is None and self._idle:
            return self._idle.pop()
        if job.limits is None:
            alive = sum(not worker.retiring for worker in self._workers.values())
            over = alive - self._host.worker_limit() + 1
            for worker in list(self._idle)[: max(0, over)]:
                self._retire(worker)
        worker = self._spawn(job, job.guarded)
        worker.dedicated = job.limits is not None
        return worker

    def _spawn(self, job: CallJob | None, guarded: bool) -> Worker:
        """Start a worker and send it the set-up message."""
        pipes = with_more_files(_pipes)
        (tasks_r, tasks_w), (results_r, results_w), (life_r, life_w), (report_r, report_w) = pipes
        theirs = (tasks_r, results_w, life_r, report_w)
        try:
            popen = with_more_files(partial(self._popen, theirs, job))
        except BaseException:
            _close(tasks_w, results_r, life_w, report_r)
            raise
        finally:
            _close(*theirs)
        worker = Worker(popen, tasks_w, results_r, life_w, report_r)
        self._workers[worker.pid] = worker
        assert self._poller is not None and self._watcher is not None
        for fd in (tasks_w, results_r, report_r):
            os.set_blocking(fd, False)
        self._watcher.watch(worker.pid, partial(self._on_event, worker, self._on_exit))
        self._poller.register(results_r, "read", partial(self._on_event, worker, self._on_results))
        self._poller.register(report_r, "read", partial(self._on_event, worker, self._on_report))
        if guarded:
            worker.guard_slot = GUARDIAN.watch(worker.pid, group=True)
        setup = {"path": list(sys.path), "initializer": self._spec.initializer}
        self._send(worker, _worker_main.frame(pickle.dumps(setup, pickle.HIGHEST_PROTOCOL)))
        return worker

    def _popen(
        self, fds: tuple[int, int, int, int], job: CallJob | None
    ) -> subprocess.Popen[bytes]:
        argv: Any = [sys.executable, _PROGRAM, *(str(fd) for fd in fds)]
        kwargs: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "pass_fds": fds,
            "env": None if self._spec.env is None else {**os.environ, **self._spec.env},
        }
        if sys.version_info >= (3, 11):
            kwargs["process_group"] = 0
        else:  # pragma: no cover - Python 3.10: a session is a process group too
            kwargs["start_new_session"] = True
        if job is not None and job.limits is not None:
            argv = limited(argv, kwargs, job.limits)
        return subprocess.Popen(argv, **kwargs)

    # ----------------------------------------------------------------- events
    def _on_event(self, worker: Worker, handle: Callable[[Worker], None]) -> None:
        """An event of ``worker``: contained as its call's event, if it runs one."""
        job = worker.call
        if job is None:
            try:
                handle(worker)
            except Exception:  # an idle worker's trouble: retire it, nothing else fails
                logger.exception("procexec: handling an idle worker (pid %d) failed", worker.pid)
                self._kill_and_reap(worker)
            return
        self._host.contain(partial(handle, worker), job)

    def _send(self, worker: Worker, data: bytes) -> None:
        """Write ``data`` to the worker's tasks pipe; what does not fit now is written as
        the pipe drains."""
        queued = bool(worker.outbox)
        worker.outbox = memoryview(bytes(worker.outbox) + data) if queued else memoryview(data)
        if not queued:
            self._write(worker)

    def _write(self, worker: Worker) -> None:
        if worker.tasks is None:
            worker.outbox = memoryview(b"")
            return
        try:
            while worker.outbox:
                written = os.write(worker.tasks, worker.outbox[:WRITE_SIZE])
                worker.outbox = worker.outbox[written:]
        except BlockingIOError:
            pass
        except BrokenPipeError:  # the worker is gone: its exit says why
            worker.outbox = memoryview(b"")
        assert self._poller is not None
        registered = self._poller.registered(worker.tasks)
        if worker.outbox and not registered:
            self._poller.register(
                worker.tasks, "write", partial(self._on_event, worker, self._write)
            )
        elif not worker.outbox and registered:
            self._poller.unregister(worker.tasks)

    def _on_results(self, worker: Worker) -> None:
        if worker.results is None:
            return
        for _ in range(READS_PER_EVENT):
            try:
                data = os.read(worker.results, READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                self._close_fd(worker, "results")
                return
            for message in worker.reader.feed(data):
                self._on_message(worker, message)
            if len(data) < READ_SIZE:
                return

    def _on_message(self, worker: Worker, message: bytes) -> None:
        try:
            outcome = pickle.loads(message)
        except BaseException as exc:  # SystemExit from a __reduce__ too: the call's failure
            outcome = ("unreadable", exc)
        kind = outcome[0]
        if kind == "ready":
            self._on_ready(worker)
            return
        if kind == "init-failed":  # it exits next: its exit settles its call
            worker.init_error = str(outcome[1])
            return
        job, worker.call = worker.call, None
        if job is None:
            logger.warning("procexec: worker (pid %d) sent an outcome for no call", worker.pid)
            return
        value, error = _outcome(outcome, worker, job)
        self._finish(job, value, error)
        worker.calls_run += 1
        self._after_call(worker)

    def _on_ready(self, worker: Worker) -> None:
        """The worker has started and run its initializer: the timeout of the call it was
        given meanwhile counts from now (its start-up is not the call's time)."""
        worker.ready = True
        self._failed_starts = 0
        job = worker.call
        if job is not None and job.timeout is not None and job.stop_steps is None:
            job.deadline = time.monotonic() + job.timeout
            self._stops.watch(job)

    def _after_call(self, worker: Worker) -> None:
        """The worker's call is done: idle, or retired."""
        max_tasks = self._spec.max_tasks
        if worker.dedicated or (max_tasks is not None and worker.calls_run >= max_tasks):
            self._retire(worker)
            return
        worker.idle_since = time.monotonic()
        self._idle.append(worker)
        self.tidy()

    def _on_report(self, worker: Worker) -> None:
        """What the worker wrote to sys.stderr, or faulthandler's traceback: the last
        STDERR_TAIL bytes kept (it went to this process's stderr already)."""
        if worker.report is None:
            return
        for _ in range(READS_PER_EVENT):
            try:
                data = os.read(worker.report, READ_SIZE)
            except BlockingIOError:
                return
            if not data:
                self._close_fd(worker, "report")
                return
            worker.tail = (worker.tail + data)[-STDERR_TAIL:]

    def _on_exit(self, worker: Worker) -> None:
        """The worker has exited: read what it left, reap it, settle its call."""
        assert self._watcher is not None
        self._watcher.unwatch(worker.pid)
        self._on_results(worker)
        self._on_report(worker)
        job = worker.call
        if job is not None and job.stop_steps is not None:
            send_signal(job, signal.SIGKILL)  # what is left of its group goes with it
        returncode = self._reap(worker)
        stopped = job is not None and job.stop_steps is not None  # by us: not its failure
        if not worker.ready and not stopped:
            self._start_failed(worker, returncode)
        if job is not None:
            worker.call = None
            self._finish(job, None, self._lost(job, worker, returncode))

    def _lost(self, job: CallJob, worker: Worker, returncode: int) -> BaseException | None:
        """What a call whose worker ended under it becomes (None: cancelled)."""
        from procexec._core._callerrors import (  # noqa: PLC0415  # on a failure
            CallLost,
            CallTimeout,
            InitializerError,
            lost_because,
        )

        if job.stopping:
            return None
        if job.timed_out and job.timeout is not None:
            return CallTimeout(job.timeout)
        if job.stop_steps is not None:  # stopped by the executor: terminate_jobs(), abort
            job.future.cancel()  # no result, as when stopped through its future
            return None
        if worker.init_error is not None:
            return InitializerError(worker.init_error)
        tail = worker.tail.decode(errors="replace")
        why = f"the worker (pid {worker.pid}) running this call {lost_because(returncode)}"
        return CallLost(why, pid=worker.pid, returncode=returncode, stderr=tail)

    def _start_failed(self, worker: Worker, returncode: int) -> None:
        """A worker ended before it was ready: count it; give up on the queued calls after
        MAX_FAILED_STARTS in a row."""
        from procexec._core._callerrors import lost_because  # noqa: PLC0415  # on a failure

        self._failed_starts += 1
        self._last_init_error = worker.init_error or (
            f"the worker (pid {worker.pid}) {lost_because(returncode)} before it was ready\n"
            + worker.tail.decode(errors="replace")
        )
        if self._failed_starts >= MAX_FAILED_STARTS:
            self._gave_up_at = time.monotonic()

    # ---------------------------------------------------------------- endings
    def _finish(self, job: CallJob, value: object, error: BaseException | None) -> None:
        """Settle ``job``'s future (unless cancelled) and give its slot back."""
        job.ended_mono = time.monotonic()
        self._running.pop(job.worker_pid or 0, None)
        self._stops.forget(job)
        if not job.stopping:
            job.future._settle(value, error)  # type: ignore[attr-defined]  # a CallFuture
        job.let_go()
        self._host.call_ended(job)

    def _fail(self, job: CallJob, error: BaseException) -> None:
        job.failed_now()
        job.payload = None
        job.future._fail(error)
        job.let_go()
        self._host.call_ended(job)

    def _retire(self, worker: Worker) -> None:
        """Let the worker end: its tasks pipe closes, so it exits when it has read all."""
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        worker.retiring = True
        if not worker.outbox:
            self._close_fd(worker, "tasks")

    def _kill_and_reap(self, worker: Worker) -> None:
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        if worker.popen.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
        assert self._watcher is not None
        self._watcher.unwatch(worker.pid)
        self._reap(worker)

    def _reap(self, worker: Worker) -> int:
        """Reap the worker and close its fds; its status (as Popen gives it)."""
        if worker.guard_slot:
            GUARDIAN.forget(worker.guard_slot)
            worker.guard_slot = 0
        if worker.popen.returncode is None:
            try:
                _, status = os.waitpid(worker.pid, 0)
                worker.popen.returncode = os.waitstatus_to_exitcode(status)
            except ChildProcessError:
                worker.popen.returncode = 0
        for name in ("tasks", "results", "report"):
            self._close_fd(worker, name)
        _close(worker.lifeline)
        self._workers.pop(worker.pid, None)
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        return worker.popen.returncode

    def _close_fd(self, worker: Worker, name: str) -> None:
        fd: int | None = getattr(worker, name)
        if fd is None:
            return
        setattr(worker, name, None)
        if self._poller is not None:
            with contextlib.suppress(KeyError):
                self._poller.unregister(fd)
        _close(fd)


def _pipes() -> tuple[tuple[int, int], ...]:
    """The tasks, results, lifeline and report pipes of a new worker (close-on-exec: only
    the worker gets its ends, through ``pass_fds``)."""
    made: list[tuple[int, int]] = []
    try:
        for _ in range(4):
            made.append(os.pipe2(os.O_CLOEXEC))
    except BaseException:
        for pair in made:
            _close(*pair)
        raise
    return tuple(made)


def _close(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _outcome(
    outcome: tuple[Any, ...], worker: Worker, job: CallJob
) -> tuple[object, BaseException | None]:
    """A call's value or exception from the worker's message; a message that could not be
    unpickled here, or a call the worker could not read, fails the call with CallLost."""
    kind = outcome[0]
    if kind == "ok":
        job.usage = _figures(outcome[2])
        return outcome[1], None
    if kind == "error":
        job.usage = _figures(outcome[3])
        return None, _with_remote_traceback(outcome[1], outcome[2])
    from procexec._core._callerrors import CallLost  # noqa: PLC0415  # on a failure

    if kind == "unreadable":
        why = f"its result could not be unpickled here: {outcome[1]!r}"
        return None, CallLost(
            f"the call ran in the worker (pid {worker.pid}), but {why}", pid=worker.pid
        )
    return None, CallLost(str(outcome[1]), pid=worker.pid)  # "lost": the call was unreadable


def _figures(usage: tuple[float, float, int, bool]) -> tuple[float, float, int, bool]:
    user, system, kib, own = usage
    return float(user), float(system), int(kib), bool(own)


def _with_remote_traceback(error: BaseException, text: str) -> BaseException:
    """``error`` with the worker's traceback as its cause, as CPython's pool gives it."""
    from concurrent.futures.process import _RemoteTraceback  # noqa: PLC0415

    remote: BaseException = _RemoteTraceback(f'\n"""\n{text}"""')  # type: ignore[arg-type]  # its stub says TracebackType; CPython passes this text
    error.__cause__ = remote
    return error
