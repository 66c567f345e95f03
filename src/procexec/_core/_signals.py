"""SIGTERM or SIGHUP while a ``with ProcessExecutor()`` block runs: an exception, so jobs
are stopped.

Python turns SIGINT into KeyboardInterrupt, but by default SIGTERM, and SIGHUP (the
terminal closing), end the interpreter at once, leaving children in their own process
groups running. While a with-block of the main thread runs, each of these signals that had
its default action when the outermost such block was entered gets a handler that raises
``SystemExit(128 + signal)`` (143, 129: the statuses a shell reports). The block then stops
and reaps the jobs like for any exception, and the interpreter exits with that status. A
signal the program handles or ignores (``nohup``) is left alone. The default actions are
restored when the last armed block is left.

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

import contextlib
import io
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from procexec._core._failures import contain_callback_errors

_log = logging.getLogger("procexec")

#: The signals that end the interpreter by default and that an armed block turns into
#: ``SystemExit(128 + signal)``.
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def exit_status(signum: int) -> int:
    """The exit status for a signal: 128 + its number, as shells report it."""
    return 128 + signum


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(exit_status(signum))


class SignalWatch:
    """A daemon thread that calls ``react(signum)`` for each signal reaching a Python handler.

    It owns the interpreter's wakeup fd while it runs; only the main thread may start or
    stop it.
    """

    __slots__ = ("_thread", "_write")

    def __init__(self, write: int, thread: threading.Thread) -> None:
        # A file object, so that closing it again (stop() retried after an interrupt)
        # cannot close an fd that has been reused meanwhile.
        self._write = io.FileIO(write, "wb")
        self._thread = thread

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
        except BaseException:  # interrupted: the thread may run; it closes its read end
            signal.set_wakeup_fd(-1)
            os.close(write)
            raise
        return cls(write, thread)

    def stop(self) -> None:
        """Give the wakeup fd back and end the thread (which closes its read end).

        Idempotent, and each step is taken even if an interrupt lands in the one before.
        """
        try:
            if not self._write.closed:
                current = signal.set_wakeup_fd(-1)
                if current not in (-1, self._write.fileno()):
                    signal.set_wakeup_fd(current)  # taken over meanwhile: it stays theirs
        finally:
            try:
                self._write.close()  # the thread reads end-of-file and returns
            finally:
                self._thread.join()


def _close(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


def _relay(read: int, react: Callable[[int], None]) -> None:
    contain_callback_errors()  # the jobs' futures may be cancelled from here
    try:
        while data := os.read(read, 64):
            for signum in data:
                try:
                    react(signum)
                except BaseException:  # a bug here must not end the watch: log it
                    _log.exception("procexec: reacting to signal %d failed", signum)
    finally:
        os.close(read)


class SignalsAsExit:
    """Arms the SIGTERM and SIGHUP handlers for one with-block, when that is safe to do.

    ``stop_jobs`` must start stopping the block's jobs without waiting; it is called from
    the watch thread when one of those signals arrives.
    """

    __slots__ = ("_armed", "_stop_jobs")

    def __init__(self, stop_jobs: Callable[[], None]) -> None:
        self._armed = False
        self._stop_jobs = stop_jobs

    def arm(self) -> None:
        """Join the armed blocks if this is the main thread and one of the signals is free
        to take (or taken by an outer block)."""
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers, and only it runs them
        ours, installed = False, []
        for signum in EXIT_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is signal.SIG_DFL:
                signal.signal(signum, _raise_exit)
                installed.append(signum)
            elif handler is not _raise_exit:
                continue  # the program has its own plan for it, or ignores it
            ours = True
        if not ours:
            return
        try:
            _armed.join(self)
        except BaseException:  # interrupted: put back what this block installed
            for signum in installed:
                signal.signal(signum, signal.SIG_DFL)
            raise
        self._armed = True

    def disarm(self) -> None:
        """Leave the armed blocks; the last one out restores the default actions.

        Idempotent: if an interrupt cuts it short, calling it again completes it.
        """
        if not self._armed:
            return
        if _armed.leave(self):
            for signum in EXIT_SIGNALS:
                if signal.getsignal(signum) is _raise_exit:
                    signal.signal(signum, signal.SIG_DFL)
        self._armed = False

    def stop_jobs(self) -> None:
        """Start stopping this block's jobs (called from the watch thread)."""
        self._stop_jobs()


class _ArmedBlocks:
    """The with-blocks armed in the main thread, and the watch that serves them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # the watch thread reads the blocks
        self._blocks: list[SignalsAsExit] = []
        self._watch: SignalWatch | None = None

    def join(self, block: SignalsAsExit) -> None:
        with self._lock:
            first = not self._blocks
            self._blocks.append(block)
        if first:
            try:
                self._watch = SignalWatch.start(self._react)
            except BaseException:  # interrupted: the block is not armed after all
                with self._lock:
                    self._blocks.remove(block)
                raise

    def leave(self, block: SignalsAsExit) -> bool:
        """Remove ``block`` (if still there); True if no block is left. Idempotent."""
        with self._lock:
            with contextlib.suppress(ValueError):
                self._blocks.remove(block)
            last = not self._blocks
        if last and self._watch is not None:
            self._watch.stop()
            self._watch = None
        return last

    def _react(self, signum: int) -> None:
        if signum not in EXIT_SIGNALS or signal.getsignal(signum) is not _raise_exit:
            return  # not one the blocks armed: the program's own handler deals with it
        with self._lock:
            blocks = list(self._blocks)
        for block in blocks:
            block.stop_jobs()


_armed = _ArmedBlocks()
