"""``await future``: a job's outcome in asyncio, and a cancellation that stops the job.

A job's future is a :class:`concurrent.futures.Future`; awaiting it wraps it for the
running loop and shields the wrapper, so that cancelling the awaiting task does not merely
cancel the wrapper but reaches the job: one that has not started is cancelled and never
starts; a running one gets the termination sequence and the cancellation propagates once
it has ended (a second cancellation meanwhile sends SIGKILL at once).

**A cancellation before the first step.** ``asyncio.ensure_future(x)`` (and so
``gather``, ``wait_for``, ``shield``) runs a coroutine as a task of its own, but wraps any
other awaitable in a coroutine of asyncio's (``_wrap_awaitable``) that awaits it. A task
cancelled before its first step throws the CancelledError into that wrapper before it
has started: ``x.__await__`` never runs, the task ends cancelled and the job runs on
(``wait_for(future, 0)``, ``ensure_future(future).cancel()``, ``gather(future).cancel()``).
So a job's future is a coroutine too (:class:`collections.abc.Coroutine`: ``send``,
``throw``, ``close`` and ``__await__``), and asyncio's task drives it directly: a
``throw()`` before any ``send()`` reaches :func:`step`, which stops the job and raises the
cancellation once it has ended, as a cancellation after the first step does.

Why not something else: only ``asyncio.iscoroutine`` objects are run as tasks unwrapped,
and only asyncio futures are passed through as they are; being an asyncio future would
tie the job's future to one loop and run asyncio's callbacks on the reaper's threads. The
price: ``asyncio.wait()``, which refuses coroutines (a TypeError since Python 3.11, a
DeprecationWarning before), takes ``asyncio.ensure_future(future)`` instead, as it does
for any coroutine.

A future may be awaited many times, by several tasks, and more than one task may run the
same future (``ensure_future(future)`` twice). A native coroutine runs once; this one
keeps one :func:`wait_job` coroutine per task that runs it (the task asyncio says is
current while it steps: asyncio's own Task, under uvloop and anyio too), dropped when it
ends. ``await future`` in a coroutine uses ``__await__``, a fresh iterator each time, and
none of that state.

This module loads asyncio; the rest of the engine imports it only when a future is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar, cast

T = TypeVar("T")

#: The coroutines that run a job's future as tasks' coroutines, by the task (module doc).
Drivers = dict[object, Coroutine[Any, Any, Any]]


class Stoppable(Protocol):
    """What awaiting needs of a job's future beyond ``concurrent.futures.Future``'s."""

    def cancel(self) -> bool:
        """Cancel the job if it has not started; True if it will never run."""

    def terminate(self) -> None:
        """Stop the running job with the termination sequence."""

    def kill(self) -> None:
        """Stop the running job with SIGKILL at once."""


async def wait_job(future: Future[T]) -> T:
    """The result of ``future``'s job, awaited; a cancellation stops the job (module doc).

    ``future`` is a job's future (:class:`~procexec.ProcessFuture`): it is
    :class:`Stoppable`.
    """
    outcome = asyncio.wrap_future(future)
    try:
        return await asyncio.shield(outcome)
    except asyncio.CancelledError:
        await stop_job(cast(Stoppable, future), outcome)
        raise


async def stop_job(future: Stoppable, outcome: asyncio.Future[Any]) -> None:
    """Cancel the job, or stop it and wait until it has ended (``outcome``, its wrapper,
    is done)."""
    if future.cancel():
        return  # it had not started: it never will
    future.terminate()
    while not outcome.done():
        try:
            await asyncio.shield(outcome)
        except asyncio.CancelledError:
            if outcome.cancelled():
                return
            future.kill()  # cancelled again: no more grace
        except BaseException:  # the job's own outcome: it has ended
            return


def step(
    future: Future[Any], drivers: Drivers, value: object, error: BaseException | None = None
) -> Any:
    """One step of the coroutine protocol of ``future``: send ``value`` (or throw
    ``error``) into the :func:`wait_job` coroutine of the task now running it, made at its
    first step. A cancellation thrown before that stops the job, and propagates once it
    has ended; any other error thrown then is raised at once, as by a coroutine that has
    not started.

    Returns what that coroutine yields; raises StopIteration with the job's result, or
    what it raised.
    """
    task = _current_task()
    driver = drivers.get(task)
    if driver is None:
        if error is None:
            driver = wait_job(future)
        elif isinstance(error, asyncio.CancelledError):
            driver, error = _stop_then_raise(future, error), None
        else:
            raise error
        drivers[task] = driver
    try:
        return driver.send(value) if error is None else driver.throw(error)
    except BaseException:  # it ended: StopIteration (the result) or its exception
        drivers.pop(task, None)
        raise


def close(drivers: Drivers) -> None:
    """``close()`` of the coroutine protocol: close the current task's coroutine, if any."""
    driver = drivers.pop(_current_task(), None)
    if driver is not None:
        driver.close()


async def _stop_then_raise(future: Future[Any], cancellation: asyncio.CancelledError) -> None:
    """Stop the job of a task cancelled before its first step; then raise the cancellation."""
    await stop_job(cast(Stoppable, future), asyncio.wrap_future(future))
    raise cancellation


def _current_task() -> object:
    """The task stepping now; None when the coroutine is driven by something else."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop: whoever calls send() drives it alone
        return None
