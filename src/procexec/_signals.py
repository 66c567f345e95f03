"""SIGTERM while a ``with ProcessExecutor()`` block runs: an exception, so jobs are stopped.

Python turns SIGINT into KeyboardInterrupt, but by default SIGTERM ends the interpreter at
once, leaving children in their own process groups running. While a with-block of the main
thread runs, and only if SIGTERM had its default action when the outermost such block was
entered, a handler raises ``SystemExit(143)`` (128 + SIGTERM, the status a shell reports).
The block then stops and reaps the jobs like for any exception, and the interpreter exits
with 143. The default action is restored when the last armed block is left.

CPython runs a Python signal handler in the main thread, between bytecodes. A signal that
lands just before the main thread blocks in a lock wait (``future.result()``,
``concurrent.futures.wait``), or that the kernel hands to another thread, leaves that wait
blocked: the handler runs only when the wait ends by itself, which for a job like
``sleep 300`` is minutes later. The C-level handler also writes the signal number to the
wakeup fd (:func:`signal.set_wakeup_fd`) at once, from whichever thread took the signal, so
a :class:`SignalWatch` thread reading that fd learns of it and stops the jobs of every armed
block. Their futures resolve, the main thread's wait ends, and the pending handler raises.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

_log = logging.getLogger("procexec")

#: The exit status for SIGTERM: 128 + the signal number, as shells report it.
SIGTERM_EXIT_STATUS = 128 + int(signal.SIGTERM)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(SIGTERM_EXIT_STATUS)


class SignalWatch:
    """A daemon thread that calls ``react(signum)`` for each signal reaching a Python handler.

    It owns the interpreter's wakeup fd while it runs; only the main thread may start or
    stop it.
    """

    __slots__ = ("_read", "_thread", "_write")

    def __init__(self, read: int, write: int, thread: threading.Thread) -> None:
        self._read, self._write, self._thread = read, write, thread

    @classmethod
    def start(cls, react: Callable[[int], None]) -> SignalWatch | None:
        """Take the wakeup fd and start the thread; None if the fd is already taken (by
        asyncio, say, whose loop then wakes on signals by itself) or no pipe or thread can
        be had; the with-block then runs as it would without the watch."""
        try:
            read, write = os.pipe()
        except OSError:  # no fd left (EMFILE): not a reason to refuse the with-block
            return None
        os.set_blocking(write, False)  # the C handler must never block on a full pipe
        previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        if previous != -1:  # not ours to take: put theirs back
            signal.set_wakeup_fd(previous)
            _close(read, write)
            return None
        thread = threading.Thread(
            target=_relay, args=(read, react), name="procexec-signals", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": run without the watch
            signal.set_wakeup_fd(-1)
            _close(read, write)
            return None
        return cls(read, write, thread)

    def stop(self) -> None:
        """Give the wakeup fd back and end the thread."""
        current = signal.set_wakeup_fd(-1)
        if current not in (-1, self._write):
            signal.set_wakeup_fd(current)  # someone took it over meanwhile: it stays theirs
        os.close(self._write)  # the thread reads end-of-file and returns
        self._thread.join()
        os.close(self._read)


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def _relay(read: int, react: Callable[[int], None]) -> None:
    while data := os.read(read, 64):
        for signum in data:
            try:
                react(signum)
            except Exception:  # a bug here must not end the watch: log it
                _log.exception("procexec: reacting to signal %d failed", signum)


class SigtermAsExit:
    """Arms the SIGTERM handler for one with-block, when that is safe to do.

    ``stop_jobs`` must start stopping the block's jobs without waiting; it is called from
    the watch thread when SIGTERM arrives.
    """

    __slots__ = ("_armed", "_stop_jobs")

    def __init__(self, stop_jobs: Callable[[], None]) -> None:
        self._armed = False
        self._stop_jobs = stop_jobs

    def arm(self) -> None:
        """Join the armed blocks if this is the main thread and SIGTERM is free to take."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers, and only it runs them
        handler = signal.getsignal(signal.SIGTERM)
        if handler is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _raise_exit)
        elif handler is not _raise_exit:
            return  # the program has its own plan for SIGTERM
        _armed.join(self)
        self._armed = True

    def disarm(self) -> None:
        """Leave the armed blocks; the last one out restores the default action."""
        if not self._armed:
            return
        self._armed = False
        if _armed.leave(self) and signal.getsignal(signal.SIGTERM) is _raise_exit:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    def stop_jobs(self) -> None:
        """Start stopping this block's jobs (called from the watch thread)."""
        self._stop_jobs()


class _ArmedBlocks:
    """The with-blocks armed in the main thread, and the watch that serves them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the watch thread reads the blocks
        self._blocks: list[SigtermAsExit] = []
        self._watch: SignalWatch | None = None

    def join(self, block: SigtermAsExit) -> None:
        with self._lock:
            first = not self._blocks
            self._blocks.append(block)
        if first:
            self._watch = SignalWatch.start(self._react)

    def leave(self, block: SigtermAsExit) -> bool:
        """Remove ``block``; True if it was the last one."""
        with self._lock:
            self._blocks.remove(block)
            last = not self._blocks
        if last and self._watch is not None:
            self._watch.stop()
            self._watch = None
        return last

    def _react(self, signum: int) -> None:
        if signum != signal.SIGTERM:
            return
        with self._lock:
            blocks = list(self._blocks)
        for block in blocks:
            block.stop_jobs()


_armed = _ArmedBlocks()
