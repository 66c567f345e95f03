"""The command line behaves as GNU parallel where issue 18 says so: input split on newline
only (or NUL with -0), jobs reading /dev/null, the job log replaced unless resuming, a
malformed log refused, a closed stdout ending the run quietly, --version. Where GNU parallel
is installed, the same command lines run with both and must agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from procexec import __version__
from tests._helpers import PARALLEL, log_rows, needs_parallel, run_cli


def both(args: list[str], stdin: bytes = b"", cwd: Path | None = None) -> tuple[bytes, bytes]:
    """stdout of GNU parallel and of procexec for the same arguments and input."""
    theirs = subprocess.run(
        [str(PARALLEL), "--will-cite", *args], input=stdin, capture_output=True, cwd=cwd,
        timeout=60, check=False,
    )  # fmt: skip
    ours = subprocess.run(
        [sys.executable, "-m", "procexec", *args], input=stdin, capture_output=True, cwd=cwd,
        timeout=60, check=False,
    )  # fmt: skip
    return theirs.stdout, ours.stdout


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"procexec {__version__}"


def test_closed_stdout_ends_the_run_quietly() -> None:
    pipeline = f"{sys.executable} -m procexec -j 2 echo ::: $(seq 3000) | head -1"
    script = pipeline + "; echo ${PIPESTATUS[0]} >&2"
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() in ("1", "2")
    assert result.stderr.strip() == "141"  # no traceback, only the status we echoed


def test_lines_split_on_newline_only() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "procexec", "-q", "-k", "printf", "<%s>"],
        input=b"a\rb\nc\x0cd\ne\x1cf\n", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.stdout == b"<a\rb><c\x0cd><e\x1cf>"


def test_null_separated_input(tmp_path: Path) -> None:
    items = tmp_path / "items"
    items.write_bytes(b"one two\0three\nfour\0")
    result = run_cli("-0", "-q", "-k", "printf", "<%s>", "::::", str(items))
    assert result.stdout == "<one two><three\nfour>"
    piped = subprocess.run(
        [sys.executable, "-m", "procexec", "--null", "-q", "-k", "printf", "<%s>"],
        input=b"x\0y", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert piped.stdout == b"<x><y>"


def test_a_nul_byte_in_line_input_is_a_one_line_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "procexec", "echo"], input="a\nb\0c\n", capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 255
    assert result.stderr.strip() == (
        "procexec: standard input, line 2: a NUL byte in the input; "
        "for NUL-separated input use -0 (--null)"
    )


def test_jobs_read_dev_null_not_procexecs_input() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "procexec", "-q", "sh", "-c", "cat; echo done {}", ":::", "1"],
        input=b"procexec's own input\n", capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.stdout == b"done 1\n"


def test_a_new_run_replaces_the_log_and_a_resumed_one_adds_to_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    run_cli("--joblog", str(log), "true", ":::", "a", "b", "c")
    run_cli("--joblog", str(log), "true", ":::", "a")
    assert [r[0] for r in log_rows(log)] == ["1"]  # replaced, not appended to
    run_cli("--joblog", str(log), "--resume", "true", ":::", "a", "b")
    assert [r[0] for r in log_rows(log)] == ["1", "2"]


def test_resume_from_a_malformed_log_is_refused(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text(
        "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\nnot a row\n"
    )
    result = run_cli("--joblog", str(log), "--resume", "touch", str(tmp_path / "ran"), ":::", "1")
    assert result.returncode == 255
    assert f"cannot resume: {log}, line 2: not a job log row" in result.stderr
    assert not (tmp_path / "ran").exists()
    other = tmp_path / "notes.txt"
    other.write_text("my notes\n")
    result = run_cli("--joblog", str(other), "--resume-failed", "true", ":::", "1")
    assert result.returncode == 255 and "is not a job log" in result.stderr
    assert other.read_text() == "my notes\n"  # left as it was


def test_joblog_to_stdout() -> None:
    result = run_cli("--joblog", "-", "true", ":::", "a")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Seq\tHost\t") and lines[1].split("\t")[0] == "1"


@needs_parallel
@pytest.mark.parametrize(
    ("args", "stdin"),
    [
        (["-k", "echo"], b"a\rb\nc\x0cd\n"),
        (["-0", "-k", "echo"], b"x  y\0z\0"),
        (["sh", "-c", "cat; echo done {}", ":::", "1"], b"parallel's own input\n"),
        (["-k", "echo", ":::", "a", "b", ":::", "1", "2"], b""),
    ],
)
def test_agrees_with_gnu_parallel(args: list[str], stdin: bytes) -> None:
    theirs, ours = both(args, stdin)
    assert ours == theirs


@needs_parallel
def test_log_replacement_agrees_with_gnu_parallel(tmp_path: Path) -> None:
    for tool, name in ((PARALLEL, "theirs"), (None, "ours")):
        log = tmp_path / name
        base = [str(tool), "--will-cite"] if tool else [sys.executable, "-m", "procexec"]
        for inputs in (["a", "b"], ["c"]):
            subprocess.run(
                [*base, "--joblog", str(log), "true", ":::", *inputs], check=True, timeout=60
            )
    assert len(log_rows(tmp_path / "theirs")) == len(log_rows(tmp_path / "ours")) == 1


def test_arg_file_is_an_input_source(tmp_path: Path) -> None:
    (tmp_path / "one").write_text("x\ny\n")
    (tmp_path / "two").write_text("1\n")
    result = run_cli("-k", "-a", "one", "-a", "two", "echo", cwd=tmp_path)
    assert result.stdout.splitlines() == ["x 1", "y 1"]


def test_tagstring() -> None:
    result = run_cli("-k", "--tagstring", "job{#}:{}", "echo", "hi", ":::", "a b", "c")
    assert result.stdout.splitlines() == ["job1:a b\thi a b", "job2:c\thi c"]
    plain = run_cli("--tagstring", "T", "echo", ":::", "a")
    assert plain.stdout == "T\ta\n"
    bad = run_cli("--tagstring", "{..}", "echo", ":::", "a")
    assert bad.returncode == 255 and "--tagstring: unknown replacement string {..}" in bad.stderr


def test_jobs_zero_runs_as_many_as_possible(tmp_path: Path) -> None:
    """-j 0: every job at once here (each waits until all have started)."""
    gate = f'touch "{tmp_path}/$0"; while [ $(ls "{tmp_path}" | wc -l) -lt 6 ]; do sleep 0.01; done'
    result = run_cli("-j", "0", "-q", "sh", "-c", gate, ":::", *map(str, range(6)), timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("short", "stops_others"), [("1", False), ("2", True)])
def test_halt_short_forms(short: str, stops_others: bool, tmp_path: Path) -> None:
    """--halt 1 is soon,fail=1 (running jobs finish); --halt 2 is now,fail=1 (they stop)."""
    done = tmp_path / "done"
    script = f'if [ "$0" = fail ]; then sleep 0.3; exit 3; fi; sleep 2; touch "{done}"'
    result = run_cli(
        "-j", "2", "--halt", short, "-q", "sh", "-c", script, ":::", "fail", "slow", "never"
    )
    assert result.returncode != 0
    assert done.exists() is not stops_others
    zero = run_cli("--halt", "0", "exit 1", ":::", "a", "b")
    assert zero.returncode == 2  # never halts: both ran and failed


@needs_parallel
def test_tagstring_and_arg_file_agree_with_gnu_parallel(tmp_path: Path) -> None:
    (tmp_path / "items").write_text("a\nb\n")
    theirs, ours = both(["-k", "--tagstring", "<{#}>", "-a", "items", "echo"], cwd=tmp_path)
    assert ours == theirs


def test_a_plus_before_the_job_log_adds_to_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    run_cli("--joblog", str(log), "echo", ":::", "a")
    run_cli("--joblog", f"+{log}", "echo", ":::", "b")
    assert [row[8] for row in log_rows(log)] == ["echo a", "echo b"]
    fresh = tmp_path / "fresh"  # a new +FILE gets no header, as GNU parallel writes it,
    run_cli("--joblog", f"+{fresh}", "echo", ":::", "a")  # and --resume still reads it
    assert fresh.read_text().split("\t")[0] == "1"
    again = run_cli("--resume", "--joblog", str(fresh), "echo", ":::", "a", "b")
    assert again.stdout == "b\n"
    if PARALLEL is not None:  # and GNU parallel reads it the same way
        theirs = tmp_path / "theirs"
        for value, name in (("a", str(theirs)), ("b", f"+{theirs}")):
            subprocess.run(
                [PARALLEL, "--will-cite", "--joblog", name, "echo", ":::", value],
                capture_output=True, check=True, timeout=60,
            )  # fmt: skip
        assert [row[8] for row in log_rows(theirs)] == ["echo a", "echo b"]
