"""Python calls on an executor's slots: queueing them (:class:`CallQueue`), ``map`` in
input order (commands and calls alike), and :class:`CallsExecutor`, the
``concurrent.futures.Executor`` that ``ex.calls`` is.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from procexec._core._callfuture import CallFuture
from procexec._core._calljob import CallJob, call_name, pickle_call, pickle_chunk
from procexec._core._lifecycle import interpreter_exited
from procexec._core._progress import ExecutorBar
from procexec._core._reaper import Reaper
from procexec._validate import check_timeout

if TYPE_CHECKING:
    from procexec._core._resources._rlimits import Limits

T = TypeVar("T")
P = ParamSpec("P")


def check_buffersize(buffersize: object) -> int | None:
    """``map``'s ``buffersize``: None or a positive int."""
    if buffersize is None:
        return None
    if isinstance(buffersize, bool) or not isinstance(buffersize, int):
        raise TypeError("buffersize must be an int or None")
    if buffersize < 1:
        raise ValueError(f"buffersize must be at least 1, got {buffersize}")
    return buffersize


def map_in_order(
    submits: Iterator[Future[Any]],
    *,
    timeout: float | None,
    buffersize: int | None,
    flatten: bool = False,
) -> Iterator[Any]:
    """The results of the futures ``submits`` makes, in order, as ``Executor.map`` gives
    them (``flatten``: each result is a list of results, from a chunk).

    The futures are made now: all of them, or the first ``buffersize`` and then one more
    as each result is taken (3.14's ``Executor.map(buffersize=)``). ``timeout`` counts from
    this call. Closing the iterator early cancels the futures not done.
    """
    seconds = check_timeout(timeout)  # infinity: no limit
    end_time = None if seconds is None else time.monotonic() + seconds
    first = itertools.islice(submits, buffersize) if buffersize else submits
    futures = deque(first)
    return InOrder(futures, submits if buffersize else None, end_time, flatten)


class InOrder(Iterator[Any]):
    """The iterator ``map`` returns. Unlike a generator's, its :meth:`close` cancels the
    futures not done even before the first result was taken."""

    def __init__(
        self,
        futures: deque[Future[Any]],
        refill: Iterator[Future[Any]] | None,
        end_time: float | None,
        flatten: bool,
    ) -> None:
        self._futures = futures
        self._refill = refill
        self._end_time = end_time
        self._flatten = flatten
        self._chunk: Iterator[Any] = iter(())
        self._started = False

    def __next__(self) -> Any:
        self._started = True
        for value in self._chunk:
            return value
        if not self._futures:
            raise StopIteration
        future = self._futures.popleft()
        if self._refill is not None:
            self._futures.extend(itertools.islice(self._refill, 1))
        remaining = None if self._end_time is None else self._end_time - time.monotonic()
        try:
            result = future.result(remaining)
        except BaseException:
            self.close()
            raise
        del future  # as CPython's map: no reference to a result once it is handed out
        if not self._flatten:
            return result
        self._chunk = iter(result)
        return next(self)

    def close(self) -> None:
        """Cancel the futures not done (running calls are stopped)."""
        futures, self._futures = self._futures, deque()
        self._refill = None
        for future in futures:
            future.cancel()

    def __del__(self) -> None:
        if self._started:  # as a generator's: dropped after use, it is closed
            self.close()


def batched(items: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    while chunk := list(itertools.islice(items, size)):
        yield chunk


class CallsOwner(Protocol):
    """What :class:`CallsExecutor` uses of its ``ProcessExecutor``."""

    def submit_call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> CallFuture[T]:
        """Queue ``fn(*args, **kwargs)``."""

    def map_calls(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``fn`` over the iterables, in order."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Shut the executor down."""


class CallsExecutor(Executor):
    """A ``concurrent.futures.Executor`` of Python calls on a ``ProcessExecutor``'s slots
    (``ex.calls``), for code that takes any Executor: ``loop.run_in_executor``, libraries,
    test suites written for ``concurrent.futures``. ``submit`` is ``submit_call``, ``map``
    is ``map_calls`` and ``shutdown`` is the executor's own (commands included)."""

    def __init__(self, owner: CallsOwner) -> None:
        self._owner = owner

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> CallFuture[T]:
        """``ProcessExecutor.submit_call``."""
        return self._owner.submit_call(fn, *args, **kwargs)

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``ProcessExecutor.map_calls``."""
        return self._owner.map_calls(
            fn, *iterables, timeout=timeout, chunksize=chunksize, buffersize=buffersize
        )

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """``ProcessExecutor.shutdown``: of the whole executor."""
        self._owner.shutdown(wait, cancel_futures=cancel_futures)


class CallQueue:
    """Pickles calls in the caller's thread and queues them on the executor's reaper."""

    def __init__(self, reaper: Reaper, bar: ExecutorBar | None) -> None:
        self._reaper = reaper
        self._bar = bar

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: object,
        limits: Limits | None,
        *,
        guarded: bool,
    ) -> CallFuture[Any]:
        """Queue ``fn(*args, **kwargs)``; a call that cannot be pickled fails its future."""
        seconds = check_timeout(timeout)
        self._check_open()
        try:
            payload = pickle_call(fn, args, kwargs)
        except BaseException as exc:  # the call's own failure, as in CPython's pool
            return _failed(exc)
        return self._enqueue(call_name(fn), payload, seconds, limits, guarded)

    def submit_chunk(
        self, fn: Callable[..., Any], chunk: list[tuple[Any, ...]], *, guarded: bool
    ) -> CallFuture[Any]:
        """Queue ``fn`` over several argument tuples, run in one message."""
        self._check_open()
        try:
            payload = pickle_chunk(fn, chunk)
        except BaseException as exc:
            return _failed(exc)
        return self._enqueue(call_name(fn), payload, None, None, guarded)

    def _enqueue(
        self, name: str, payload: bytes, timeout: float | None, limits: Limits | None, guarded: bool
    ) -> CallFuture[Any]:
        future: CallFuture[Any] = CallFuture()
        job = CallJob(name, payload, future, timeout=timeout, guarded=guarded, limits=limits)
        future._bind(job, self._reaper)
        if self._bar is not None:
            self._bar.queued(future)
        self._reaper.enqueue(job)
        return future

    def _check_open(self) -> None:
        """CPython's words for an executor that takes no more work."""
        if interpreter_exited():
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")
        if self._reaper.closed:
            raise RuntimeError("cannot schedule new futures after shutdown")


def _failed(error: BaseException) -> CallFuture[Any]:
    future: CallFuture[Any] = CallFuture()
    future.set_exception(error)
    return future
