"""The client side: :class:`DaskExecutor`, its futures, and the thread that settles them
from what the workers push (``_wire.py``) or from Dask's own task states.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError, Future
from typing import Any, TypeVar, cast

import dask
from distributed import Client, LocalCluster

from procexec import DEFAULT_TERM_SEQUENCE
from procexec._core import call_name, contain_callback_errors, map_in_order
from procexec._validate import check_argv, check_popen_kwargs, check_term_sequence, check_timeout
from procexec.dask._connect import check_connect_timeout, connect
from procexec.dask._future import DaskFuture, SchedulerLostError, WorkerLostError
from procexec.dask._wire import (
    CALL,
    PLUGIN,
    RUN,
    RUN_KEYWORDS,
    SLOTS,
    SUBMIT,
    intact,
    outcome_of,
    read_outcome,
)
from procexec.dask._worker import WorkerJobs, run_on_worker, stop_on_worker

logger = logging.getLogger("procexec")

_T = TypeVar("_T")


class DaskExecutor:
    """Runs commands on a Dask cluster, with the surface of :class:`procexec.ProcessExecutor`.

    Args:
        client_or_address: a ``distributed.Client``, or a scheduler address such as
            ``"tcp://host:8786"`` (a client is then made, and closed by ``shutdown()``).
        slots_per_worker: how many commands each worker's executor runs at once; None: the
            worker's ``procexec-slots`` resource, else its thread count. Start workers
            with ``dask worker --resources procexec-slots=N`` so that Dask places no
            more than N jobs on each.
        term_sequence: how a job is stopped on its worker (as for ProcessExecutor).
        retries: how many times a job whose worker was lost is run again elsewhere.
        connect_timeout: with an address, how many seconds to wait for the scheduler to
            answer before :class:`SchedulerUnreachableError` (None: 10); a refused
            connection raises it at once.

    Errors are raised in the caller as they would be locally: ``TimeoutExpired``,
    ``CalledProcessError``, ``FileNotFoundError``...; a lost worker is :class:`WorkerLostError`,
    a lost scheduler :class:`SchedulerLostError`.
    """

    def __init__(
        self,
        client_or_address: Client | str,
        *,
        slots_per_worker: int | None = None,
        term_sequence: Sequence[tuple[int, float]] = DEFAULT_TERM_SEQUENCE,
        retries: int = 0,
        connect_timeout: float | None = None,
    ) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
        wait = check_connect_timeout(connect_timeout)
        self._owned: list[Any] = []
        if isinstance(client_or_address, str):
            self._client = connect(client_or_address, wait)
            self._owned.append(self._client)
        else:
            self._client = client_or_address
        self._retries = retries
        self._lock = threading.Lock()
        self._pending: dict[str, DaskFuture[Any]] = {}  # by key: not resolved yet
        #: Tasks in flight by key: their future and what to send again after a lost worker.
        self._tasks: dict[str, tuple[DaskFuture[Any], Any, dict[str, Any], str]] = {}
        #: What the collector thread handles: ended tasks, pushed (key, outcome), None: stop.
        self._ended: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._collector = threading.Thread(
            target=self._collect, name="procexec-dask-results", daemon=True
        )
        self._collector.start()
        self._closed = False
        self._resources = self._slot_resource(slots_per_worker)
        self._client.register_plugin(WorkerJobs(check_term_sequence(term_sequence)), name=PLUGIN)
        self._client.subscribe_topic(PLUGIN, self._on_event)  # type: ignore[no-untyped-call]

    @classmethod
    def local(cls, n_workers: int = 2, slots_per_worker: int = 2, **options: Any) -> DaskExecutor:
        """A LocalCluster of ``n_workers`` worker processes on 127.0.0.1 (every port, the
        dashboard's too, chosen by the OS), owned and closed by the executor. A job whose
        worker is lost is not re-run by Dask itself (allowed-failures 0): ``retries``
        decides. The workers are new Python processes that import the main module first:
        in a script, call it under ``if __name__ == "__main__":``."""
        with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
            cluster = LocalCluster(  # type: ignore[no-untyped-call]
                n_workers=n_workers,
                threads_per_worker=slots_per_worker,
                processes=True,
                host="127.0.0.1",
                scheduler_port=0,
                dashboard_address="127.0.0.1:0",  # its HTTP server listens anyway: here only
                resources={SLOTS: slots_per_worker},
            )
        try:
            client = Client(cluster)  # type: ignore[no-untyped-call]
        except BaseException:
            cluster.close()
            raise
        executor = cls(client, slots_per_worker=slots_per_worker, **options)
        executor._owned += [client, cluster]
        return executor

    @property
    def client(self) -> Client:
        """The ``distributed.Client`` the jobs go through."""
        return self._client

    def _slot_resource(self, slots_per_worker: int | None) -> dict[str, int] | None:
        if slots_per_worker is not None and (
            isinstance(slots_per_worker, bool)
            or not isinstance(slots_per_worker, int)
            or slots_per_worker < 1
        ):
            raise ValueError(
                f"slots_per_worker must be a positive integer, got {slots_per_worker!r}"
            )
        workers = self._client.scheduler_info().get("workers", {})
        if any(SLOTS in w.get("resources", {}) for w in workers.values()):
            return {SLOTS: 1}
        logger.warning(
            "procexec.dask: no worker has a %r resource; each worker runs as many jobs as it "
            "has threads (start workers with --resources %s=N to set it)",
            SLOTS,
            SLOTS,
        )
        return None

    # ------------------------------------------------------------------ submit/run
    def submit(
        self, argv: Any, /, *, timeout: float | None = None, **popen_kwargs: Any
    ) -> DaskFuture[int]:
        """Queue a command on the cluster; the future resolves to its exit status."""
        for stream in ("stdin", "stdout", "stderr"):
            if popen_kwargs.get(stream) == subprocess.PIPE:
                raise ValueError(f"submit() does not take {stream}=PIPE: use run() to capture")
        return self._queue(argv, timeout, popen_kwargs, SUBMIT)

    def run(
        self,
        argv: Any,
        /,
        *,
        input: bytes | str | None = None,
        capture_output: bool = False,
        timeout: float | None = None,
        check: bool = False,
        text: bool = False,
        encoding: str | None = None,
        errors: str | None = None,
        **popen_kwargs: Any,
    ) -> DaskFuture[Any]:
        """``subprocess.run`` on the cluster: the future resolves to a JobResult (with
        ``worker``, the worker's address) or raises what ``subprocess.run`` would."""
        options = dict(
            input=input, capture_output=capture_output, check=check, text=text,
            encoding=encoding, errors=errors,
        )  # fmt: skip
        return self._queue(argv, timeout, {**popen_kwargs, **options}, RUN)

    def map(
        self, argvs: Iterable[Any], *, timeout: float | None = None, **popen_kwargs: Any
    ) -> Iterator[int]:
        """Submit every command; yield their exit statuses in order."""
        futures = [self.submit(argv, timeout=timeout, **popen_kwargs) for argv in argvs]
        for future in futures:
            yield future.result()

    def submit_call(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> DaskFuture[_T]:
        """A Python call on the cluster: the worker's own ``ProcessExecutor.submit_call``
        runs it in the slots it shares with commands, so ``cancel()`` stops it there, and a
        lost worker fails it with :class:`WorkerLostError` or runs it again (``retries``):
        calls are run at least once."""
        return self.run_call(fn, args, kwargs)

    def run_call(
        self,
        fn: Callable[..., _T],
        /,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        limits: Any = None,
    ) -> DaskFuture[_T]:
        """:meth:`submit_call` with ``ProcessExecutor.run_call``'s options (``timeout``
        from the call's start, ``limits``) applied on the worker."""
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        options = {"args": tuple(args), "kwargs": dict(kwargs or {}), "limits": limits}
        options["timeout"] = check_timeout(timeout)
        future: DaskFuture[_T] = DaskFuture(self, call_name(fn), CALL)
        self._send(future, fn, options, CALL)
        return future

    def map_calls(
        self,
        fn: Callable[..., _T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[_T]:
        """``ProcessExecutor.map_calls`` on the cluster: results in order; a chunk of
        ``chunksize`` items is one task; closing the iterator early cancels the rest."""
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        items = zip(*iterables, strict=False)  # as map(): the shortest ends it
        if chunksize == 1:
            submits: Iterator[DaskFuture[Any]] = (self.submit_call(fn, *args) for args in items)
        else:
            chunks = iter(lambda: list(itertools.islice(items, chunksize)), [])
            submits = (self.submit_call(_RUN_CHUNK, fn, chunk) for chunk in chunks)
        return map_in_order(submits, timeout=timeout, buffersize=buffersize, flatten=chunksize > 1)

    def _queue(
        self, argv: Any, timeout: object, kwargs: dict[str, Any], mode: str
    ) -> DaskFuture[Any]:
        if self._closed:
            raise RuntimeError("cannot schedule new jobs after shutdown")
        check_popen_kwargs({k: v for k, v in kwargs.items() if k not in RUN_KEYWORDS})
        command = check_argv(argv, shell=bool(kwargs.get("shell")))
        kwargs["timeout"] = check_timeout(timeout)
        future: DaskFuture[Any] = DaskFuture(self, command, mode)
        self._send(future, command, kwargs, mode)
        return future

    def _send(self, future: DaskFuture[Any], argv: Any, kwargs: dict[str, Any], mode: str) -> None:
        key = f"procexec-{uuid.uuid4().hex}"
        future.key = key
        future.attempts += 1
        with self._lock:  # held until the task is known, so that its outcome finds it
            future._task = self._client.submit(
                run_on_worker, key, argv, kwargs, mode,
                key=key, pure=False, resources=self._resources,
            )  # fmt: skip
            self._pending[key] = future
            self._tasks[key] = (future, argv, kwargs, mode)

    def _collect(self) -> None:
        """The collector thread: resolve futures from the outcomes workers push, fetch the
        large ones (in one request per batch), and now and then sweep for tasks that ended
        with no outcome at all (Dask's own errors, a lost worker). Every task is released as
        soon as its outcome is in, so that Dask never computes it again. Futures resolve
        here, never on Dask's event loop, so done-callbacks may submit more jobs.

        No Dask done-callback per task: each costs the client's event loop a coroutine and a
        thread hop, which the scheduler, sharing that loop, pays for."""
        contain_callback_errors()
        next_sweep = time.monotonic() + _SWEEP_MIN
        while True:
            try:
                items = [self._ended.get(timeout=max(0.0, next_sweep - time.monotonic()))]
            except queue.Empty:
                items = []
            if not self._handle(items + _drain(self._ended)):
                return
            if time.monotonic() >= next_sweep:
                start = time.monotonic()
                ended = self._ended_unsettled()
                # Less often when there are so many tasks that looking takes long: at
                # most 2 % of the collector's time.
                next_sweep = time.monotonic() + max(_SWEEP_MIN, 50 * (time.monotonic() - start))
                # What a worker pushed before its task ended is queued by now: first that.
                if ended and not self._handle(_drain(self._ended) + ended):
                    return

    def _handle(self, items: list[Any]) -> bool:
        """Handle what the collector got; False once told to stop."""
        tasks = []
        for item in items:
            if item is None:
                return False
            if not isinstance(item, tuple):  # a task that ended, to fetch
                tasks.append(item)
            elif item[1] is not None:  # (key, outcome) pushed by a worker
                self._resolve(item[0], item[1])
            else:  # (key, None): a large outcome, to fetch once the task has ended
                with self._lock:
                    entry = self._tasks.get(item[0])
                if entry is not None:
                    entry[0]._task.add_done_callback(self._ended.put)
        unresolved = [task for task in tasks if not self._resolve(task.key, None)]
        if unresolved:
            for task, outcome in zip(unresolved, self._outcomes(unresolved), strict=True):
                self._resolve(task.key, outcome)
        return True

    def _ended_unsettled(self) -> list[Any]:
        """The tasks in flight that ended with no outcome settled yet."""
        with self._lock:
            return [
                entry[0]._task for entry in self._tasks.values() if entry[0]._task.status in _ENDED
            ]

    def _resolve(self, key: str, outcome: Any) -> bool:
        """Settle the job of ``key`` with ``outcome`` (None: only if settled already).
        True if it is settled now."""
        with self._lock:
            entry = self._tasks.get(key)
            if entry is None:
                return True  # settled already (its outcome was pushed)
            if outcome is None:
                return False
            del self._tasks[key]
            future, argv, kwargs, mode = entry
            self._pending.pop(future.key, None)
        future._task.release()
        try:
            self._settle(future, outcome_of(outcome), argv, kwargs, mode)
        except Exception:  # a bug here must not stop the others' results
            logger.exception("procexec.dask: settling a job failed")
            self._fail(future, RuntimeError("procexec.dask: settling this job failed"))
        return True

    def _outcomes(self, batch: list[Any]) -> list[Any]:
        """The results of the finished tasks of ``batch``, fetched in one request (a request
        per task costs a round trip each), and the exception of each other task."""
        finished = [task for task in batch if task.status == "finished"]
        try:
            values = list(self._client.gather(finished)) if finished else []  # type: ignore[no-untyped-call]
        except BaseException:  # one could not be fetched (or Dask's asyncio cancelled the
            values = [_fetch(task) for task in finished]  # request): each on its own
        fetched = {id(task): value for task, value in zip(finished, values, strict=True)}
        return [fetched[id(task)] if id(task) in fetched else _error_of(task) for task in batch]

    def _settle(
        self,
        future: DaskFuture[Any],
        outcome: tuple[Any, ...],
        argv: Any,
        kwargs: dict[str, Any],
        mode: str,
    ) -> None:
        kind = outcome[0]
        if kind == "lost":
            if future.attempts <= self._retries and not future.cancelled() and not self._closed:
                logger.warning(
                    "procexec.dask: worker %s was lost; running %r again", outcome[1], argv
                )
                self._send(future, argv, kwargs, mode)
                return
            self._fail(future, WorkerLostError(outcome[1]))
            return
        if kind == "cancelled" and not future.cancelled():
            Future.cancel(future)  # stopped on its worker (a call ends CANCELLED there)
        if kind == "cancelled" or future.cancelled():
            return
        if kind == "dask-error":
            self._fail(future, self._unasked(outcome[1]))
            return
        _, value, worker, pid = outcome
        future.worker, future.pid = worker, pid
        if not future._ensure_running():
            return  # cancelled meanwhile
        if kind == "ok":
            future.set_result(value)
        else:
            future.set_exception(intact(value))

    def _unasked(self, error: BaseException) -> BaseException:
        """Dask's error for a task whose future the caller did not cancel. A cancellation
        there is Dask's (a lost scheduler, a closed client, a restart): an error that says
        so, since a CancelledError would contradict ``cancelled()``."""
        if not isinstance(error, CancelledError):
            return error
        reason = getattr(error, "reason", None)  # distributed's FutureCancelledError
        status = self._client.status
        if reason == "scheduler-connection-lost" or (reason is None and status == "connecting"):
            unasked: BaseException = SchedulerLostError(
                getattr(self._client.scheduler, "address", None) or "(address unknown)"
            )
        elif status in {"closing", "closed"}:
            unasked = RuntimeError("the Dask client was closed before this job's outcome came back")
        else:
            unasked = RuntimeError(f"Dask cancelled this job's task: {error or 'no reason given'}")
        unasked.__cause__ = error
        return unasked

    @staticmethod
    def _fail(future: DaskFuture[Any], error: BaseException) -> None:
        if future._ensure_running():
            future.set_exception(error)

    def _on_event(self, event: Any) -> None:
        """A worker pushed a job's outcome, or said it is too large to push (on the client's
        event loop: handed on)."""
        _, message = event
        payload = message.get("outcome")
        self._ended.put((message.get("key"), None if payload is None else read_outcome(payload)))

    # -------------------------------------------------------------------- stopping
    def stop_remote(
        self, future: DaskFuture[Any], *, kill: bool, even_if_done: bool = False
    ) -> None:
        """Stop the job on whichever worker runs it (every worker is asked: a running task
        is not where Dask's ``who_has`` looks)."""
        if (future.done() and not even_if_done) or not future.key:
            return
        self._client.run(stop_on_worker, future.key, kill, wait=False, on_error="ignore")

    def cancel_remote(self, future: DaskFuture[Any]) -> None:
        """Never start the cancelled job: Dask forgets the task (its own cancel does not stop
        a task that has begun), and every worker marks the key, or kills the job if the
        task got there already."""
        if future._task is not None:
            future._task.cancel()
        self.stop_remote(future, kill=True, even_if_done=True)

    def terminate_jobs(self) -> None:
        """Stop every job not finished yet with the termination sequence, on its worker."""
        with self._lock:
            futures = list(self._pending.values())
        for future in futures:
            future.terminate()

    def kill_jobs(self) -> None:
        """Send SIGKILL to every job not finished yet, on its worker."""
        with self._lock:
            futures = list(self._pending.values())
        for future in futures:
            future.kill()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new jobs; with ``cancel_futures`` cancel those not started; with ``wait``
        wait for the others; then close what this executor opened (client, cluster)."""
        self._closed = True
        with self._lock:
            futures = list(self._pending.values())
        if cancel_futures:
            for future in futures:
                future.cancel()
        if wait:
            for future in futures:
                with contextlib.suppress(BaseException):
                    future.exception()
        self._ended.put(None)  # the collector ends once it has handled what came before
        if wait and threading.current_thread() is not self._collector:
            self._collector.join()
        for owned in self._owned:
            with contextlib.suppress(Exception):
                owned.close()
        self._owned.clear()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if exc_type is not None:
            with self._lock:
                futures = list(self._pending.values())
            for future in futures:
                if not future.cancel():
                    future.kill()
        self.shutdown(wait=True)


#: The states of a Dask future whose task will not run again ("lost": Dask computes again).
_ENDED = frozenset({"finished", "error", "cancelled"})


#: The shortest time between two looks for tasks that ended without an outcome (Dask's own
#: errors, a lost worker).
_SWEEP_MIN = 0.1


def _drain(items: queue.SimpleQueue[Any]) -> list[Any]:
    """Everything in ``items`` now, without waiting."""
    drained = []
    with contextlib.suppress(queue.Empty):
        while True:
            drained.append(items.get_nowait())
    return drained


def _fetch(task: Any) -> Any:
    try:
        return task.result()
    except BaseException as exc:
        return exc


def _error_of(task: Any) -> BaseException:
    """The exception of a task that did not finish: its error, or the CancelledError Dask
    gives (with its reason, where Dask gives one)."""
    if task.cancelled():
        cancelled = _fetch(task)
        return cancelled if isinstance(cancelled, CancelledError) else CancelledError()
    try:
        return cast(BaseException, task.exception())
    except BaseException as exc:
        return exc


def _chunk_runner() -> Callable[..., list[Any]]:
    """The function a chunk of ``map_calls`` runs as one call. Made inside a function so
    that cloudpickle sends it by value: the worker process then imports nothing of
    procexec to run it."""

    def run_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> list[Any]:
        return [fn(*args) for args in chunk]

    return run_chunk


_RUN_CHUNK = _chunk_runner()
