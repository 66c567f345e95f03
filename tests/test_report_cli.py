"""The report on the command line: --joblog-json, --report, --summary, ``procexec report``."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag

from procexec.cli import main
from tests._helpers import PARALLEL, log_rows, needs_parallel, run_cli

SIDECAR_KEYS = {
    "seq", "slot", "host", "pid", "start", "end", "exit", "signal", "timed_out", "attempts",
    "cpu", "max_rss", "max_rss_upper",
}  # fmt: skip

#: A job per argument: "ok", "fail" (exit 3), "kill" (SIGKILL itself), "slow" (times out),
#: "flaky" (fails on its first attempt: it leaves a file in the cwd, then succeeds). A shell
#: script: it ends in milliseconds, far within --timeout 2, even on a loaded machine under
#: coverage (a Python job there took more than 2 s to start, and was stopped as "slow").
JOB = """
case $1 in
fail) exit 3 ;;
kill) kill -KILL $$ ;;
slow) exec sleep 300 ;;
flaky) if [ ! -e flaky-ran ]; then : > flaky-ran; exit 1; fi ;;
esac
echo "$1"
"""
KINDS = ["ok", "fail", "kill", "slow", "flaky", "ok"]
#: The bars of each job under --retries 2: a failed first attempt is "retried".
BARS = [
    ["ok"],
    ["retried", "failed"],
    ["retried", "signal"],
    ["retried", "timeout"],
    ["retried", "ok"],
    ["ok"],
]


def job(tmp_path: Path) -> list[str]:
    """The argv of JOB, written to a file."""
    (tmp_path / "job.sh").write_text(JOB)
    return ["sh", str(tmp_path / "job.sh")]


def run_batch(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "-j", "3", "--retries", "2", "--timeout", "2", "--term-seq", "KILL",
        *options, *job(tmp_path), ":::", *KINDS, cwd=tmp_path,
    )  # fmt: skip


def sidecar(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def bar_classes(path: Path) -> dict[int, list[str]]:
    """seq -> the classes of its bars, in order, from the page (the data's seq column
    names the job of each bar)."""
    soup = BeautifulSoup(path.read_text(), "html.parser")
    group = soup.find(id="bars")
    script = soup.find("script", id="jobs-data")
    assert isinstance(group, Tag) and isinstance(script, Tag) and script.string
    seqs = json.loads(script.string)["seq"]
    rects = group.find_all("rect")
    assert len(rects) == len(seqs)
    classes: dict[int, list[str]] = {}
    for seq, rect in zip(seqs, rects, strict=True):
        classes.setdefault(seq, []).append(" ".join(rect["class"]))
    return classes


def test_sidecar_has_a_complete_object_per_job(tmp_path: Path) -> None:
    result = run_batch(tmp_path, "--joblog", "log", "--joblog-json", "log.jsonl")
    assert result.returncode == 3, result.stderr
    objects = {o["seq"]: o for o in sidecar(tmp_path / "log.jsonl")}
    rows = {int(r[0]): r for r in log_rows(tmp_path / "log")}
    assert set(objects) == set(rows) == set(range(1, 7))
    for seq, o in objects.items():
        assert set(o) >= SIDECAR_KEYS
        assert 1 <= o["slot"] <= 3 and isinstance(o["pid"], int)
        assert o["host"] == socket.gethostname()
        assert o["start"] == pytest.approx(float(rows[seq][2]), abs=0.001)
        assert o["end"] - o["start"] == pytest.approx(float(rows[seq][3]), abs=0.001)
        assert o["cpu"] >= 0 and o["max_rss_upper"] > 0
        assert o["command"].replace("\n", " ") == rows[seq][8]
    assert [objects[s]["exit"] for s in (1, 2, 5)] == [0, 3, 0]
    assert objects[3]["signal"] == signal.SIGKILL and objects[3]["exit"] is None
    assert objects[4]["timed_out"] and not objects[1]["timed_out"]
    assert objects[5]["attempts"] == 2 and objects[1]["attempts"] == 1
    assert objects[2]["attempts"] == 2  # a failing job is tried --retries times
    first = objects[5]["earlier"]
    assert len(first) == 1 and first[0]["attempts"] == 1 and first[0]["exit"] == 1
    assert first[0]["end"] <= objects[5]["start"] and first[0]["pid"] != objects[5]["pid"]
    assert objects[1]["earlier"] == [] and objects[4]["earlier"][0]["timed_out"]


def test_report_option_draws_every_job(tmp_path: Path) -> None:
    result = run_batch(tmp_path, "--report", "run.html")
    assert result.returncode == 3, result.stderr
    classes = bar_classes(tmp_path / "run.html")
    assert [classes[seq] for seq in range(1, 7)] == BARS
    text = (tmp_path / "run.html").read_text()
    assert "--report run.html" in text  # the command line is among the settings


def test_report_command_from_the_log_and_the_sidecar(tmp_path: Path) -> None:
    run_batch(tmp_path, "--joblog", "log", "--joblog-json", "log.jsonl")
    assert main(["report", str(tmp_path / "log"), "-o", str(tmp_path / "a.html")]) == 0
    alone = bar_classes(tmp_path / "a.html")
    # The log has a row for each job's last attempt only.
    assert [alone[s] for s in range(1, 7)] == [b[-1:] for b in BARS]
    timed_out = next(row for row in log_rows(tmp_path / "log") if row[0] == "4")
    assert timed_out[6:8] == ["-1", "9"]  # as GNU parallel logs a timed-out job
    both = [str(tmp_path / "log"), str(tmp_path / "log.jsonl"), "-o", str(tmp_path / "b.html")]
    assert main(["report", *both]) == 0
    assert [bar_classes(tmp_path / "b.html")[s] for s in range(1, 7)] == BARS
    assert main(["report", str(tmp_path / "log")]) == 0  # default: next to the log
    assert (tmp_path / "log.html").exists()


@pytest.mark.parametrize(
    ("options", "retries", "timeout"),
    [
        ([], "none", "none"),
        (["--retries", "1", "--timeout", "90"], "none", "90 s"),
        (["--retries", "3", "--timeout", "200%"], "3 (a failing job runs up to 3 times in all)",
         "200% of the median runtime"),
    ],
)  # fmt: skip
def test_report_settings_say_what_was_asked(
    tmp_path: Path, options: list[str], retries: str, timeout: str
) -> None:
    page = tmp_path / "r.html"
    assert main(["--report", str(page), *options, "true", ":::", "a"]) == 0
    soup = BeautifulSoup(page.read_text(), "html.parser")
    rows = {
        row.select_one("th").get_text(): row.select_one("td").get_text()  # type: ignore[union-attr]
        for row in soup.select("#settings tr")
    }
    assert (rows["retries"], rows["timeout"]) == (retries, timeout)


@needs_parallel
def test_report_of_gnu_parallels_own_job_log(tmp_path: Path) -> None:
    assert PARALLEL is not None
    subprocess.run(
        [PARALLEL, "--will-cite", "-j", "3", "--timeout", "2", "--joblog", "gnu.log",
         *job(tmp_path), ":::", "ok", "fail", "kill", "slow", "ok"],
        cwd=tmp_path, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    assert main(["report", str(tmp_path / "gnu.log"), "-j", "3"]) == 0
    classes = bar_classes(tmp_path / "gnu.log.html")
    expected = ["ok", "failed", "signal", "timeout", "ok"]
    assert [classes[s] for s in range(1, 6)] == [[kind] for kind in expected]


@pytest.mark.parametrize(
    ("options", "shown"),
    [
        ([], False),
        (["--bar"], False),  # as GNU parallel's --bar: the bar alone
        (["--bar", "--summary"], True),
        (["--summary"], True),
        (["--summary", "--no-summary"], False),
    ],
)
def test_summary_only_when_asked_for(tmp_path: Path, options: list[str], shown: bool) -> None:
    result = run_batch(tmp_path, *options)
    assert result.returncode == 3
    assert ("procexec: 6 jobs in " in result.stderr) is shown
    if shown:
        assert ": 3 ok, 3 failed; 3 slots" in result.stderr
        assert "most common failure: " in result.stderr
        assert "slowest" in result.stderr and "#4" in result.stderr  # the timed-out one


def test_bar_prints_the_bar_and_nothing_else() -> None:
    """What a GNU parallel user sees on stderr with --bar: bar updates only (tqdm's
    ``N%|...| done/total [elapsed<left, rate]``), ended by a newline."""
    result = subprocess.run(
        [sys.executable, "-m", "procexec", "--bar", "true", ":::", "a", "b", "c"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, b"")
    err = result.stderr.decode()  # not as text=True would: "\r" would become "\n"
    assert err.endswith("\n") and err.count("\n") == 1, err
    updates = [part for part in err.strip().split("\r") if part]
    assert updates, err
    assert all(re.fullmatch(r" *\d+%\|.*\| \d/3 \[.*\]", part) for part in updates), updates
    assert updates[-1].startswith("100%|") and "| 3/3 [" in updates[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--report", "/no/such/dir/r.html", "true", ":::", "a"], "cannot write --report file"),
        (["--joblog-json", "/no/such/dir/j", "true", ":::", "a"], "cannot write --joblog-json"),
        (["report"], "the following arguments are required: LOG"),
        (["report", "/no/such/log"], "cannot read /no/such/log: No such file"),
        (["report", "-j", "0", "x"], "-j/--jobs must be at least 1"),
    ],
)
def test_bad_report_input_is_one_line_and_status_255(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 255
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_report_to_an_unwritable_place_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log"
    log.write_text("Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n")
    assert main(["report", str(log), "-o", str(tmp_path / "no" / "r.html")]) == 255
    assert "cannot write" in capsys.readouterr().err


def test_interrupted_run_still_writes_its_report(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "procexec", "-j", "3", "--report", "r.html",
         "--joblog-json", "j.jsonl", *job(tmp_path), ":::", "ok", "ok", "slow"],
        cwd=tmp_path,
    )  # fmt: skip
    try:
        sidecar_file = tmp_path / "j.jsonl"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded wait for the rows procexec writes
            if sidecar_file.exists() and sidecar_file.read_text().count("\n") == 2:
                break
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130
    finally:
        process.kill()
        process.wait()
    assert sorted(bar_classes(tmp_path / "r.html")) == [1, 2]


def test_a_program_named_report_runs_after_the_end_of_options(tmp_path: Path) -> None:
    program = tmp_path / "report"
    program.write_text('#!/bin/sh\necho ran-report "$@"\n')
    program.chmod(0o755)
    env_path = f"{tmp_path}:{os.environ['PATH']}"
    result = subprocess.run(
        [sys.executable, "-m", "procexec", "--", "report", ":::", "a"],
        capture_output=True, text=True, env={**os.environ, "PATH": env_path}, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "ran-report a\n"), result.stderr
