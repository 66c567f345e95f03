"""Nothing the command line prints is lost (issue 31): job output, log rows and messages
arrive whole, in every output mode and in both of Python's buffering modes, even through
a pipe that takes a little at a time; and output that cannot be written (a full disk) ends
the run with one line naming the file, the jobs stopped, the rows already written intact.

The pipe is made 4 KiB small and non-blocking on procexec's side, and read in small
chunks: every write larger than what the pipe holds then takes several calls, whatever the
timing. (Under ``python -u`` a partial write went unnoticed and the rest was dropped.)
"""

from __future__ import annotations

import collections
import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")
PROCEXEC = [sys.executable, "-m", "procexec"]
LETTERS = ["a", "b", "c", "d"]
LINES = 20_000  # per job: 40 kB, ten times the pipe
PIPE_SIZE = 4096
#: Each job prints LINES lines of its letter.
PRINTS = f"yes {{}} | head -n {LINES}"


def environment(buffering: str) -> dict[str, str]:
    """procexec's environment: its stdout and stderr buffered (the default) or not."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if buffering == "unbuffered":
        env["PYTHONUNBUFFERED"] = "1"
    return env


class SlowPipe:
    """A pipe that holds PIPE_SIZE bytes, non-blocking on its write end (procexec's), and
    a thread that empties it PIPE_SIZE // 4 bytes per read."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        fcntl.fcntl(self.write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        os.set_blocking(self.write_fd, False)
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while chunk := os.read(self.read_fd, PIPE_SIZE // 4):
            self.chunks.append(chunk)

    def close_writer(self) -> None:
        """Our copy of the write end: procexec has its own."""
        os.close(self.write_fd)

    def data(self) -> bytes:
        """Everything written, once every writer has closed the pipe."""
        self.reader.join(timeout=120)
        assert not self.reader.is_alive(), "the pipe was never closed"
        os.close(self.read_fd)
        return b"".join(self.chunks)


def run_into_slow_pipe(
    args: list[str], buffering: str, cwd: Path, stream: str = "stdout"
) -> tuple[int, bytes, bytes]:
    """Run procexec with ``stream`` (stdout or stderr) a SlowPipe: (status, what the pipe
    got, what the other stream got)."""
    pipe = SlowPipe()
    slow = stream == "stdout"
    with subprocess.Popen(
        [*PROCEXEC, *args],
        env=environment(buffering),
        cwd=cwd,
        stdout=pipe.write_fd if slow else subprocess.PIPE,
        stderr=subprocess.PIPE if slow else pipe.write_fd,
    ) as process:
        pipe.close_writer()
        other = process.stderr if slow else process.stdout
        assert other is not None
        rest = other.read()
        status = process.wait(timeout=120)
    return status, pipe.data(), rest


def blocks(lines: Sequence[T]) -> list[tuple[T, int]]:
    """Runs of equal lines: (line, how many), in order."""
    runs: list[tuple[T, int]] = []
    for line in lines:
        if runs and runs[-1][0] == line:
            runs[-1] = (line, runs[-1][1] + 1)
        else:
            runs.append((line, 1))
    return runs


BUFFERING = ["buffered", "unbuffered"]


@pytest.fixture(params=BUFFERING)
def buffering(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


@pytest.mark.parametrize(
    ("options", "tagged", "ordered"),
    [([], False, False), (["-k"], False, True), (["--tag"], True, False)],
)
def test_grouped_output_arrives_whole(
    options: list[str], tagged: bool, ordered: bool, buffering: str, tmp_path: Path
) -> None:
    status, out, err = run_into_slow_pipe([*options, PRINTS, ":::", *LETTERS], buffering, tmp_path)
    assert (status, err) == (0, b"")
    expected = [(f"{x}\t{x}" if tagged else x).encode() for x in LETTERS]
    runs = blocks(out.split(b"\n")[:-1])
    assert all(count == LINES for _, count in runs), runs  # each job's output whole
    assert sorted(line for line, _ in runs) == expected
    if ordered:
        assert [line for line, _ in runs] == expected
    assert out.endswith(b"\n")


def test_line_buffered_output_arrives_whole(buffering: str, tmp_path: Path) -> None:
    status, out, err = run_into_slow_pipe(
        ["--line-buffer", "--tag", PRINTS, ":::", *LETTERS], buffering, tmp_path
    )
    assert (status, err) == (0, b"")
    counts = collections.Counter(out.split(b"\n"))
    assert counts == {f"{x}\t{x}".encode(): LINES for x in LETTERS} | {b"": 1}


def test_ungrouped_command_lines_arrive_whole(buffering: str, tmp_path: Path) -> None:
    """-u: the jobs write for themselves (nothing here); procexec prints -v's lines."""
    values = [letter * 60_000 for letter in LETTERS]  # command lines longer than the pipe
    status, out, err = run_into_slow_pipe(["-u", "-v", "true", ":::", *values], buffering, tmp_path)
    assert (status, err) == (0, b"")
    assert sorted(out.decode().splitlines()) == [f"true {value}" for value in values]


def test_job_log_on_stdout_arrives_whole(buffering: str, tmp_path: Path) -> None:
    status, out, err = run_into_slow_pipe(
        ["-k", "--joblog", "-", PRINTS, ":::", *LETTERS], buffering, tmp_path
    )
    assert (status, err) == (0, b"")
    lines = out.decode().split("\n")
    assert lines[0].startswith("Seq\tHost\tStarttime")
    rows = [line.split("\t") for line in lines if line[:1].isdigit()]  # as the jobs end
    assert sorted((row[0], row[8]) for row in rows) == [
        (str(n), PRINTS.replace("{}", x)) for n, x in enumerate(LETTERS, 1)
    ]
    output = [line for line in lines[1:] if len(line) == 1]
    assert blocks(output) == [(x, LINES) for x in LETTERS]


def test_results_are_saved_whole(buffering: str, tmp_path: Path) -> None:
    status, out, err = run_into_slow_pipe(
        ["--results", "out", PRINTS, ":::", *LETTERS], buffering, tmp_path
    )
    assert (status, out, err) == (0, b"", b"")
    for letter in LETTERS:
        assert (tmp_path / "out" / "1" / letter / "stdout").read_text() == f"{letter}\n" * LINES


def test_job_stderr_arrives_whole(buffering: str, tmp_path: Path) -> None:
    status, err, out = run_into_slow_pipe(
        [f"{PRINTS} >&2", ":::", *LETTERS], buffering, tmp_path, stream="stderr"
    )
    assert (status, out) == (0, b"")
    assert sorted(blocks(err.split(b"\n")[:-1])) == [(x.encode(), LINES) for x in LETTERS]
