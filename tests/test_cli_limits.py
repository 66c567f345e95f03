"""Issue 32's bounds that a comparison of outputs cannot show: a value too long for any
command line is refused as soon as it passes the limit, not held whole; input read ahead
of the jobs is bounded in bytes as well as in jobs; ``--pipe`` looks at each input byte
about once, whatever the record and block sizes; ``-j FILE`` is read again while the
batch runs. Every wait here is on a pipe, a file or a process."""

from __future__ import annotations

import csv
import functools
import io
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from procexec.cli._feed import Feed, Job
from procexec.cli._pipe import PipeSpec, _Cutter
from procexec.cli._results import Results, ResultsFile
from procexec.cli._shell import line_limit
from procexec.cli._sink import Sink
from procexec.report import JobRecord
from tests._helpers import run_cli

PROCEXEC = [sys.executable, "-m", "procexec"]
MIB = 1 << 20


def test_a_value_longer_than_any_command_line_is_refused_before_it_ends() -> None:
    """The value's first bytes come and its end never does (the pipe stays open): the run
    must end on its own, with one line, having read little more than the limit."""
    with subprocess.Popen(
        [*PROCEXEC, "echo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as process:  # fmt: skip
        assert process.stdin is not None
        try:
            try:
                process.stdin.write(b"x" * (line_limit() + 2 * 65536))
                process.stdin.flush()
            except BrokenPipeError:  # refused already, before all of this was read
                pass
            _, err = process.communicate(timeout=60)  # stdin is never closed by the writer
        finally:
            process.kill()
    assert process.returncode == 255
    assert err.decode() == (
        f"procexec: standard input, line 1: a value of more than {line_limit()} bytes, longer "
        "than any command line this system can run\n"
    )


def test_a_long_value_from_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"a\n" + b"y" * (line_limit() + 65536) + b"\nb\n")
    result = run_cli("echo", "::::", str(big))
    assert result.returncode == 255 and result.stdout in ("", "a\n")  # line 1 may have run
    assert result.stderr.startswith(f"procexec: {big}, line 2: a value of more than ")


def test_no_arguments_no_limit(tmp_path: Path) -> None:
    """-N0 uses no value: a long one is not refused."""
    big = tmp_path / "big.txt"
    big.write_bytes(b"y" * (line_limit() + 10) + b"\n")
    result = run_cli("-N0", "echo", "ran", "::::", str(big))
    assert (result.returncode, result.stdout) == (0, "ran\n"), result.stderr


def _arrivals(feed: Feed) -> Iterator[Job]:
    """Every job of a started feed, waiting on its wake-up (not on a clock)."""
    arrived = threading.Event()
    feed.start(arrived.set)
    while not feed.exhausted:
        job = feed.take()
        if job is None and not feed.exhausted:
            assert arrived.wait(timeout=60), "no job arrived"
            arrived.clear()
        elif job is not None:
            yield job


@pytest.mark.parametrize(
    ("size", "ahead", "ahead_bytes", "most_ahead"),
    [
        # at most 3 values' bytes queued, and one more job held by the reader waiting
        (64 * 1024, 256, 192 * 1024, 4),
        (1, 5, 16 * MIB, 6),
    ],
    ids=["bytes", "jobs"],
)
def test_read_ahead_is_bounded(size: int, ahead: int, ahead_bytes: int, most_ahead: int) -> None:
    produced = 0

    def jobs() -> Iterator[Job]:
        nonlocal produced
        for seq in range(1, 31):
            produced += 1
            yield Job(seq, seq - 1, ("x" * size,))

    feed = Feed(jobs(), threaded=True, ahead=ahead, ahead_bytes=ahead_bytes)
    for job in _arrivals(feed):
        assert produced - job.seq <= most_ahead
    assert feed.delivered == 30


class _CountingBuffer(bytearray):
    """A bytearray that counts the bytes its searches look at (a search that finds stops
    at what it found)."""

    looked = 0

    def _count(self, start: int | None, end: int | None, stop: int | None = None) -> None:
        start = 0 if start is None else start
        end = len(self) if end is None else end
        _CountingBuffer.looked += max(0, (end if stop is None else stop) - start)

    def find(self, sub, start=None, end=None):  # type: ignore[no-untyped-def]
        found = super().find(sub, start, end)
        self._count(start, end, None if found < 0 else found + len(sub))
        return found

    def rfind(self, sub, start=None, end=None):  # type: ignore[no-untyped-def]
        found = super().rfind(sub, start, end)
        end = len(self) if end is None else end
        self._count(found if found >= 0 else start, end)
        return found

    def count(self, sub, start=None, end=None):  # type: ignore[no-untyped-def]
        self._count(start, end)
        return super().count(sub, start, end)


#: The inputs, made when a test runs (the test process's peak memory is every later
#: child's starting figure for ru_maxrss: kept small, and never held for the session).
_INPUTS = {
    "one-long-record": lambda: b"x" * (2 * MIB) + b"\n",  # a record of 128 blocks
    "short-records": lambda: b"12345\n" * (MIB // 8),
    "prefixed": lambda: b">" + b"a" * MIB,
}


@pytest.mark.parametrize(
    ("spec", "data"),
    [
        (PipeSpec(16 * 1024, b"\n", b""), "one-long-record"),
        (PipeSpec(16 * 1024, b"\n", b""), "short-records"),
        (PipeSpec(16 * 1024, b"\n", b"", records=1000), "short-records"),
        (PipeSpec(16 * 1024, b"\n", b"", records=100_000), "short-records"),
        (PipeSpec(16 * 1024, b"\n", b"", lines=7), "short-records"),
        (PipeSpec(1024, b"", b">"), "prefixed"),
    ],
    ids=["one-long-record", "short-records", "N1000", "N100000", "L7", "recstart"],
)
def test_pipe_looks_at_each_byte_about_once(spec: PipeSpec, data: str) -> None:
    """Linear: each cut searches only what came since the last (with a record longer than
    the block, the block grows and the buffer is not searched again from its start)."""
    source = _INPUTS[data]()
    stream = io.BytesIO(source)
    cutter = _Cutter(spec, lambda size: stream.read(min(size, 4096)))
    cutter.buffer = _CountingBuffer()
    _CountingBuffer.looked = 0
    at = 0
    for block in cutter.blocks():  # the blocks are the input, in order, each checked once
        assert block == source[at : at + len(block)]
        at += len(block)
    assert at == len(source)
    assert _CountingBuffer.looked <= 1.5 * len(source) + 4096


def test_pipe_record_longer_than_the_block_warns_and_grows(
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = list(PipeSpec(10, b"\n", b"").blocks(io.BytesIO(b"x" * 100 + b"\ny\n").read))
    assert blocks == [b"x" * 100 + b"\ny\n"]  # the block grew past the end: one job
    warnings = capsys.readouterr().err.splitlines()
    assert warnings[:2] == [
        "procexec: Warning: A record was longer than 10. Increasing to --blocksize 14.",
        "procexec: Warning: A record was longer than 14. Increasing to --blocksize 20.",
    ]  # 1.3 times and one byte, rounded up, as GNU parallel grows it


def test_jobs_file_is_read_again_as_jobs_end(tmp_path: Path) -> None:
    """-j FILE holding 1; the first job writes 2 into it and ends. The next two must then
    run at once: each waits (bounded) until both have started, and says whether they did."""
    jobs = tmp_path / "jobs"
    jobs.write_text("1\n")
    wait_both = (
        'touch "started.$0"; end=$(( $(date +%s) + 30 )); '
        'while [ "$(ls started.* | wc -l)" -lt 2 ] && [ "$(date +%s)" -lt "$end" ]; '
        "do sleep 0.01; done; ls started.* | wc -l"
    )
    first = f'printf "2\\n\\n" > "{jobs}"'
    result = subprocess.run(
        [*PROCEXEC, "-k", "-j", str(jobs), "-q", "sh", "-c", f'if [ "$0" = 0 ]; then {first}; '
         f"else {wait_both}; fi", "{}", ":::", "0", "1", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2"]


def test_results_as_json_on_stdout() -> None:
    result = run_cli("-k", "--results", "-.json", "printf '%s\\n' {}; exit {#}", ":::", "a b", 'c"')
    assert result.returncode == 2, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["Seq"], r["Exitval"], r["V"], r["Stdout"]) for r in rows] == [
        (1, 1, ["a b"], "a b\n"),
        (2, 2, ['c"'], 'c"\n'),
    ]
    assert all(r["Host"] == ":" and r["Starttime"] <= time.time() for r in rows)
    assert list(rows[0]) == [
        "Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal",
        "Command", "V", "Stdout", "Stderr",
    ]  # fmt: skip


@pytest.mark.parametrize("keep_order", [True, False])
def test_results_rows_follow_keep_order(tmp_path: Path, keep_order: bool) -> None:
    """The second job's row comes first; with -k it is written after the first's (and the
    header once, before the first row written)."""
    path = tmp_path / "r.csv"
    out, err = Sink("standard output", sys.stdout), Sink("standard error", sys.stderr)
    results = ResultsFile(Results(str(path)), keep_order, out, err)
    jobs = [Job(seq, seq - 1, (f"v{seq}",)) for seq in (1, 2)]
    for job in reversed(jobs):
        results.ended(job, functools.partial(str, f"echo {job.args[0]}"), b"out\n", b"")
        results.recorded(JobRecord(seq=job.seq, command="", start=1.0, end=2.0))
    assert results.next_index == (2 if keep_order else 0)  # what the runner's -k window reads
    results.close()
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[0][:2] == ["Seq", "Host"] and rows[0][9] == "V1"
    assert [row[0] for row in rows[1:]] == (["1", "2"] if keep_order else ["2", "1"])
