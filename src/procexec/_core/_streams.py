"""Non-blocking pipe ends that the reaper loop drains and feeds.

Only the thread of the job's lane touches these objects. Output is appended to a BytesIO:
it grows by realloc (mremap for large buffers, so no copy) and ``getvalue()`` hands over
its buffer without copying, so capturing N bytes costs about N bytes (a list of chunks
joined at the end costs 2N at the join). Input is written from a memoryview as fast as the
pipe accepts it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable
from typing import IO, Any

logger = logging.getLogger("procexec")

#: A pipe holds 64 KiB by default on Linux: one read empties it.
READ_SIZE = 65536
#: Full reads of one pipe in one event before the lane turns to its other work (1 MiB).
READS_PER_EVENT = 16
#: Largest single write to a child's stdin; the kernel takes what fits.
WRITE_SIZE = 65536

LineCallback = Callable[[Any], object]


class OutputPipe:
    """The parent's read end of a child's stdout or stderr.

    Attributes:
        error: what decoding a line for the line callback raised (UnicodeDecodeError), or
            None. It becomes the job's outcome; no line is handed over after it.
    """

    __slots__ = ("_decode", "_file", "_kept", "_on_line", "_partial", "error", "fd")

    def __init__(
        self,
        file: IO[bytes],
        *,
        keep: bool,
        on_line: LineCallback | None,
        decode: Callable[[bytes], Any] | None,
    ) -> None:
        self._file = file
        self.fd = file.fileno()
        os.set_blocking(self.fd, False)
        self._kept = io.BytesIO() if keep else None
        self._on_line = on_line
        self._partial = b""
        self._decode = decode
        self.error: Exception | None = None

    def read_available(self) -> bool:
        """Read what the pipe holds now, never waiting for more, and at most
        READS_PER_EVENT reads: a child that refills the pipe as fast as it is read (``yes``)
        must not keep its lane from stops, deadlines and other jobs (poll() reports the
        pipe again at the next wait).

        Returns False once every writer has closed the pipe (end of file).
        """
        for _ in range(READS_PER_EVENT):
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                return True
            if not data:
                return False
            self._feed(data)
            if len(data) < READ_SIZE:
                return True
        return True

    @property
    def closed(self) -> bool:
        """Whether the read end has been closed."""
        return self._file.closed

    def close(self) -> None:
        """Deliver a last unterminated line, then close the read end."""
        if self._partial:
            line, self._partial = self._partial, b""
            self._emit(line)
        self._file.close()

    def abandon(self) -> None:
        """Drop what was read (its memory too) and close the read end, delivering nothing
        more: the job failed."""
        self._kept = None
        self._partial = b""
        self._file.close()

    def data(self) -> bytes | None:
        """All bytes read so far, or None when output is not being kept."""
        return self._kept.getvalue() if self._kept is not None else None

    def _feed(self, data: bytes) -> None:
        if self._kept is not None:
            self._kept.write(data)
        if self._on_line is not None:
            self._split_lines(data)

    def _split_lines(self, data: bytes) -> None:
        end = data.find(b"\n")
        if end < 0:
            self._partial += data
            return
        first = self._partial + data[: end + 1]
        self._partial = b""
        self._emit(first)
        start = end + 1
        while (end := data.find(b"\n", start)) >= 0:
            self._emit(data[start : end + 1])
            start = end + 1
        self._partial = data[start:]

    def _emit(self, line: bytes) -> None:
        assert self._on_line is not None
        if self.error is not None:
            return  # a line could not be decoded: the job fails with that, none comes after
        try:
            value = self._decode(line) if self._decode else line
        except Exception as exc:  # not the callback's fault: the job's output is bad
            self.error = exc
            return
        try:
            self._on_line(value)
        except BaseException:  # on a lane's thread: nobody else would see it
            logger.exception("procexec: line callback %r raised", self._on_line)


class InputPipe:
    """The parent's write end of a child's stdin, fed from bytes the caller gave."""

    __slots__ = ("_file", "_offset", "_view", "fd")

    def __init__(self, file: IO[bytes], data: bytes) -> None:
        self._file = file
        self.fd = file.fileno()
        os.set_blocking(self.fd, False)
        self._view = memoryview(data)
        self._offset = 0

    def write_available(self) -> bool:
        """Write what the pipe accepts now. Return False when done (all written, or the
        child stopped reading)."""
        try:
            while self._offset < len(self._view):
                chunk = self._view[self._offset : self._offset + WRITE_SIZE]
                self._offset += os.write(self.fd, chunk)
        except BlockingIOError:
            return True
        except BrokenPipeError:
            pass  # the child exited or closed its stdin: what it did not read is dropped
        return False

    def close(self) -> None:
        """Close the write end, so the child sees end of input."""
        with contextlib.suppress(BrokenPipeError):
            self._file.close()
        self._view.release()
