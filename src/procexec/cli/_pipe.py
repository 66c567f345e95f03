"""``--pipe``: standard input cut into blocks of whole records, one block per job's stdin,
as GNU parallel cuts it.

Input is read ``--block`` bytes at a time (1M by default; ``k`` is 1000, ``K`` 1024):
each round fills the buffer up to the next multiple of the block size, then cuts it

- at the last record boundary in it (a record ends after ``--recend``, a newline by
  default, where the next starts with ``--recstart``; with ``--recstart`` alone any place
  before it is a boundary);
- with ``-N n`` (or ``-n n``), after every n records;
- with ``-L n``, at the last line that ends a group of n lines.

A round that cuts nothing (a record longer than the block) warns, as GNU parallel does,
and makes the block 1.3 times bigger. What is left at the end of the input is the last
block. Each cut searches only the bytes that came since the last one, so the work is linear
in the input, a 1 GB record included. ``-r`` drops blank lines; ``--header REGEX`` takes
what REGEX matches at the start of the input (``:`` the first line, ``N`` the first N
lines) and gives it to every job before its block.

Input is read as the jobs run, a few blocks ahead, never whole. With ``--round-robin``,
``-j`` jobs run for the whole input and each block goes to the stdin of whichever is ready.
"""

from __future__ import annotations

import argparse
import os
import re
import select
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from procexec.cli._feed import Feed, Job
from procexec.cli._values import UsageError, parse_size, unescape

#: GNU parallel grows a block at most to this (2 GiB less one byte).
_LARGEST_BLOCK = 2**31 - 1
#: The most read at once while filling a block.
_READ = 1 << 20

Reader = Callable[[int], bytes]


@dataclass(frozen=True)
class PipeSpec:
    """How ``--pipe`` cuts the input."""

    block: int
    recend: bytes
    recstart: bytes
    records: int | None = None  # -N / -n: records per block (-L too: n lines each)
    lines: int | None = None  # -L alone: blocks of whole groups of n lines
    skip_blank: bool = False  # -r
    header: str | None = None  # --header REGEX
    round_robin: bool = False

    def feed(self, jobs: int) -> Feed:
        """The jobs: one per block, read from stdin a few blocks ahead of the runner; with
        round robin, ``jobs`` jobs whose stdin a thread writes the blocks to."""
        blocks = self.blocks(_stdin_reader())
        if self.round_robin:
            robin = RoundRobin(blocks, jobs)
            listed = [Job(seq, seq - 1, (), stdin=robin) for seq in range(1, jobs + 1)]
            return Feed(iter(listed), threaded=False, on_close=robin.close)
        numbered = (Job(seq, seq - 1, (), data=block) for seq, block in enumerate(blocks, 1))
        return Feed(numbered, threaded=True, ahead=2)

    def blocks(self, read: Reader) -> Iterator[bytes]:
        """The blocks of the input (``read(n)``: up to n more bytes, b"" at its end)."""
        return _Cutter(self, read).blocks()


