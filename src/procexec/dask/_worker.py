"""The worker side: one :class:`procexec.ProcessExecutor` per Dask worker, and the task
that runs a job on it.

The client registers :class:`WorkerJobs` as a worker plugin; its executor is guarded
(its jobs die with the worker, SIGKILL included) and its ``max_jobs`` is the worker's
``procexec-slots`` resource. Each job's task, a coroutine on the worker's event loop, hands
the command (or the Python call, run by the executor's own workers in the same slots) to
that executor, awaits it and pushes the outcome (``_wire.py``).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from distributed import WorkerPlugin, get_worker

from procexec import CallFuture, ProcessExecutor, ProcessFuture
from procexec.dask._wire import CALL, PLUGIN, RUN, SLOTS, pushed

#: How many "never start this key" marks a worker keeps for jobs cancelled before they ran.
_TOMBSTONES = 10_000


class WorkerJobs(WorkerPlugin):
    """One ProcessExecutor per worker, and its jobs by key."""

    name = PLUGIN

    def __init__(self, term_sequence: Sequence[tuple[int, float]]) -> None:
        self.term_sequence = tuple(term_sequence)

    def setup(self, worker: Any) -> None:
        slots = worker.state.total_resources.get(SLOTS) or worker.state.nthreads
        self.address = worker.address
        self.executor = ProcessExecutor(
            int(slots), term_sequence=self.term_sequence, guardian=True, sigterm=False
        )
        self.lock = threading.Lock()
        self.running: dict[str, ProcessFuture[Any] | CallFuture[Any]] = {}
        self.tombstones: OrderedDict[str, None] = OrderedDict()

    def teardown(self, worker: Any) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor.kill_jobs()

    def start(
        self, key: str, argv: Any, kwargs: dict[str, Any], mode: str
    ) -> ProcessFuture[Any] | CallFuture[Any] | None:
        """Hand a job to the executor, unless it was cancelled before it got here."""
        with self.lock:
            if key in self.tombstones:
                del self.tombstones[key]
                return None
            future: ProcessFuture[Any] | CallFuture[Any]
            if mode == CALL:  # argv is the function; kwargs run_call's own
                future = self.executor.run_call(argv, **kwargs)
            elif mode == RUN:
                future = self.executor.run(argv, **kwargs)
            else:
                future = self.executor.submit(argv, **kwargs)
            self.running[key] = future
        return future

    def finished(self, key: str) -> None:
        with self.lock:
            self.running.pop(key, None)

    def stop(self, key: str, kill: bool) -> bool:
        """Stop the job ``key`` if it runs here; else make sure it never starts here."""
        with self.lock:
            future = self.running.get(key)
            if future is None:
                self.tombstones[key] = None
                while len(self.tombstones) > _TOMBSTONES:
                    self.tombstones.popitem(last=False)
                return False
        if kill:
            future.kill()
        else:
            future.terminate()
        return True


async def run_on_worker(
    key: str, argv: Any, kwargs: dict[str, Any], mode: str
) -> tuple[Any, ...] | None:
    """The Dask task of one job, run on the worker's event loop (no task thread: the job
    runs on the executor's lanes). Its outcome is ``("ok", value, worker, pid)``,
    ``("error", exception, worker, pid)`` or ``("cancelled",)``; ordinary failures are
    values, so that Dask logs no task error for a job that failed. A small outcome is
    pushed to the client and the task gives None; a large one is the task's result."""
    worker = get_worker()
    jobs = worker.plugins.get(PLUGIN)
    if not isinstance(jobs, WorkerJobs):
        raise RuntimeError(
            f"procexec's worker plugin is not on the Dask worker {worker.address} "
            "(unregistered, or the worker joined without it?)"
        )
    future = jobs.start(key, argv, kwargs, mode)
    if future is None:
        return ("cancelled",)
    try:
        try:
            value = await future  # cancelled, the job is stopped and reaped first
        except asyncio.CancelledError:
            if isinstance(future, CallFuture) and future.cancelled():
                return ("cancelled",)  # a call stopped by the client: its honest end
            raise  # the worker closes: Dask runs the task elsewhere
        except BaseException as exc:  # the job's own failure, as it would be raised locally
            outcome: tuple[Any, ...] = ("error", exc, jobs.address, future.pid)
        else:
            if mode == RUN:
                value.worker = jobs.address
            outcome = ("ok", value, jobs.address, future.pid)
        return None if _push(worker, key, outcome) else outcome
    finally:
        jobs.finished(key)


def _push(worker: Any, key: str, outcome: tuple[Any, ...]) -> bool:
    """Send a small outcome to the client with the task's events, ahead of the task's own
    end: the client then needs no request to fetch it (a round trip per job). True if sent;
    a large one (captured output) is fetched from the worker as usual."""
    payload = pushed(outcome)
    if payload is None:
        worker.log_event(PLUGIN, {"key": key})  # fetch it: the client need not poll for it
        return False
    worker.log_event(PLUGIN, {"key": key, "outcome": payload})
    return True


async def stop_on_worker(key: str, kill: bool, dask_worker: Any = None) -> bool:
    """Run by ``client.run`` on every worker's event loop (a coroutine: it need not be
    waited for). Stopping only posts to the executor's lanes: it does not block."""
    jobs = dask_worker.plugins.get(PLUGIN) if dask_worker is not None else None
    return bool(jobs is not None and jobs.stop(key, kill))
