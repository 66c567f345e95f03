"""asyncio with procexec: awaiting a job, completions as they come, and cancellation that
stops the process.

A :class:`~procexec.ProcessFuture` is awaitable: ``await ex.run([...], text=True)`` gives the
``JobResult`` (typed as ``run`` is), ``await ex.submit([...])`` the exit status. The job runs
on the executor's lanes under its ``max_jobs``, as every other job: no thread per job, no
second event loop. Cancelling the task that awaits it (``task.cancel()``,
``asyncio.timeout``, ``wait_for``, ``gather`` being cancelled, an anyio cancel scope) stops
the job: one not started yet is cancelled and never starts; a running one gets the
executor's termination sequence on its process group, and the cancellation propagates once
the child is reaped (a second cancellation meanwhile sends SIGKILL at once).

``async with ProcessExecutor() as ex:`` waits for the block's jobs without blocking the
event loop, and stops and reaps them if the block is left by an exception or cancelled.

This module loads asyncio; the rest of procexec does not until a future is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, TypeVar

from procexec._future import ProcessFuture

if TYPE_CHECKING:
    from procexec._executor import ProcessExecutor

T = TypeVar("T")

__all__ = ("completed", "wait_job")  # and ``await future``, ``async with ProcessExecutor()``


async def wait_job(future: ProcessFuture[T]) -> T:
    """The result of ``future``'s job, awaited; cancelled, it stops the job (module doc).

    ``await future`` does the same.
    """
    outcome = asyncio.wrap_future(future)
    try:
        return await asyncio.shield(outcome)
    except asyncio.CancelledError:
        await _stop(future, outcome)
        raise


async def _stop(future: ProcessFuture[T], outcome: asyncio.Future[T]) -> None:
    """Cancel the job, or stop it and wait until it is reaped."""
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


async def completed(futures: Iterable[ProcessFuture[T]]) -> AsyncIterator[ProcessFuture[T]]:
    """Yield the futures as their jobs end, first finished first (``async for``); jobs
    ending together come in the order given.

    Like ``concurrent.futures.as_completed``, it only watches: leaving the loop early, or
    cancelling the task while it waits, leaves the jobs as they are. To have them stopped
    too, await them (``await future``), or run them in an ``async with ProcessExecutor()``
    block, which stops its jobs when it is left by an exception or cancelled.
    """
    order = {asyncio.wrap_future(f): (k, f) for k, f in enumerate(futures)}
    pending = set(order)
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for outcome in sorted(done, key=lambda o: order[o][0]):
            yield order[outcome][1]


async def leave_block(executor: ProcessExecutor, error: type[BaseException] | None) -> None:
    """``async with``'s exit: wait for the jobs without blocking the loop; stop and reap
    them instead when the block raised, or when this wait is cancelled."""
    loop = asyncio.get_running_loop()
    if error is None:
        waiting = loop.run_in_executor(None, executor.shutdown, True)
        try:
            await asyncio.shield(waiting)
            return
        except asyncio.CancelledError:
            await _abort(executor, loop)
            raise
    await _abort(executor, loop)


async def _abort(executor: ProcessExecutor, loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the waiting jobs, stop the running ones and wait until they are reaped; a
    cancellation meanwhile sends SIGKILL, and is raised once they are."""
    executor.shutdown(wait=False, cancel_futures=True)
    executor.terminate_jobs()
    reaped = loop.run_in_executor(None, executor.shutdown, True)
    cancelled = False
    while not reaped.done():
        try:
            await asyncio.shield(reaped)
        except asyncio.CancelledError:
            cancelled = True
            executor.kill_jobs()
    if cancelled:
        raise asyncio.CancelledError
