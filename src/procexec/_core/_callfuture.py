"""CallFuture: the future of a Python call run in a worker process, and how a call fails.

A call's future is a :class:`concurrent.futures.Future` with one deliberate difference:
``cancel()`` of a *running* call stops it. The worker's process group gets the executor's
termination sequence, the future ends CANCELLED at once (its waiters wake), and the slot is
given back once the worker is reaped. A stopped call has no result, so CANCELLED is its
honest end. A future no executor runs (made by hand) keeps the standard behaviour.
"""

from __future__ import annotations

import reprlib
from concurrent.futures import InvalidStateError
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)
from typing import TYPE_CHECKING, TypeVar

from procexec._core._future import BoundFuture

if TYPE_CHECKING:
    from procexec._core._calljob import CallJob

T = TypeVar("T")


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
