"""An executor's life: its ``with`` and ``async with`` blocks, interpreter exit, and the
abort that stops and reaps every job, sync and async side by side.

```
 with ProcessExecutor() as ex:     Block.enter: at exit, stop (not wait for) this block's
                                     jobs until it is left; arm SIGTERM/SIGHUP (_signals)
   ...                             left normally: shutdown(wait=True)
                                   left by an exception: abort (cancel, stop, reap, raise)
 async with ProcessExecutor():     the same; the wait runs on a thread so the loop goes on,
                                     and a cancellation of it aborts instead
 interpreter exit                  the exit hook: abort the at_exit="stop" executors, wait
                                     for the "wait" ones (abort them too if interrupted)
```

Everything here acts on the executor's :class:`~procexec._core._reaper.Reaper`, never on
the executor itself, which imports this module.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Literal
from weakref import WeakSet

from procexec._core._reaper import Reaper
from procexec._core._signals import SignalsAsExit

if TYPE_CHECKING:
    import asyncio

AtExit = Literal["wait", "stop"]


class Block:
    """The ``with`` handling of one executor: what entering and leaving a block does."""

    __slots__ = ("_at_exit", "_reaper", "_sigterm")

    def __init__(self, reaper: Reaper, at_exit: AtExit, *, sigterm: bool) -> None:
        self._reaper = reaper
        self._at_exit = at_exit
        _at_exit[at_exit].add(reaper)
        register_exit_hook()
        self._sigterm = SignalsAsExit(partial(start_stopping, reaper)) if sigterm else None

    def enter(self) -> None:
        """Entering a ``with`` or ``async with`` block."""
        if threading.current_thread() is threading.main_thread():
            # Until the block is left, its jobs are stopped at interpreter exit, not
            # waited for: an interrupt landing on __exit__'s very first instruction
            # (CPython checks for signals as a function starts) leaves the block without
            # its cleanup, and the program is then on its way out.
            _at_exit["stop"].add(self._reaper)
        if self._sigterm is not None:
            self._sigterm.arm()

    def exit(self, error: type[BaseException] | None, shutdown: Callable[[], None]) -> None:
        """Leaving a ``with`` block: ``shutdown()`` (which waits) if it ended normally,
        else abort.

        Every step is inside a try: an interrupt (KeyboardInterrupt, or SystemExit from
        SIGTERM or SIGHUP) landing anywhere in one, even on the first instruction of a
        function it calls, still stops and reaps the jobs before it propagates. The steps
        are idempotent, so running one again is harmless.
        """
        try:
            if error is None:
                shutdown()
            else:
                abort(self._reaper)
        except (KeyboardInterrupt, SystemExit):
            abort(self._reaper)
            raise
        finally:
            try:
                self.leave()
            except (KeyboardInterrupt, SystemExit):
                self.leave()
                raise

    async def exit_async(
        self, error: type[BaseException] | None, shutdown: Callable[[], None]
    ) -> None:
        """Leaving an ``async with`` block: wait for the jobs (``shutdown()`` on a thread)
        without blocking the loop; stop and reap them instead when the block raised, or
        when this wait is cancelled."""
        import asyncio  # noqa: PLC0415  # asyncio is loaded only for its users

        try:
            loop = asyncio.get_running_loop()
            if error is None:
                waiting = loop.run_in_executor(None, shutdown)
                try:
                    await asyncio.shield(waiting)
                    return
                except asyncio.CancelledError:
                    await abort_async(self._reaper, loop, shutdown)
                    raise
            await abort_async(self._reaper, loop, shutdown)
        finally:
            self.leave()

    def leave(self) -> None:
        """Undo what :meth:`enter` did; idempotent."""
        if self._sigterm is not None:
            self._sigterm.disarm()
        if self._at_exit == "wait":
            _at_exit["stop"].discard(self._reaper)


def start_stopping(reaper: Reaper) -> None:
    """Refuse new jobs, cancel waiting ones and start stopping running ones; no wait."""
    reaper.close(cancel_pending=True)
    reaper.stop_all(kill=False)


def abort(reaper: Reaper) -> None:
    """Cancel waiting jobs, stop running ones, reap them all.

    An interrupt (KeyboardInterrupt, or SystemExit from a signal) meanwhile does not cut
    this short: the steps start again with SIGKILL in place of the termination sequence,
    and the first such interrupt is raised once every child is reaped.
    """
    interrupted: BaseException | None = None
    while True:
        try:
            start_stopping(reaper)
            if interrupted is not None:
                reaper.stop_all(kill=True)
            reaper.join()
            break
        except (KeyboardInterrupt, SystemExit) as exc:
            if interrupted is None:
                interrupted = exc
    if interrupted is not None:
        raise interrupted


def interpreter_exited() -> bool:
    """Whether the exit hook has run: no new work is taken from then on."""
    return bool(_exited)


#: Set once the exit hook has run (``atexit`` functions run after it).
_exited: list[bool] = []
#: The reapers whose jobs are waited for ("wait") or stopped ("stop") at interpreter exit.
_at_exit: dict[str, WeakSet[Reaper]] = {"wait": WeakSet(), "stop": WeakSet()}
_exit_hook: list[Callable[[], None]] = []  # the hook, once registered


def register_exit_hook() -> None:
    """Register :func:`_finish_at_exit`, once.

    The lanes are daemon threads (``_lane.py`` says why), so the interpreter does not wait
    for them by itself. CPython's ``threading._register_atexit`` runs a hook just before
    the interpreter joins its non-daemon threads, the moment it would have waited for
    them; ``concurrent.futures.thread`` uses it the same way. Elsewhere, or when the
    interpreter is already exiting, ``atexit`` serves.
    """
    if _exit_hook:
        return
    _exit_hook.append(_finish_at_exit)
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("no threading._register_atexit")
        register(_finish_at_exit)
    except RuntimeError:
        atexit.register(_finish_at_exit)


def _finish_at_exit() -> None:
    """Interpreter exit: stop and reap the jobs of the ``at_exit="stop"`` executors, then
    wait for the others'. Interrupted meanwhile (Ctrl-C), it stops and reaps those too."""
    try:
        for reaper in list(_at_exit["stop"]):
            abort(reaper)
        for reaper in list(_at_exit["wait"]):
            reaper.join()
        _exited.append(True)
    except BaseException:
        for reaper in [*_at_exit["stop"], *_at_exit["wait"]]:
            abort(reaper)
        raise


async def abort_async(
    reaper: Reaper, loop: asyncio.AbstractEventLoop, shutdown: Callable[[], None]
) -> None:
    """:func:`abort` for a coroutine: cancel the waiting jobs, stop the running ones and
    wait until they are reaped (``shutdown()``, which waits, on a thread); a cancellation
    meanwhile sends SIGKILL, and is raised once they are."""
    import asyncio  # noqa: PLC0415  # asyncio is loaded only for its users

    start_stopping(reaper)
    reaped = loop.run_in_executor(None, shutdown)
    cancelled = False
    while not reaped.done():
        try:
            await asyncio.shield(reaped)
        except asyncio.CancelledError:
            cancelled = True
            reaper.stop_all(kill=True)
    if cancelled:
        raise asyncio.CancelledError
