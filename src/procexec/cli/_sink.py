"""Where the run's bytes go, written whole: job output, log rows, the summary, messages.

Under ``python -u`` or ``PYTHONUNBUFFERED=1``, ``sys.stdout.buffer`` is a raw file whose
``write()`` may take only part of the bytes (a pipe write cut short), and the text layer
above it drops the rest without a word; a descriptor another program made non-blocking
refuses what does not fit. A :class:`Sink` flushes the stream's own layers, then writes to
the descriptor itself: it loops on partial writes and, while the descriptor is full,
waits until it can take more. So every byte arrives, in either buffering mode, and in the
order it was written.

A write that fails (a full disk) raises :class:`OutputError` naming the destination, and
so does every later write of something to that sink: what it was given is lost (a job whose
output is lost gets no log row). A closed pipe raises BrokenPipeError instead (``| head``:
the command exits quietly, status 141). A log file procexec owns is cut back to its last
whole row, so a failed write leaves no half row.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import threading
from typing import IO, Any


class OutputError(Exception):
    """Output could not be written: the run stops (status 255) with this one-line message."""


class Sink:
    """One destination: a stream such as ``sys.stdout``, or a log file procexec owns.

    ``write()`` may be called from any thread: writes to one sink never mix.
    """

    __slots__ = ("_lock", "_owned", "_size", "_stream", "failed", "name")

    def __init__(self, name: str, stream: IO[Any], *, owned: bool = False) -> None:
        """``name`` as messages say it ("standard output", "job log run.log"); ``owned``:
        a file opened for this run, unbuffered and binary, closed by :meth:`close`."""
        self.name = name
        self._stream = stream
        self._owned = owned
        self._size = os.fstat(stream.fileno()).st_size if owned else 0  # its whole rows
        self._lock = threading.Lock()
        self.failed: OSError | None = None  # the failed write's error

    @classmethod
    def open(cls, path: str, name: str, *, append: bool) -> Sink:
        """A sink writing to the file ``path`` (replaced, or with ``append`` added to).
        Raises OSError when it cannot be opened."""
        return cls(name, open(path, "ab" if append else "wb", buffering=0), owned=True)

    def write(self, data: bytes) -> None:
        """Write all of ``data``; raise OutputError (or BrokenPipeError) if it fails or
        failed before."""
        if not data:
            return
        with self._lock:
            failed = self.failed
            if failed is None:
                try:
                    self._write(data)
                    return
                except OSError as error:
                    self.failed = failed = error
                    self._cut_back()
        if isinstance(failed, BrokenPipeError):
            raise BrokenPipeError(failed.errno, failed.strerror)
        raise OutputError(f"cannot write {self.name}: {failed.strerror or failed}")

    def text(self, text: str) -> None:
        """Write ``text`` (UTF-8, undecodable bytes given back as they came)."""
        self.write(text.encode("utf-8", "surrogateescape"))

    def close(self) -> None:
        """Close the file (a stream such as stdout stays open)."""
        if self._owned:
            self._stream.close()

    def _write(self, data: bytes) -> None:
        fd = _descriptor(self._stream)
        if fd is None:  # a stream with no descriptor (a test's capture): it takes it all
            binary = getattr(self._stream, "buffer", self._stream)
            binary.write(data)
            binary.flush()
            return
        if not self._owned:
            _flush(self._stream, fd)  # what was printed before goes first
        write_all(fd, data)
        self._size += len(data)

    def _cut_back(self) -> None:
        """After a failed write to a file of ours: drop the part of a row it wrote."""
        if self._owned:  # a tidy-up: the error being raised says what went wrong
            with contextlib.suppress(OSError):
                os.ftruncate(self._stream.fileno(), self._size)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``: again after a partial write, and after
    waiting while a non-blocking ``fd`` is full."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            _wait_writable(fd)


def _flush(stream: IO[Any], fd: int) -> None:
    """Flush a stream's own buffers (they may refuse while a non-blocking ``fd`` is full)."""
    while True:
        try:
            stream.flush()
            return
        except BlockingIOError:
            _wait_writable(fd)


def _wait_writable(fd: int) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    poller.poll()


def _descriptor(stream: IO[Any]) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None
