"""``--pipe``: standard input cut into blocks of whole records, one block per job's stdin.

A block is ``--block`` bytes (1M by default) and then up to the end of the record under
way; a record ends after ``--recend`` (a newline by default) and, with ``--recstart``, only
where the next one starts with it. ``-N n`` makes each block n records instead. Input is
read as the jobs run, a few blocks ahead, never whole.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from procexec._sizes import size_in_bytes
from procexec.cli._args import UsageError
from procexec.cli._feed import Feed, Job

_CHUNK = 1 << 16


@dataclass(frozen=True)
class PipeSpec:
    """How ``--pipe`` cuts the input."""

    block: int
    recend: bytes
    recstart: bytes
    records: int | None  # -N: records per block

    def feed(self) -> Feed:
        """The jobs, one per block, read from stdin a few blocks ahead of the runner."""
        stream = sys.stdin.buffer if sys.stdin is not None else None
        blocks = self.blocks(stream) if stream is not None else iter(())
        jobs = (Job(seq, seq - 1, (), block) for seq, block in enumerate(blocks, 1))
        return Feed(jobs, threaded=True, ahead=2)

    def blocks(self, stream: object) -> Iterator[bytes]:
        """The blocks of ``stream`` (a binary file), in order."""
        read = stream.read1  # type: ignore[attr-defined]
        buffer = b""
        while chunk := read(_CHUNK):
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


def parse_pipe(options: argparse.Namespace) -> PipeSpec:
    """The ``--pipe`` options, checked."""
    block = size_in_bytes(options.block)
    if block is None or block < 1:
        raise UsageError(
            f"--block takes a size such as 64k or 1M (at least 1 byte), not {options.block!r}"
        )
    if options.round_robin:
        raise UsageError("--round-robin is not supported yet: without it each block is a job")
    recend = _unescape(options.recend)
    recstart = _unescape(options.recstart or "")
    if not recend and not recstart:
        raise UsageError("--pipe needs --recend or --recstart to tell records apart")
    return PipeSpec(block, recend, recstart, options.max_args)


def _unescape(text: str) -> bytes:
    """A separator given on the command line (``\\n``, ``\\0`` and the like understood)."""
    return text.encode("utf-8", "surrogateescape").decode("unicode_escape").encode("latin-1")
