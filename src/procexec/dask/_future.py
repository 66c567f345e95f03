"""What the client gives back: :class:`DaskFuture`, and the errors of a job the cluster
lost (:class:`WorkerLostError`, :class:`SchedulerLostError`)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

from procexec._core import invoke_callbacks
from procexec.dask._wire import CALL, SUBMIT

_T = TypeVar("_T")


class Remote(Protocol):
    """What a DaskFuture asks of its executor (``DaskExecutor`` implements it)."""

    def cancel_remote(self, future: DaskFuture[Any]) -> None:
        """Never start the job, or kill it where it runs."""

    def stop_remote(self, future: DaskFuture[Any], *, kill: bool) -> None:
        """Stop the running job on its worker."""


class WorkerLostError(RuntimeError):
    """The worker running a job was lost (killed, crashed, cut off) and no retry was left.

    Attributes:
        worker: the lost worker's address.
    """

    def __init__(self, worker: str) -> None:
        super().__init__(f"the Dask worker {worker} running this job was lost")
        self.worker = worker


class SchedulerLostError(RuntimeError):
    """The client lost the Dask scheduler before the job's outcome came back: Dask gave up
    the job's task. The job may have run, or may still run, on its worker.

    Attributes:
        scheduler: the lost scheduler's address.
    """

    def __init__(self, scheduler: str) -> None:
        super().__init__(
            f"the Dask scheduler {scheduler} was lost (the client lost its connection) "
            "before this job's outcome came back"
        )
        self.scheduler = scheduler


class DaskFuture(Future[_T]):
    """A job on the cluster: a ``concurrent.futures.Future`` of its exit status (``submit``),
    its :class:`procexec.JobResult` (``run``) or a Python call's value (``submit_call``),
    with the worker's address and the pid once it finished (a call's: its worker process's).

    ``cancel()`` means a job not yet started never runs and a running one is killed;
    ``terminate()`` and ``kill()`` stop a running command's process group on its worker, and
    cancel a call (stopping it, as :class:`procexec.CallFuture` does).
    """

    def __init__(self, executor: Remote, argv: Any, mode: str = SUBMIT) -> None:
        super().__init__()
        self._executor = executor
        self.args = argv  # a call's: the function's name
        self._mode = mode
        self.key = ""
        self.attempts = 0
        #: The address of the worker that ran the job, once it finished.
        self.worker: str | None = None
        #: The job's process id on that worker, once it finished.
        self.pid: int | None = None
        #: Wall-clock time (``time.time()``) when the client learnt the job's end.
        self.ended_at: float | None = None
        self._task: Any = None  # the Dask future of the current attempt
        self._state_lock = threading.Lock()

    @property
    def value_is_exit_status(self) -> bool:
        """Whether the value is a command's exit status (a call's is its own)."""
        return self._mode == SUBMIT

    def cancel(self) -> bool:
        """Cancel the job unless it has finished: one not started never runs, one that
        runs on a worker is killed (its process group). False once it has finished.

        The client does not learn when a job starts on a worker (one more message per job
        would cost the round trip 15 %), so the future stays pending until it finishes.
        """
        if not super().cancel():
            return False
        self._executor.cancel_remote(self)
        return True

    def terminate(self) -> None:
        """Stop the running job with the termination sequence (its whole process group);
        a call is cancelled (it ends CANCELLED)."""
        if self._mode == CALL:
            self.cancel()
            return
        self._executor.stop_remote(self, kill=False)

    def kill(self) -> None:
        """Send SIGKILL to the running job's process group; a call is cancelled."""
        if self._mode == CALL:
            self.cancel()
            return
        self._executor.stop_remote(self, kill=True)

    def _invoke_callbacks(self) -> None:
        """Run every done-callback once, whatever one raised: SystemExit from a callback
        is logged, and the executor's collector thread, which resolves every job, lives
        on (on a caller's thread, as in ``cancel()``, it is raised once all have run)."""
        invoke_callbacks(self)

    def _ensure_running(self) -> bool:
        """Mark the future running if it is pending; False if it is cancelled or done."""
        self.ended_at = time.time()  # only ever called as the job ends
        with self._state_lock:
            if self.running():
                return True
            if self.done():
                return False
            return self.set_running_or_notify_cancel()
