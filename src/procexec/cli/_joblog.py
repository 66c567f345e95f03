"""GNU parallel's job log: a tab-separated header and one row per finished job.

``Seq Host Starttime JobRuntime Send Receive Exitval Signal Command``: Starttime is epoch
seconds with three decimals, JobRuntime seconds right-aligned in ten characters with three
decimals, Host ``:`` for this machine, Send 0, Receive the bytes of stdout, Exitval the exit
code (0 when killed by a signal, -1 when stopped at its timeout), Signal the signal number.
Each row is written whole as its job ends, so a crash loses nothing already finished, and
a full disk leaves the rows before intact (see procexec.cli._sink).
"""

from __future__ import annotations

import os
from typing import NamedTuple

from procexec.cli._sink import Sink

HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


class Row(NamedTuple):
    """One finished job, as the job log records it."""

    seq: int
    start: float
    runtime: float
    received: int
    returncode: int
    command: str
    timed_out: bool = False
    host: str = ":"  # GNU parallel's ":" is this machine; else the Dask worker

    def format(self) -> str:
        """The row as GNU parallel writes it (a timed-out job: Exitval -1, and the signal)."""
        exitval, signum = (0, -self.returncode) if self.returncode < 0 else (self.returncode, 0)
        if self.timed_out:
            exitval = -1
        command = self.command.replace("\n", " ").replace("\t", " ")
        return (
            f"{self.seq}\t{self.host}\t{self.start:.3f}\t{self.runtime:10.3f}\t0\t{self.received}\t"
            f"{exitval}\t{signum}\t{command}\n"
        )


def read_outcomes(path: str) -> dict[int, bool]:
    """Seq -> succeeded, from an existing job log (the last row of a seq wins).

    A missing or empty file gives an empty dict. A row cut off by a crash (a row's first
    fields, the rest missing) is left out: that job did not finish. Anything else that is
    not a job log row raises MalformedLogError naming the file and the line: resuming from
    a log misread would run every job again.
    """
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            text = file.read()
    except FileNotFoundError:
        return {}
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    first = 2 if lines and lines[0].startswith("Seq\t") else 1  # +FILE logs have no header
    if first == 1 and lines and not _is_row(lines[0]):
        raise MalformedLogError(f"{path} is not a job log: its first line is not the header")
    outcomes: dict[int, bool] = {}
    for number, line in enumerate(lines[first - 1 :], first):
        fields = line.split("\t")
        if len(fields) < len(HEADER.split("\t")) and fields[0].isdigit():
            continue  # a row cut off by a crash (a newline was added after it): not finished
        try:
            seq, exitval, signum = int(fields[0]), int(fields[6]), int(fields[7])
        except (IndexError, ValueError):
            raise MalformedLogError(
                f"{path}, line {number}: not a job log row (Seq, Host, Starttime, JobRuntime, "
                f"Send, Receive, Exitval, Signal, Command): {line[:80]!r}"
            ) from None
        outcomes[seq] = exitval == 0 and signum == 0
    return outcomes


def _is_row(line: str) -> bool:
    fields = line.split("\t")
    return len(fields) >= len(HEADER.split("\t")) and all(
        field.lstrip("-").isdigit() for field in (fields[0], fields[6], fields[7])
    )


class MalformedLogError(ValueError):
    """A file given to ``--resume`` is not a job log."""


class JobLog:
    """An open job log: a new run replaces the file, a resumed one (``append``) adds its
    rows, writing the header first if the file is new (GNU parallel's rule; with
    ``header`` False, as for ``--joblog +FILE``, never). ``-`` is ``stdout``.

    A log whose last row was cut off (a crash while it was written) gets a newline first,
    so that the next row starts a line of its own. Raises OSError if the file cannot be
    opened, OutputError if the header cannot be written.
    """

    def __init__(
        self, path: str, stdout: Sink, *, append: bool = False, header: bool = True
    ) -> None:
        if path == "-":
            self._sink = stdout
        else:
            self._sink = Sink.open(path, f"job log {path}", append=append)
        try:
            if path == "-" or os.path.getsize(path) == 0:
                if header:  # not for --joblog +FILE: GNU parallel writes none there
                    self._sink.text(HEADER)
            elif not _ends_with_newline(path):
                self._sink.text("\n")
        except BaseException:
            self._sink.close()
            raise

    def write(self, row: Row) -> None:
        """Append one row, whole."""
        self._sink.text(row.format())

    def close(self) -> None:
        """Close the file (not standard output)."""
        self._sink.close()


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"
