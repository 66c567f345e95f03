"""GNU parallel's job log: a tab-separated header and one row per finished job.

``Seq Host Starttime JobRuntime Send Receive Exitval Signal Command``: Starttime is epoch
seconds with three decimals, JobRuntime seconds right-aligned in ten characters with three
decimals, Host ``:`` for this machine, Send 0, Receive the bytes of stdout, Exitval the exit
code (0 when killed by a signal, -1 when stopped at its timeout), Signal the signal number.
Each row is flushed as its job ends, so a crash loses nothing already finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO

HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


@dataclass(frozen=True)
class Row:
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

    A missing or empty file gives an empty dict. Rows that do not parse are skipped.
    """
    outcomes: dict[int, bool] = {}
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            lines = file.read().splitlines()
    except FileNotFoundError:
        return outcomes
    for line in lines[1:] if lines and lines[0].startswith("Seq\t") else lines:
        fields = line.split("\t")
        try:
            seq, exitval, signum = int(fields[0]), int(fields[6]), int(fields[7])
        except (IndexError, ValueError):
            continue
        outcomes[seq] = exitval == 0 and signum == 0
    return outcomes


class JobLog:
    """An open job log; appends rows, writing the header first if the file is new.

    A log whose last row was cut off (a crash while it was written) gets a newline first,
    so that the next row starts a line of its own.
    """

    def __init__(self, path: str) -> None:
        self._file: IO[str] = open(path, "a", encoding="utf-8", errors="surrogateescape")  # noqa: SIM115
        if self._file.tell() == 0:
            self._file.write(HEADER)
        elif not _ends_with_newline(path):
            self._file.write("\n")
        self._file.flush()

    def write(self, row: Row) -> None:
        """Append one row and flush it."""
        self._file.write(row.format())
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"
