"""CallFuture: the future of a Python call run in a worker process, and how a call fails.

A call's future is a :class:`concurrent.futures.Future` with one deliberate difference:
``cancel()`` of a *running* call stops it. The worker's process group gets the executor's
termination sequence, the future ends CANCELLED at once (its waiters wake), and the slot is
given back once the worker is reaped. A stopped call has no result, so CANCELLED is its
honest end. A future no executor runs (made by hand) keeps the standard behaviour.
"""

from __future__ import annotations

import reprlib
import signal
from concurrent.futures import InvalidStateError
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, TypeVar

from procexec._core._future import BoundFuture

if TYPE_CHECKING:
    from procexec._core._calljob import CallJob

T = TypeVar("T")


class CallLost(BrokenProcessPool):
    """The worker running a call died (a signal, the OOM killer, a segfault, ``os._exit``),
    could not read the call, or sent a result this process cannot unpickle. Only that call
    fails; the executor goes on. A :class:`concurrent.futures.process.BrokenProcessPool`,
    so that code written for CPython's pool and loky keeps working.

    Attributes:
        pid: the worker's process id, if it had started.
        returncode: how the worker ended (negative: the signal), or None if it lives on.
        stderr: the last 2 KiB the worker wrote to ``sys.stderr`` (a copy: its standard
            error itself is this process's), and after a crash faulthandler's traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        pid: int | None = None,
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message + (f"; its last standard error:\n{stderr}" if stderr else ""))
        self.message = message
        self.pid = pid
        self.returncode = returncode
        self.stderr = stderr

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with what it was made of (a Dask worker sends it to the client)."""
        return (_call_lost, (self.message, self.pid, self.returncode, self.stderr))


class InitializerError(BrokenProcessPool):
    """The ``initializer`` of the worker given a call failed; that call fails with this.
    After three failed worker starts in a row, the calls already queued fail with it at
    once; a call submitted later tries again.

    Attributes:
        traceback: the initializer's traceback, as the worker printed it.
    """

    def __init__(self, traceback: str) -> None:
        last = traceback.strip().splitlines()[-1] if traceback.strip() else "unknown error"
        super().__init__(f"the worker's initializer failed: {last}\n{traceback}")
        self.traceback = traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.traceback,))


class CallTimeout(TimeoutError):  # noqa: N818  # the name reads as what happened
    """A call ran past the ``timeout`` of :meth:`~procexec.ProcessExecutor.run_call`: its
    worker was stopped and replaced.

    Attributes:
        timeout: the timeout, in seconds, counted from the call's start.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the call did not finish within {timeout:g} s of its start")
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.timeout,))


def _call_lost(message: str, pid: int | None, returncode: int | None, stderr: str) -> CallLost:
    return CallLost(message, pid=pid, returncode=returncode, stderr=stderr)


def lost_because(returncode: int) -> str:
    """How a worker's end reads in a :class:`CallLost` message."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"


class CallFuture(BoundFuture[T]):
    """The future of one call run by :meth:`~procexec.ProcessExecutor.submit_call`,
    ``run_call`` or ``map_calls``.

    A ``concurrent.futures.Future`` whose ``cancel()`` also stops a running call (see the
    module doc; ``terminate()`` does the same, ``kill()`` with SIGKILL at once), and which
    knows its call: ``pid`` (the worker's), ``started_at``, ``ended_at``, ``duration``,
    ``queued_for``, ``rusage``, ``timed_out`` and ``wait_started()``.
    """

    _job: CallJob | None

    #: A call's value is its own, never an exit status (progress bars count only errors).
    value_is_exit_status = False

    @property
    def function(self) -> str | None:
        """The called function's qualified name, or None if unbound."""
        return self._job.name if self._job is not None else None

    @property
    def pid(self) -> int | None:
        """The process id of the worker that runs (or ran) the call; None before."""
        return self._job.worker_pid if self._job is not None else None

    @property
    def queued_for(self) -> float | None:
        """Seconds the call waited for a slot (from its submission to its start); None
        until it started."""
        job = self._job
        if job is None or (job.popen is None and job.ended_mono is None):
            return None
        return max(0.0, job.started_mono - job.queued_mono)

    def cancel(self) -> bool:
        """Cancel the call: one waiting never runs; one running is stopped (its worker's
        process group gets the termination sequence) and the future is CANCELLED at once.
        False once it has finished, or for a future no executor runs."""
        return self._cancel(kill=False)

    def terminate(self) -> None:
        """Cancel the call, stopping it if it runs with the termination sequence (as
        :meth:`cancel`)."""
        self._cancel(kill=False)

    def kill(self) -> None:
        """Cancel the call, stopping it if it runs with SIGKILL at once (also hurries a
        stop under way)."""
        self._cancel(kill=True)

    def _cancel(self, *, kill: bool) -> bool:
        job = self._job
        with self._condition:
            state = self._state
            if state == FINISHED:
                return False
            if state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                if not (kill and job is not None and job.stopping):
                    return True
                action = "stop"  # a kill() hurries the stop of a call cancelled earlier
            elif state == PENDING:
                self._state = CANCELLED  # as Future.cancel(): the lane drops it when taken
                self._condition.notify_all()
                action = "callbacks"
            elif job is not None and self._control is not None:
                self._state = CANCELLED_AND_NOTIFIED  # RUNNING: stopped, and told to waiters
                job.stopping = True
                for waiter in self._waiters:
                    waiter.add_cancelled(self)
                self._condition.notify_all()
                action = "stop and callbacks"
            else:
                return False  # running, but no executor of ours runs it
        if action.startswith("stop"):
            self._stop(kill=kill)
        if action.endswith("callbacks"):
            self._invoke_callbacks()
        return True

    def _settle(self, value: object, error: BaseException | None) -> None:
        """The call's outcome, unless it was cancelled meanwhile (engine side)."""
        try:
            if error is not None:
                self.set_exception(error)
            else:
                self.set_result(value)  # type: ignore[arg-type]  # the call's own value
        except InvalidStateError:
            pass  # cancelled while its outcome was on its way

    def __repr__(self) -> str:
        """``<CallFuture summarize pid=1234 running>``."""
        name = reprlib.repr(self._job.name) if self._job is not None else "(unbound)"
        pid = self.pid
        where = f" pid={pid}" if pid is not None and self._state == RUNNING else ""
        with self._condition:
            state = "cancelled" if self._state.startswith("CANCELLED") else self._state.lower()
            if self._state == FINISHED:
                error = self._exception
                state += f" raised {type(error).__name__}" if error else " returned"
        return f"<CallFuture {name.strip(chr(39))}{where} {state}>"
