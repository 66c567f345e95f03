"""``--pipe``: standard input cut into blocks of whole records, one block per job's stdin.

A block is ``--block`` bytes (1M by default) and then up to the end of the record under
way; a record ends after ``--recend`` (a newline by default) and, with ``--recstart``, only
where the next one starts with it. ``-N n`` makes each block n records instead. Input is
read as the jobs run, a few blocks ahead, never whole. With ``--round-robin``, ``-j`` jobs
run for the whole input and each block goes to the stdin of whichever is ready for it.
"""

from __future__ import annotations

import argparse
import os
import select
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from procexec._sizes import size_in_bytes
from procexec.cli._args import UsageError, unescape
from procexec.cli._feed import Feed, Job
from procexec.cli._inputs import read_chunks


@dataclass(frozen=True)
class PipeSpec:
    """How ``--pipe`` cuts the input."""

    block: int
    recend: bytes
    recstart: bytes
    records: int | None  # -N: records per block
    round_robin: bool = False

    def feed(self, jobs: int) -> Feed:
        """The jobs: one per block, read from stdin a few blocks ahead of the runner; with
        round robin, ``jobs`` jobs whose stdin a thread writes the blocks to."""
        blocks = self.blocks(read_chunks("-"))
        if self.round_robin:
            robin = RoundRobin(blocks, jobs)
            listed = [Job(seq, seq - 1, (), stdin=robin) for seq in range(1, jobs + 1)]
            return Feed(iter(listed), threaded=False, on_close=robin.close)
        numbered = (Job(seq, seq - 1, (), block) for seq, block in enumerate(blocks, 1))
        return Feed(numbered, threaded=True, ahead=2)

    def blocks(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """The blocks of the input (its ``chunks`` as they arrive), in order."""
        buffer = b""
        for chunk in chunks:
            buffer += chunk
            while (cut := self._cut(buffer)) is not None:
                yield buffer[:cut]
                buffer = buffer[cut:]
        if buffer:
            yield buffer

    def _cut(self, buffer: bytes) -> int | None:
        """Where the first block of ``buffer`` ends, or None if more input is needed."""
        boundary = self.recend + self.recstart
        if self.records is not None:
            at = 0
            for _ in range(self.records):
                found = buffer.find(boundary, at)
                if found < 0:
                    return None
                at = found + len(self.recend)
            return at
        if len(buffer) < self.block:
            return None
        found = buffer.find(boundary, max(0, self.block - len(boundary)))
        return None if found < 0 else found + len(self.recend)


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


def parse_pipe(options: argparse.Namespace) -> PipeSpec:
    """The ``--pipe`` options, checked."""
    block = size_in_bytes(options.block)
    if block is None or block < 1:
        raise UsageError(
            f"--block takes a size such as 64k or 1M (at least 1 byte), not {options.block!r}"
        )
    recend = unescape(options.recend)
    recstart = unescape(options.recstart or "")
    if not recend and not recstart:
        raise UsageError("--pipe needs --recend or --recstart to tell records apart")
    return PipeSpec(block, recend, recstart, options.max_args, options.round_robin)
