"""``await future``: a job's outcome in asyncio, and a cancellation that stops the job.

A job's future is a :class:`concurrent.futures.Future`; awaiting it wraps it for the
running loop and shields the wrapper, so that cancelling the awaiting task does not merely
cancel the wrapper but reaches the job: one that has not started is cancelled and never
starts; a running one gets the termination sequence and the cancellation propagates once
it has ended (a second cancellation meanwhile sends SIGKILL at once).

This module loads asyncio; the rest of the engine imports it only when a future is awaited.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar, cast

T = TypeVar("T")


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
