"""ProcessFuture: a concurrent.futures.Future that knows its child process.

A future knows its job (``_job.py``) and, through :class:`JobControl`, the one thing above
it that can act on a running job: the executor's reaper. That protocol is everything a
future asks of its executor; the reaper implements it, and this module never imports it.
"""

from __future__ import annotations

import contextlib
import logging
import reprlib
import subprocess
import threading
from collections.abc import Callable, Coroutine, Generator
from concurrent.futures import Future, InvalidStateError
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from procexec._core._failures import invoke_callbacks

if TYPE_CHECKING:
    from procexec._core._job import Job
    from procexec._rusage import Rusage

T = TypeVar("T")

logger = logging.getLogger("procexec")


class JobControl(Protocol):
    """What a future may ask of the executor that runs its job (the reaper implements it)."""

    def stop_job(self, job: Job, *, kill: bool) -> None:
        """Start stopping ``job`` if it runs: the termination sequence, or SIGKILL."""

    def wait_for_progress(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` is true, testing it whenever jobs start or finish."""


def _short(value: object) -> str:
    """A result, briefly: an exit status as is, a JobResult by its class and status."""
    if isinstance(value, int):
        return str(value)
    return f"{type(value).__name__}(returncode={getattr(value, 'returncode', '?')})"


class BoundFuture(Future[T], Coroutine[Any, Any, T]):
    """What the futures of every kind of job share: the job they are bound to, the
    executor's :class:`JobControl`, the timing, awaiting, and the engine's side of the
    future (``JobFuture`` in ``_job.py``). Its subclasses are the public futures.

    For asyncio a job's future is also a coroutine (``send``, ``throw``, ``close``), so
    that a task cancelled before its first step stops the job too (``_awaiting.py`` says
    why).
    """

    #: The coroutines of the asyncio tasks that run this future (``_awaiting.step``).
    _drivers: dict[object, Coroutine[Any, Any, Any]] | None = None

    def __init__(self) -> None:
        super().__init__()
        self._job: Job | None = None
        self._control: JobControl | None = None

    def _bind(self, job: Job, control: JobControl) -> None:
        self._job = job
        self._control = control

    @property
    def started_at(self) -> float | None:
        """Wall-clock time (``time.time()``) when the job started, or None before: a
        command's child was started; a call was given to a worker."""
        job = self._job
        return job.started_wall if job is not None and job.popen is not None else None

    @property
    def ended_at(self) -> float | None:
        """Wall-clock time when the job ended, or None before: a command's child was reaped;
        a call's outcome came in (or, stopped or lost, its worker was reaped). For a job
        that failed (it could not start, or its handling failed) the time it failed.

        Measured on the monotonic clock from ``started_at``, so ``ended_at - started_at``
        is :attr:`duration` even if the system clock is changed meanwhile.
        """
        job = self._job
        if job is None or job.ended_mono is None:
            return None
        return job.started_wall + (job.ended_mono - job.started_mono)

    @property
    def duration(self) -> float | None:
        """Seconds from the job's start to its end, as :attr:`started_at` and
        :attr:`ended_at` say (0 for a job that could not start), or None until then. A call
        given to a worker started for it counts that start and the initializer."""
        job = self._job
        if job is None or job.ended_mono is None:
            return None
        return job.ended_mono - job.started_mono

    @property
    def rusage(self) -> Rusage | None:
        """The job's CPU time and peak memory (as ``JobResult.rusage``), or None until it
        ended or where it cannot be known. A command's is set for every way it ends, a
        timeout or a failed check included; a call's only when it returned or raised: its
        worker's figures across the call (docs/api.md, ``CallFuture``)."""
        job = self._job
        if job is None or job.usage is None:
            return None
        from procexec._rusage import Rusage  # noqa: PLC0415  # a dataclass: loaded on use

        return Rusage.from_figures(job.usage)

    @property
    def timed_out(self) -> bool:
        """True when the job was stopped because its ``timeout`` expired."""
        return self._job is not None and self._job.timed_out

    def wait_started(self, timeout: float | None = None) -> bool:
        """Wait until the job has started (a command's child started, a call given to a
        worker) or the future is done.

        Returns True if that happened within ``timeout`` seconds (None: no limit).
        """
        if self._control is None:
            return self.done()
        return self._control.wait_for_progress(lambda: self._started() or self.done(), timeout)

    def _started(self) -> bool:
        return self._job is not None and self._job.popen is not None

    def __await__(self) -> Generator[Any, None, T]:
        """``await future``: the job's result, in asyncio. Cancelling the awaiting task
        stops the job: cancelled if it waits; if it runs, a command is stopped and reaped
        before the cancellation goes on, and a call is stopped and its future cancelled at
        once (:mod:`procexec.aio`)."""
        from procexec._core._awaiting import wait_job  # noqa: PLC0415  # asyncio only on use

        return wait_job(self).__await__()

    def send(self, value: Any, /) -> Any:
        """The coroutine protocol, for asyncio's task that runs this future as its
        coroutine (``asyncio.ensure_future(future)``, ``gather``, ``wait_for``)."""
        from procexec._core._awaiting import step  # noqa: PLC0415  # asyncio only on use

        if self._drivers is None:
            self._drivers = {}
        return step(self, self._drivers, value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
        /,
    ) -> Any:
        """The coroutine protocol: a cancellation thrown in stops the job, even before
        the first ``send()`` (the task was cancelled before its first step)."""
        from procexec._core._awaiting import step  # noqa: PLC0415  # asyncio only on use

        if isinstance(typ, BaseException):
            error = typ
        else:
            error = val if isinstance(val, BaseException) else typ() if val is None else typ(val)
        if tb is not None:
            error = error.with_traceback(tb)
        if self._drivers is None:
            self._drivers = {}
        return step(self, self._drivers, None, error)

    def close(self) -> None:
        """The coroutine protocol: close the current task's coroutine of this future."""
        if self._drivers:
            from procexec._core._awaiting import close  # noqa: PLC0415  # asyncio only on use

            close(self._drivers)

    def _invoke_callbacks(self) -> None:
        """Run every done-callback once, whatever an earlier one raised (see
        :func:`invoke_callbacks`)."""
        invoke_callbacks(self)

    def _fail(self, error: BaseException) -> None:
        """Resolve with ``error`` from any state but done; a cancelled future stays so."""
        if self.done():
            return
        if not self.running() and not self.set_running_or_notify_cancel():
            return  # it was cancelled while it waited
        if self._job is not None:
            self._job.failed_now()  # its end time: now
        with contextlib.suppress(InvalidStateError):
            self.set_exception(error)

    def _release_if_held_here(self) -> None:
        """Give back this future's lock if the calling thread holds it (see Reaper.join)."""
        while self._condition._is_owned():  # type: ignore[attr-defined]
            self._condition.release()

    def _fail_after_fork(self, error: BaseException) -> None:
        """In a child made by fork(), resolve this inherited future with ``error``.

        A parent thread may have held the future's lock at the fork, and would never
        release it here; and the parent's waiters do not exist here. Both are replaced
        before the future is resolved (this runs with no other thread alive).
        """
        self._condition = threading.Condition()
        self._waiters = []
        if not self.done():
            self.set_exception(error)

    def _stop(self, *, kill: bool) -> None:
        if self._job is not None and self._control is not None:
            self._control.stop_job(self._job, kill=kill)


class ProcessFuture(BoundFuture[T]):
    """The future of one command run by a :class:`~procexec.ProcessExecutor`.

    It behaves exactly like :class:`concurrent.futures.Future` (``cancel()`` only succeeds
    while the job waits for a free slot) and adds what a process has: ``pid``, ``popen``,
    ``terminate()``, ``kill()``, ``wait_started()`` and ``timed_out``.
    """

    @property
    def args(self) -> Any:
        """The argv (or shell command line) as given to ``submit``/``run``; None if unbound."""
        return self._job.argv if self._job is not None else None

    @property
    def popen(self) -> subprocess.Popen[bytes] | None:
        """The job's ``subprocess.Popen``, or None until the child has been started.

        Its ``returncode`` is set when the executor reaps the child, so ``poll()`` and
        ``wait()`` keep working; read output through ``ProcessExecutor.run`` rather than
        from its pipes, which the executor drains.
        """
        return self._job.popen if self._job is not None else None

    @property
    def pid(self) -> int | None:
        """The child's process id, or None until it has been started."""
        popen = self.popen
        return popen.pid if popen is not None else None

    @property
    def requeues(self) -> int:
        """How many times the job was stopped to free memory (``memfree``) and queued
        again; it then ran again from the start."""
        return self._job.requeues if self._job is not None else 0

    @property
    def limit_hit(self) -> str | None:
        """For a finished job run with ``limits=`` that failed, the limit it most likely
        ran into (as ``JobResult.limit_hit``), else None."""
        job = self._job
        if job is None or job.ended_mono is None or job.popen is None:
            return None
        returncode = job.popen.returncode
        return None if returncode is None else job.limit_hit(returncode)

    def terminate(self) -> None:
        """Stop this job, if running, with the executor's termination sequence.

        The signals go to the job's process group (its grandchildren too) unless the job
        runs in the caller's group. The future then resolves to the negative number of the
        signal that ended the child. No effect on a job that has not started (use
        ``cancel()``) or has finished. Returns at once; the signals are sent by the reaper.
        """
        self._stop(kill=False)

    def kill(self) -> None:
        """Like :meth:`terminate`, but send SIGKILL at once, with no grace period."""
        self._stop(kill=True)

    def __repr__(self) -> str:
        """``<ProcessFuture ['sleep', '60'] pid=1234 running>``; the command shortened."""
        command = reprlib.repr(self.args) if self._job is not None else "(unbound)"
        pid = self.pid
        where = f" pid={pid}" if pid is not None else ""
        with self._condition:
            state = "cancelled" if self._state.startswith("CANCELLED") else self._state.lower()
            if state == "finished":
                if self._exception is not None:
                    state += f" raised {type(self._exception).__name__}"
                else:
                    state += f" returned {_short(self._result)}"
        return f"<ProcessFuture {command}{where} {state}>"
