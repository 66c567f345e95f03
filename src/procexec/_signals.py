"""SIGTERM while a ``with ProcessExecutor()`` block runs: an exception, so jobs are stopped.

Python turns SIGINT into KeyboardInterrupt, but by default SIGTERM ends the interpreter at
once, leaving children in their own process groups running. While the outermost with-block
of the main thread runs, and only if SIGTERM still has its default action, a handler raises
``SystemExit(143)`` (128 + SIGTERM, the status a shell reports). The block then stops and
reaps the jobs like for any exception, and the interpreter exits with 143. The previous
action is restored when the block is left.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

#: The exit status for SIGTERM: 128 + the signal number, as shells report it.
SIGTERM_EXIT_STATUS = 128 + int(signal.SIGTERM)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(SIGTERM_EXIT_STATUS)


class SigtermAsExit:
    """Arms the SIGTERM handler for one with-block, when that is safe to do."""

    __slots__ = ("_armed",)

    def __init__(self) -> None:
        self._armed = False

    def arm(self) -> None:
        """Install the handler if this is the main thread and SIGTERM has its default."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers, and only it receives them
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # the program has its own plan for SIGTERM, or an outer block armed it
        signal.signal(signal.SIGTERM, _raise_exit)
        self._armed = True

    def disarm(self) -> None:
        """Restore the default action if :meth:`arm` installed the handler."""
        if self._armed:
            self._armed = False
            if signal.getsignal(signal.SIGTERM) is _raise_exit:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
