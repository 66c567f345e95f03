"""asyncio with procexec: awaiting a job, completions as they come, and cancellation that
stops the process.

A :class:`~procexec.ProcessFuture` is awaitable: ``await ex.run([...], text=True)`` gives the
``JobResult`` (typed as ``run`` is), ``await ex.submit([...])`` the exit status. The job runs
on the executor's lanes under its ``max_jobs``, as every other job: no thread per job, no
second event loop. Cancelling the task that awaits it (``task.cancel()``,
``asyncio.timeout``, ``wait_for``, ``gather`` being cancelled, an anyio cancel scope) stops
the job: one not started yet is cancelled and never starts; a running one gets the
executor's termination sequence on its process group, and the cancellation propagates once
the child is reaped (a second cancellation meanwhile sends SIGKILL at once). A future is
also a coroutine, so that a task running it (``ensure_future(future)``, ``gather``,
``wait_for``) stops the job even when cancelled before its first step; ``asyncio.wait()``,
which refuses coroutines, takes ``asyncio.ensure_future(future)``.

``async with ProcessExecutor() as ex:`` waits for the block's jobs without blocking the
event loop, and stops and reaps them if the block is left by an exception or cancelled.

This module is the public front; the awaiting itself, and ``async with``, live in the
engine (``procexec._core``). It loads asyncio; the rest of procexec does not until a
future is awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TypeVar

from procexec import ProcessFuture

T = TypeVar("T")

__all__ = ("completed", "wait_job")  # and ``await future``, ``async with ProcessExecutor()``


async def wait_job(future: ProcessFuture[T]) -> T:
    """The result of ``future``'s job, awaited: ``await future``, which also stops the job
    if the awaiting task is cancelled (module doc)."""
    return await future


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