class _Cutter:
    """The buffer of input not yet handed out, and where it was searched up to."""

    def __init__(self, spec: PipeSpec, read: Reader) -> None:
        self.spec = spec
        self.read = read
        self.block = spec.block
        self.buffer = bytearray()
        self.boundary = spec.recend + spec.recstart
        self.searched = 0  # the buffer holds no boundary wholly before this offset
        self.taken = 0  # the bytes handed out so far: the buffer's offset in the input
        self.found: deque[int] = deque()  # -N: boundaries found (input offsets), not cut at
        self.lines = 0  # -L: newlines before ``searched``

    def blocks(self) -> Iterator[bytes]:
        header = self._header()
        while True:
            ended = self._fill()
            cut_any = False
            for cut in self._cuts(ended):
                yield header + self._take(cut)
                cut_any = True
            if ended:
                break
            if not cut_any:
                self._grow()
        if self.buffer:
            yield header + self._take(len(self.buffer))

    def _fill(self) -> bool:
        """Read up to the next multiple of the block size; whether the input ended."""
        start = len(self.buffer)
        wanted = self.block - start % self.block
        while wanted:
            chunk = self.read(min(wanted, _READ))
            if not chunk:
                self._drop_blank(start)
                return True
            self.buffer += chunk
            wanted -= len(chunk)
        self._drop_blank(start)
        return False

    def _drop_blank(self, start: int) -> None:
        """``-r``: take out the lines made only of blanks, from the line under way at
        ``start`` on (the lines before it were looked at already)."""
        if not self.spec.skip_blank:
            return
        line = self.buffer.rfind(b"\n", 0, start) + 1
        self.buffer[line:] = _BLANK_LINES.sub(b"", bytes(self.buffer[line:]))
        self.searched = min(self.searched, line)
        while self.found and self.found[-1] >= self.taken + line:
            self.found.pop()

    def _grow(self) -> None:
        """Nothing could be cut: a record is longer than the block. Warn, as GNU parallel
        does, and make the block bigger."""
        if self.block >= _LARGEST_BLOCK:
            return
        old, self.block = self.block, min(-(-self.block * 13 // 10) + 1, _LARGEST_BLOCK)
        print(
            f"procexec: Warning: A record was longer than {old}. Increasing to --blocksize "
            f"{self.block}.",
            file=sys.stderr,
            flush=True,
        )

    def _take(self, cut: int) -> bytes:
        """Hand out the first ``cut`` bytes (copied once): what was searched moves with
        the rest."""
        with memoryview(self.buffer) as view:
            data = bytes(view[:cut])
        del self.buffer[:cut]
        self.searched = max(0, self.searched - cut)
        self.taken += cut
        while self.found and self.found[0] < self.taken + 1:
            self.found.popleft()
        return data

    def _cuts(self, ended: bool) -> Iterator[int]:
        """Where to cut the buffer this round, each offset counted after the cuts before."""
        if self.spec.lines is not None and self.spec.records is None:
            cut = self._lines_cut()
            if cut:
                yield cut
        elif self.spec.records is not None:
            yield from self._record_cuts(self.spec.records * (self.spec.lines or 1))
        elif not ended:
            cut = self._last_boundary()
            if cut:
                yield cut

    def _last_boundary(self) -> int:
        """The end of the last whole record (0: none), searching only new bytes."""
        if not self.boundary:
            return len(self.buffer)
        start = max(0, self.searched - len(self.boundary) + 1)
        self.searched = len(self.buffer)
        found = self.buffer.rfind(self.boundary, start)
        return found + len(self.spec.recend) if found >= 0 else 0

    def _record_cuts(self, count: int) -> Iterator[int]:
        """``-N``: the end of every ``count`` records (GNU parallel counts boundaries from
        the second byte of what is left: one at its very start does not count)."""
        if not self.boundary:
            while self.buffer:
                yield min(count, len(self.buffer))
            return
        self._find_boundaries()
        while len(self.found) >= count and self.buffer:
            yield self.found[count - 1] - self.taken + len(self.spec.recend)
            self._find_boundaries()

    def _find_boundaries(self) -> None:
        """Record the boundaries in the bytes not searched yet."""
        at = max(1, self.searched - len(self.boundary) + 1)
        if self.found:
            at = max(at, self.found[-1] - self.taken + 1)
        while (found := self.buffer.find(self.boundary, at)) >= 0:
            self.found.append(self.taken + found)
            at = found + 1
        self.searched = len(self.buffer)

    def _lines_cut(self) -> int:
        """``-L n``: the end of the last line that closes a group of n lines (0: none)."""
        self.lines += self.buffer.count(b"\n", self.searched)
        self.searched = len(self.buffer)
        assert self.spec.lines is not None
        extra = self.lines % max(self.spec.lines, 1)
        end = len(self.buffer)
        for _ in range(extra + 1):
            end = self.buffer.rfind(b"\n", 0, end)
            if end < 0:
                return 0
        self.lines -= self.lines - extra
        return end + 1

    def _header(self) -> bytes:
        """``--header REGEX``: what it matches at the start of the input, taken off it
        (read a block at a time until it matches, or the input ends: no header)."""
        if self.spec.header is None:
            return b""
        pattern = re.compile(_header_pattern(self.spec.header).encode("utf-8", "surrogateescape"))
        while chunk := self.read(self.block):
            self.buffer += chunk
            match = pattern.match(self.buffer)
            if match:
                header = bytes(self.buffer[: match.end()])
                del self.buffer[: match.end()]
                return header
        return b""


_BLANK_LINES = re.compile(rb"(?m)^\s*\n")


def _header_pattern(header: str) -> str:
    """GNU parallel's reading of ``--header``: ``:`` one line, N that many lines, else a
    regular expression."""
    if header == ":":
        return r".*\n"
    if header.isdigit():
        return r"(?:.*\n)" + f"{{{int(header)}}}"
    return header


def _stdin_reader() -> Reader:
    """Reads standard input with ``os.read`` (see procexec.cli._inputs.read_chunks)."""
    if sys.stdin is None:
        return lambda size: b""
    try:
        fd = sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's StringIO)
        return sys.stdin.buffer.read
    return lambda size: os.read(fd, size)


class RoundRobin:
    """``--round-robin``: a pipe to each job's stdin, and a thread that writes each block,
    whole, to a job ready to read, then closes every pipe at the end of the input."""

    def __init__(self, blocks: Iterator[bytes], jobs: int) -> None:
        self.blocks = blocks
        self.pipes = [os.pipe() for _ in range(jobs)]
        self.started = 0

    def stdin_for(self, job: Job) -> int:
        """The read end for ``job``'s stdin."""
        return self.pipes[job.index][0]

    def handed_over(self, job: Job) -> None:
        """``job`` started (or failed to): close procexec's copy of its read end; once
        every job has one, start writing."""
        os.close(self.pipes[job.index][0])
        self.started += 1
        if self.started == len(self.pipes):
            threading.Thread(target=self._write, name="procexec-round-robin", daemon=True).start()

    def close(self) -> None:
        """Close what is still open (a run stopped before every job started)."""
        for read, write in self.pipes[self.started :]:
            os.close(read)
            os.close(write)
        self.pipes = self.pipes[: self.started]

    def _write(self) -> None:
        open_ends = [write for _, write in self.pipes]
        turn = 0
        try:
            for block in self.blocks:
                while open_ends:
                    _, ready, _ = select.select([], open_ends, [])
                    end = min(ready, key=lambda fd: (open_ends.index(fd) - turn) % len(open_ends))
                    turn = open_ends.index(end) + 1
                    if self._send(end, block):
                        break
                    open_ends.remove(end)
                    os.close(end)
                if not open_ends:
                    return  # every job has exited: the rest of the input goes nowhere
        finally:
            for end in open_ends:
                os.close(end)

    @staticmethod
    def _send(fd: int, block: bytes) -> bool:
        """Write all of ``block``; False if the job no longer reads."""
        view = memoryview(block)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except BrokenPipeError:
            return False
        return True


def parse_pipe(options: argparse.Namespace, records: int | None, lines: int | None) -> PipeSpec:
    """The ``--pipe`` options, checked (``records``: ``-N``/``-n``; ``lines``: ``-L``)."""
    block = parse_size(options.block, "--block")
    if block < 1:
        raise UsageError(f"--block takes a size of at least 1 byte, not {options.block!r}")
    if options.header is not None:
        try:
            re.compile(_header_pattern(options.header))
        except re.error as error:
            raise UsageError(f"--header {options.header!r}: {error}") from None
    if options.recend is None and options.recstart is None:
        recend, recstart = b"\n", b""  # GNU parallel's default: lines
    else:  # --recstart alone: any place before a record start is a boundary
        recend = unescape(options.recend or "")
        recstart = unescape(options.recstart or "")
    return PipeSpec(
        block,
        recend,
        recstart,
        records=records,
        lines=lines,
        skip_blank=options.no_run_if_empty,
        header=options.header,
        round_robin=options.round_robin,
    )
