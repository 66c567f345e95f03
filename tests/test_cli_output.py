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
import errno
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from procexec.cli import _sink, main
from tests._helpers import assert_dies, log_rows, run_cli

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


def test_dry_run_lines_arrive_whole(buffering: str, tmp_path: Path) -> None:
    values = [f"{n:03d}" + "x" * 1000 for n in range(200)]
    status, out, err = run_into_slow_pipe(
        ["--dry-run", "echo", ":::", *values], buffering, tmp_path
    )
    assert (status, err) == (0, b"")
    assert out.decode().splitlines() == [f"echo {value}" for value in values]


def test_dry_run_into_a_closed_or_full_stdout(tmp_path: Path) -> None:
    many = [str(n) for n in range(20_000)]
    script = (
        f"{' '.join(PROCEXEC)} --dry-run echo ::: {' '.join(many)} | head -1; "
        "echo ${PIPESTATUS[0]} >&2"
    )
    closed = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert (closed.stdout, closed.stderr) == ("echo 0\n", "141\n")  # quietly, as a run
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [*PROCEXEC, "--dry-run", "echo", ":::", "a"], stdout=full, stderr=subprocess.PIPE,
            text=True, timeout=120, check=False,
        )  # fmt: skip
    assert result.stderr == "procexec: cannot write standard output: No space left on device\n"
    assert result.returncode == 255


def test_job_stderr_arrives_whole(buffering: str, tmp_path: Path) -> None:
    status, err, out = run_into_slow_pipe(
        [f"{PRINTS} >&2", ":::", *LETTERS], buffering, tmp_path, stream="stderr"
    )
    assert (status, out) == (0, b"")
    assert sorted(blocks(err.split(b"\n")[:-1])) == [(x.encode(), LINES) for x in LETTERS]


# ------------------------------------------------------------------------ a full disk
#: A job per argument: "long" writes its pid to long.pid and sleeps; "print" waits for
#: long.pid, then prints a line; anything else does nothing.
JOB = """
case $1 in
long) echo $$ > long.pid; exec sleep 300 ;;
print) while [ ! -e long.pid ]; do sleep 0.01; done; echo printed ;;
esac
"""
#: Quiet jobs whose log rows are long: a few fill a 4 KiB disk.
FILLERS = [f"{n:03d}" + "x" * 300 for n in range(40)]


def job_argv(directory: Path) -> list[str]:
    (directory / "job.sh").write_text(JOB)
    return ["sh", str(directory / "job.sh")]


def assert_stopped(directory: Path) -> None:
    """The long job was stopped (it would sleep for 300 s)."""
    assert_dies(int((directory / "long.pid").read_text()), timeout=30)


@pytest.mark.parametrize("mode", [[], ["--line-buffer"]])
def test_a_full_stdout_ends_the_run_with_one_line(mode: list[str], tmp_path: Path) -> None:
    """stdout on /dev/full: the job that printed is not logged (its output is lost, so
    --resume runs it again); the one that finished before is; the long one is stopped."""
    with open(os.devnull, "rb") as stdin, open("/dev/full", "wb") as full:
        result = subprocess.run(
            [*PROCEXEC, *mode, "-j", "2", "--joblog", "log", *job_argv(tmp_path), ":::",
             "quiet", "long", "print"],
            stdin=stdin, stdout=full, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            timeout=120, check=False,
        )  # fmt: skip
    assert result.stderr == "procexec: cannot write standard output: No space left on device\n"
    assert result.returncode == 255
    assert [row[8].split()[-1] for row in log_rows(tmp_path / "log")] == ["quiet"]
    assert_stopped(tmp_path)


def check_full_log(path: Path, option: str, reason: str, stderr: str, status: int) -> None:
    """The run ended with one line naming the file, and the file holds whole rows only."""
    name = "job log" if option == "--joblog" else "--joblog-json file"
    assert stderr == f"procexec: cannot write {name} {path}: {reason}\n"
    assert status == 255
    text = path.read_text()
    assert text.endswith("\n")
    if option == "--joblog":
        rows = [line.split("\t") for line in text.splitlines()[1:]]
        assert all(len(row) == 9 and row[8].startswith("sh ") for row in rows), rows
        seqs = [int(row[0]) for row in rows]
    else:
        seqs = [json.loads(line)["seq"] for line in text.splitlines()]
    assert len(seqs) >= 2 and len(set(seqs)) == len(seqs)


def small_tmpfs_refused() -> str | None:
    """Why this machine cannot mount a small tmpfs in a namespace of its own, or None."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    with tempfile.TemporaryDirectory() as directory:
        probe = subprocess.run(
            ["unshare", "--user", "--map-root-user", "--mount", "mount", "-t", "tmpfs", "-o",
             "size=4k", "tmpfs", directory],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    if probe.returncode != 0:
        return f"a tmpfs cannot be mounted in a user namespace here: {probe.stderr.strip()}"
    return None


#: Mounts a 4 KiB tmpfs on $1, runs the rest of the command line, copies what it wrote to
#: $2 (the tmpfs goes away with the namespace) and exits with the command's status.
IN_SMALL_TMPFS = (
    'mount -t tmpfs -o size=4k tmpfs "$1" || exit 99; d=$1; o=$2; shift 2; "$@"; '
    's=$?; cp "$d"/* "$o"/; exit $s'
)


@pytest.mark.parametrize("option", ["--joblog", "--joblog-json"])
def test_a_full_disk_under_a_log_ends_the_run_with_one_line(option: str, tmp_path: Path) -> None:
    reason = small_tmpfs_refused()
    if reason is not None:
        pytest.skip(f"{reason} (test_a_log_write_that_fails_... injects the error instead)")
    disk, copied = tmp_path / "disk", tmp_path / "copied"
    disk.mkdir()
    copied.mkdir()
    result = subprocess.run(
        ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", IN_SMALL_TMPFS, "sh",
         str(disk), str(copied), *PROCEXEC, "-j", "2", option, str(disk / "log"),
         *job_argv(tmp_path), ":::", "long", *FILLERS],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, timeout=120,
        check=False,
    )  # fmt: skip
    assert result.stdout == ""
    (copied / "log").rename(disk / "log")  # where the message says it is
    check_full_log(
        disk / "log", option, "No space left on device", result.stderr, result.returncode
    )
    assert_stopped(tmp_path)


@pytest.mark.parametrize("option", ["--joblog", "--joblog-json"])
def test_a_log_write_that_fails_ends_the_run_with_one_line(
    option: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same, with the disk's end played by a write that takes what fits in 4 KiB, then
    fails as a full disk does."""
    log = tmp_path / "log"
    room = [4096]
    real = _sink.write_all

    def small_disk(fd: int, data: bytes) -> None:
        if Path(f"/proc/self/fd/{fd}").resolve() != log:
            real(fd, data)
            return
        real(fd, data[: room[0]])
        room[0] -= min(room[0], len(data))
        if not room[0]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(_sink, "write_all", small_disk)
    monkeypatch.chdir(tmp_path)
    status = main(["-j", "2", option, str(log), *job_argv(tmp_path), ":::", "long", *FILLERS])
    check_full_log(log, option, "No space left on device", capsys.readouterr().err, status)
    assert_stopped(tmp_path)


def test_a_report_that_cannot_be_written_fails_the_run(tmp_path: Path) -> None:
    result = run_cli("--report", "/dev/full", "true", ":::", "a", cwd=tmp_path)
    assert result.stderr == "procexec: cannot write report /dev/full: No space left on device\n"
    assert result.returncode == 255
