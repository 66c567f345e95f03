"""How a Python call fails: :class:`CallLost`, :class:`InitializerError`, :class:`CallTimeout`.

They subclass ``concurrent.futures.process.BrokenProcessPool``, whose module loads
``multiprocessing`` (its connections and ``socket`` with them): so this module is imported
only when a call fails, or when a program names one of them (``procexec.CallLost`` is
loaded on first use), never by a plain run of commands.
"""

from __future__ import annotations

import signal
from concurrent.futures.process import BrokenProcessPool
from typing import Any


class CallLost(BrokenProcessPool):
    """The worker running a call died (a signal, the OOM killer, a segfault, ``os._exit``),
    could not read the call, or sent a result this process cannot unpickle. Only that call
    fails; the executor goes on. A :class:`concurrent.futures.process.BrokenProcessPool`,
    so that code written for CPython's pool and loky keeps working.

    Attributes:
        pid: the worker's process id, if it had started.
        returncode: how the worker ended (negative: the signal), or None if it lives on.
        stderr: the last 2 KiB the worker wrote to ``sys.stderr`` (a copy: its standard
            error itself is this process's), and after a crash faulthandler's traceback.
    """

    def __init__(
        self,
        message: str,
        *,
        pid: int | None = None,
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message + (f"; its last standard error:\n{stderr}" if stderr else ""))
        self.message = message
        self.pid = pid
        self.returncode = returncode
        self.stderr = stderr

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with what it was made of (a Dask worker sends it to the client)."""
        return (_call_lost, (self.message, self.pid, self.returncode, self.stderr))


class InitializerError(BrokenProcessPool):
    """The ``initializer`` of the worker given a call failed; that call fails with this.
    After three failed worker starts in a row, the calls already queued fail with it at
    once; a call submitted later tries again.

    Attributes:
        traceback: the initializer's traceback, as the worker printed it.
    """

    def __init__(self, traceback: str) -> None:
        last = traceback.strip().splitlines()[-1] if traceback.strip() else "unknown error"
        super().__init__(f"the worker's initializer failed: {last}\n{traceback}")
        self.traceback = traceback

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.traceback,))


class CallTimeout(TimeoutError):  # noqa: N818  # the name reads as what happened
    """A call ran past the ``timeout`` of :meth:`~procexec.ProcessExecutor.run_call`: its
    worker was stopped and replaced.

    Attributes:
        timeout: the timeout, in seconds, counted from the call's start.
    """

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the call did not finish within {timeout:g} s of its start")
        self.timeout = timeout

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.timeout,))


def _call_lost(message: str, pid: int | None, returncode: int | None, stderr: str) -> CallLost:
    return CallLost(message, pid=pid, returncode=returncode, stderr=stderr)


def lost_because(returncode: int) -> str:
    """How a worker's end reads in a :class:`CallLost` message."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with status {returncode}"
