"""A call: a Python callable to run in a worker process, as the engine's second kind of job.

A :class:`CallJob` is a :class:`~procexec._core._job.Job` whose child is the worker that runs
it: while the call runs, ``popen`` is that worker's, so the lane's deadlines and stop
sequences (``_stops.py``) reach the worker's process group exactly as they reach a
command's. The call itself travels as ``payload``, pickled in the caller's thread at
submit (cloudpickle: lambdas, closures and ``__main__`` functions too) and dropped once it
is written to the worker, so that nothing keeps the arguments alive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from procexec._core._job import Job, JobFuture

if TYPE_CHECKING:
    from procexec._core._resources._rlimits import Limits


def call_name(fn: Callable[..., Any]) -> str:
    """What a call is shown as: its function's qualified name (``partial(f)`` as ``f``)."""
    inner = getattr(fn, "func", None)  # functools.partial
    target = inner if callable(inner) else fn
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    return str(name) if name else type(fn).__name__


def pickle_call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The call as the worker reads it: ``(fn, args, kwargs, chunked)``, cloudpickled."""
    from procexec._core._worker_main import dumps_call  # noqa: PLC0415  # pickle: on use

    return dumps_call((fn, args, kwargs, False))


def pickle_chunk(fn: Callable[..., Any], chunk: list[tuple[Any, ...]]) -> bytes:
    """Several calls of ``fn`` in one message (``map_calls(chunksize=N)``): the worker
    gives back the list of their results."""
    from procexec._core._worker_main import dumps_call  # noqa: PLC0415  # as pickle_call

    return dumps_call((fn, chunk, {}, True))


class CallJob(Job):
    """A queued or running call (the lane that takes it gives it to a worker)."""

    __slots__ = ("name", "payload", "queued_mono", "stopping", "worker_pid")

    #: A call is run by the lane that owns the workers, whatever that lane's share of
    #: ``max_jobs`` for commands; it counts against ``max_jobs`` like any job.
    counts_in_share = False

    def __init__(
        self,
        name: str,
        payload: bytes,
        future: JobFuture,
        *,
        timeout: float | None,
        guarded: bool,
        limits: Limits | None,
    ) -> None:
        super().__init__(
            name, {}, future, timeout=timeout, own_group=True, options=None, guarded=guarded,
            limits=limits,
        )  # fmt: skip
        self.name = name
        #: The pickled call until it is written to a worker, then None.
        self.payload: bytes | None = payload
        #: Monotonic instant it was queued (``CallFuture.queued_for``).
        self.queued_mono = time.monotonic()
        #: Being stopped by its future (cancel, terminate, kill): it ends cancelled.
        self.stopping = False
        #: The pid of the worker that ran it, once one took it.
        self.worker_pid: int | None = None
