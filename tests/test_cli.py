"""The procexec command line, through main(argv) and through a real procexec process."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from procexec.cli import main
from procexec.cli._values import parse_jobs, parse_size, parse_term_seq, unquote_printf
from tests._helpers import (
    PARALLEL,
    assert_dies,
    log_rows,
    needs_parallel,
    py,
    run_cli,
    signal_other_thread,
)


# ----------------------------------------------------------------- inputs
def test_commands_from_stdin_one_per_line() -> None:
    result = run_cli("-j", "2", input="echo one\necho two; exit 3\n\necho three\n")
    assert sorted(result.stdout.split()) == ["one", "three", "two"]
    assert result.returncode == 1


def test_template_with_replacement_strings(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["-k", "echo", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}", ":::", "dir/a.tar.gz", "b"]
    )
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert out == ["dir/a.tar.gz dir/a.tar a.tar.gz dir a.tar 1", "b b b . b 2"]


def test_arguments_appended_and_sources_combined(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-k", "echo", "x", ":::", "1", "2", ":::", "a", "b"]) == 0
    assert capsys.readouterr().out.splitlines() == ["x 1 a", "x 1 b", "x 2 a", "x 2 b"]
    assert main(["-k", "echo", "{2}-{1}", ":::", "1", "2", ":::", "a"]) == 0
    assert capsys.readouterr().out.splitlines() == ["a-1", "a-2"]


def test_arguments_from_file_and_from_stdin(tmp_path: Path) -> None:
    (tmp_path / "files.txt").write_text("a\nb c\n")
    from_file = run_cli("-k", "-q", "echo", "<{}>", "::::", "files.txt", cwd=tmp_path)
    assert from_file.stdout.splitlines() == ["<a>", "<b c>"]
    from_stdin = run_cli("-k", "echo", "[{}]", input="x y\nz\n")
    assert from_stdin.stdout.splitlines() == ["[x y]", "[z]"]


def test_slot_numbers_stay_within_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-j", "2", "echo", "{%}", ":::", *map(str, range(8))]) == 0
    assert set(capsys.readouterr().out.split()) <= {"1", "2"}


def test_direct_exec_is_default_and_shell_quotes(capsys: pytest.CaptureFixture[str]) -> None:
    tricky = "it's $HOME; a b"
    assert main(["-q", *py("import sys; print(sys.argv[1:])"), ":::", tricky]) == 0
    assert capsys.readouterr().out.strip() == repr([tricky])
    assert main(["printf '%s\\n'", "{}", ":::", tricky]) == 0
    assert capsys.readouterr().out.strip() == tricky


@pytest.mark.parametrize(
    ("text", "jobs"), [("3", 3), ("50%", 4), ("+1", 9), ("-2", 6), ("200%", 16)]
)
def test_jobs_forms(text: str, jobs: int) -> None:
    assert parse_jobs(text, cpus=8) == jobs


def test_term_seq_parses_gnu_parallel_format() -> None:
    assert parse_term_seq("TERM,200,KILL,25") == [(signal.SIGTERM, 0.2), (signal.SIGKILL, 0.025)]
    assert parse_term_seq("SIGINT,1000,KILL") == [(signal.SIGINT, 1.0), (signal.SIGKILL, 0.0)]


def test_sizes_and_escapes_read_as_gnu_parallel_reads_them() -> None:
    assert [parse_size(t, "-N") for t in ("7", "1k", "1K", "1ki", "2m", "1M", "1.5k")] == [
        7, 1000, 1024, 1024, 2_000_000, 1 << 20, 1500,
    ]  # fmt: skip
    assert unquote_printf(r"a\tb\n\r\0\012\101\9") == "a\tb\n\r\0\nA9"


# ------------------------------------------------------------------- job log
def test_joblog_rows_in_gnu_parallel_format(tmp_path: Path) -> None:
    log = tmp_path / "log"
    code = (
        "import os, sys; print('hi', flush=True); n = int(sys.argv[1]); "
        "n < 0 and os.kill(os.getpid(), -n); raise SystemExit(n)"
    )
    status = main(["-q", "--joblog", str(log), *py(code), ":::", "0", "3", "-9"])
    assert status == 2
    rows = {int(row[0]): row for row in log_rows(log)}
    assert sorted(rows) == [1, 2, 3]
    for row in rows.values():
        assert row[1] == ":" and row[4] == "0" and row[5] == "3"
        assert float(row[2]) > 1e9 and len(row[3]) == 10 and float(row[3]) >= 0
    assert (rows[1][6], rows[1][7]) == ("0", "0")
    assert (rows[2][6], rows[2][7]) == ("3", "0")
    assert (rows[3][6], rows[3][7]) == ("0", "9")
    assert rows[2][8].endswith(" 3") and sys.executable in rows[2][8]


def test_resume_skips_logged_and_resume_failed_reruns_failures(tmp_path: Path) -> None:
    log = tmp_path / "log"
    marker = tmp_path / "ran"
    command = [
        "-q",
        "sh",
        "-c",
        f"echo {{}} >> {marker}; test {{}} != 2 || test -e {tmp_path}/fixed",
        "--",
    ]
    sources = [":::", "1", "2", "3"]
    assert main(["--joblog", str(log), *command, *sources]) == 1
    assert sorted(marker.read_text().split()) == ["1", "2", "3"]
    marker.unlink()
    assert main(["--resume", "--joblog", str(log), *command, *sources, "4"]) == 0
    assert marker.read_text().split() == ["4"]
    marker.unlink()
    (tmp_path / "fixed").touch()
    assert main(["--resume-failed", "--joblog", str(log), *command, *sources, "4"]) == 0
    assert marker.read_text().split() == ["2"]
    seqs = [row[0] for row in log_rows(log)]  # rows are written in completion order
    assert sorted(seqs[:3]) == ["1", "2", "3"] and seqs[3:] == ["4", "2"]


def test_resume_after_a_log_cut_off_mid_row(tmp_path: Path) -> None:
    """A crash can leave the last row without its newline: the next row must start a line
    of its own, or that job would run again at every later resume."""
    log = tmp_path / "log"
    header = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
    log.write_text(header + "1\t:\t1700000000.000\t     0.010\t0\t2\t0\t0\techo a\n2\t:\t17")
    first = run_cli("--resume", "--joblog", str(log), "-k", "echo", ":::", "a", "b", "c")
    assert (first.returncode, first.stdout) == (0, "b\nc\n"), first.stderr
    again = run_cli("--resume", "--joblog", str(log), "-k", "echo", ":::", "a", "b", "c")
    assert (again.returncode, again.stdout) == (0, ""), "a job ran again"
    assert sorted(row[0] for row in log_rows(log) if len(row) == 9) == ["1", "2", "3"]


@pytest.mark.parametrize("timeout", ["inf", "1e400", "infinity", "0", "-1", "5x"])
def test_a_timeout_that_is_not_a_duration_is_a_one_line_error(timeout: str) -> None:
    result = run_cli("--timeout", timeout, "-k", "echo", ":::", "a", "b")
    assert (result.returncode, result.stdout) == (255, "")
    assert result.stderr.startswith("procexec: --timeout") and result.stderr.count("\n") == 1
    assert repr(timeout) in result.stderr


@needs_parallel
def test_joblog_round_trip_with_gnu_parallel(tmp_path: Path) -> None:
    assert PARALLEL is not None
    ours, theirs, ran = tmp_path / "ours", tmp_path / "theirs", tmp_path / "ran"
    script = f"echo {{}} >> {ran}; exit $(( {{}} % 2 ))"
    # Our log, resumed by GNU parallel: it skips what we logged.
    assert main(["--shell", "--joblog", str(ours), script, ":::", "1", "2"]) == 1
    subprocess.run(
        [
            PARALLEL,
            "--will-cite",
            "--resume",
            "--joblog",
            str(ours),
            script,
            ":::",
            "1",
            "2",
            "3",
            "4",
        ],
        check=False,
    )
    ours_ran, theirs_ran = ran.read_text().split()[:2], ran.read_text().split()[2:]
    assert sorted(ours_ran) == ["1", "2"] and sorted(theirs_ran) == ["3", "4"]
    assert sorted(int(row[0]) for row in log_rows(ours)) == [1, 2, 3, 4]
    # Their log, resumed by us (failed jobs rerun).
    ran.unlink()
    subprocess.run(
        [PARALLEL, "--will-cite", "--joblog", str(theirs), script, ":::", "1", "2", "3"],
        check=False,
    )
    ran.unlink()
    assert (
        main(["--shell", "--resume-failed", "--joblog", str(theirs), script, ":::", "1", "2", "3"])
        == 2
    )
    assert sorted(ran.read_text().split()) == ["1", "3"]
    rows = log_rows(theirs)
    assert [row[0] for row in rows][-2:] in (["1", "3"], ["3", "1"])


# ------------------------------------------------------ running and stopping
def test_retries(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    script = f"echo x >> {counter}; test $(wc -l < {counter}) -ge 3"
    assert main(["-q", "--retries", "3", "sh", "-c", script, ":::", "1"]) == 0
    assert counter.read_text().count("x") == 3
    counter.unlink()
    assert main(["-q", "--retries", "2", "sh", "-c", script, ":::", "1"]) == 1
    assert counter.read_text().count("x") == 2


def test_timeout_stops_the_job(tmp_path: Path) -> None:
    log = tmp_path / "log"
    status = main(
        [
            "--timeout",
            "0.3",
            "--joblog",
            str(log),
            "-q",
            "sh",
            "-c",
            "test {} = quick || exec sleep 300",
            ":::",
            "quick",
            "slow",
        ]
    )
    assert status == 1
    rows = {"quick" if "quick = quick" in row[8] else "slow": row for row in log_rows(log)}
    assert rows["quick"][6:8] == ["0", "0"]
    assert rows["slow"][6:8] == ["-1", str(int(signal.SIGTERM))]  # as GNU parallel logs it


def test_halt_soon_on_first_failure_starts_nothing_more(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    status = main(
        [
            "-j",
            "1",
            "--halt",
            "soon,fail=1",
            "-q",
            "sh",
            "-c",
            f"echo {{}} >> {ran}; exit {{}}",
            ":::",
            "0",
            "1",
            "0",
            "0",
        ]
    )
    assert status == 1
    assert ran.read_text().split() == ["0", "1"]


def test_halt_now_stops_running_jobs(tmp_path: Path) -> None:
    log = tmp_path / "log"
    status = main(
        [
            "-j",
            "2",
            "--halt",
            "now,fail=1",
            "--joblog",
            str(log),
            "-q",
            "sh",
            "-c",
            "test {} = fail && exit 1; exec sleep 300",
            ":::",
            "sleep",
            "fail",
            "sleep2",
        ]
    )
    assert status == 1
    assert [("fail = fail" in row[8]) for row in log_rows(log)] == [True]


def test_halt_success_percent(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    status = main(
        [
            "-j",
            "1",
            "--halt",
            "soon,success=50%",
            "-q",
            "sh",
            "-c",
            f"echo {{}} >> {ran}",
            ":::",
            "1",
            "2",
            "3",
            "4",
        ]
    )
    assert status == 0
    assert ran.read_text().split() == ["1", "2"]


def test_keep_order_and_tag(capsys: pytest.CaptureFixture[str]) -> None:
    code = (
        "import sys, time; time.sleep(0.1 * (3 - int(sys.argv[1]))); "
        "print('line1'); print('line2', file=sys.stderr)"
    )
    assert main(["-q", "-k", "--tag", "-j", "3", *py(code), ":::", "0", "1", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["0\tline1", "1\tline1", "2\tline1"]
    assert captured.err.splitlines() == ["0\tline2", "1\tline2", "2\tline2"]


def test_output_of_a_job_is_never_split(capsys: pytest.CaptureFixture[str]) -> None:
    code = "import sys\nfor i in range(200): print(sys.argv[1] * 50, flush=True)"
    assert main(["-q", "-j", "4", *py(code), ":::", "a", "b", "c", "d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    blocks = [lines[i : i + 200] for i in range(0, 800, 200)]
    assert all(len(set(block)) == 1 for block in blocks)


def test_bar_reports_progress_on_stderr() -> None:
    result = run_cli("--bar", "true", ":::", "1", "2", "3")
    assert result.returncode == 0 and "3/3" in result.stderr


def test_dry_run_prints_and_runs_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dry-run", "touch", str(tmp_path / "{}"), ":::", "a b", "c"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"touch {tmp_path}/'a b'",  # as GNU parallel: the value quoted where it stands
        f"touch {tmp_path}/c",
    ]
    assert not list(tmp_path.iterdir())


def test_failed_count_is_the_exit_status_capped_at_101() -> None:
    assert main(["-j", "2", "false", ":::", *map(str, range(105))]) == 101
    assert main(["exit {}", ":::", "0", "1", "2"]) == 2


def test_missing_program_is_a_failed_job_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["/no/such/program", ":::", "a"]) == 1
    assert "/no/such/program" in capsys.readouterr().err


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-such-option"], "unknown option --no-such-option"),
        (["-j", "-99", "true", ":::", "a"], "at least 1"),
        (["-j", "many", "true", ":::", "a"], "-j/--jobs"),
        (["echo", "::::", "/no/such/file"], "cannot read /no/such/file"),
        (["--joblog", "/no/such/dir/log", "true", ":::", "a"], "cannot write job log"),
        (["echo", "{..}", ":::", "a"], "unknown replacement string {..}"),
        (["--term-seq", "TERM,-5", "true", ":::", "a"], "-5 is not a number of milliseconds"),
        (["-kZ", "echo", ":::", "a"], "unknown option -Z"),
        (["--filter={1} ne x", "echo", ":::", "a"], "--filter (a GNU parallel option)"),
        (["--tag=x", "echo", ":::", "a"], "option --tag takes no value"),
        (["--tagstr"], "option --tagstr needs a value"),
        (["--re", "echo", ":::", "a"], "option --re is ambiguous"),
        (
            ["-S", "host", "echo", ":::", "a"],
            "-S (a GNU parallel option) is not supported: "
            "to run jobs on other machines, use --dask",
        ),
        (["--colsep", "(", "echo", ":::", "a"], "--colsep"),
        (["-X", "-m", "echo", ":::", "a"], "-X and -m"),
        (["--pipe", "--block", "lots", "cat"], "--block"),
        (["--pipe", "cat", ":::", "a"], "--pipe reads standard input"),
        (["echo", "{=", "s/a/b/", "=}", ":::", "a"], "{= perl expression =} replacement"),
        (["--plus", "echo", ":::", "a"], "--plus (a GNU parallel option) is not supported"),
        (["--results", "out{..}", "echo", ":::", "a"], "--results: unknown replacement string"),
        (["--pipe", "--header", "(", "cat"], "--header '(': missing )"),
        (["--pipe", "--block", "0", "cat"], "--block takes a size of at least 1 byte"),
        (["-X", "echo", ":::", "x" * 70000], "command line too long"),
        (["--tagstring", "{..}", "echo", ":::", "a"], "--tagstring: unknown replacement string"),
        (["-N", "-1", "echo", ":::", "a"], "-N must be at least 0"),
        (["--trim", "x", "echo", ":::", "a"], "--trim"),
        (["--resume", "true", ":::", "a"], "need --joblog"),
        (["--retries", "0", "true", ":::", "a"], "--retries"),
        (["--timeout", "0", "true", ":::", "a"], "--timeout"),
        (["--halt", "sometimes", "true", ":::", "a"], "--halt"),
        (["--halt", "now,fail=0", "true", ":::", "a"], "--halt"),
        (["--term-seq", "NOPE,1", "true", ":::", "a"], "--term-seq"),
        ([":::", "a", ":::", "b"], "give a command"),
    ],
)
def test_bad_input_is_one_line_and_status_255(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 255
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("procexec: ") and message in err


def test_usage_error_through_a_real_process() -> None:
    result = run_cli("--no-such-option")
    assert (
        result.returncode == 255
        and result.stderr.count("\n") == 1
        and "Traceback" not in result.stderr
    )


def test_help_through_python_m() -> None:
    result = run_cli("--help")
    assert result.returncode == 0 and "--joblog" in result.stdout and ":::" in result.stdout


# ----------------------------------------------------------- Ctrl-C, SIGTERM
_LONG = r"""
import os, subprocess, sys, time
name, report = sys.argv[1], sys.argv[2]
if name.startswith("quick"):
    raise SystemExit(0)
grandchild = subprocess.Popen(["sleep", "300"])
with open(report, "a") as f:
    f.write(f"{os.getpid()} {grandchild.pid}\n")
time.sleep(300)
"""


@pytest.mark.parametrize("to_thread", [False, True], ids=["to-process", "to-a-thread"])
@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_interrupt_stops_every_job_and_keeps_the_log(
    tmp_path: Path, signum: int, status: int, to_thread: bool
) -> None:
    """to-a-thread: taken by a thread other than the main one, the signal does not end the
    main thread's wait; the signal watch does, or procexec would wait for ``sleep 300``."""
    log, report = tmp_path / "log", tmp_path / "report"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "procexec",
            "-j",
            "5",
            "--joblog",
            str(log),
            "-q",
            *py(_LONG),
            "{}",
            str(report),
            ":::",
            "quick1",
            "quick2",
            "long1",
            "long2",
            "long3",
        ],
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # bounded wait for files the children write
            if (
                report.exists()
                and report.read_text().count("\n") == 3
                and log.exists()
                and len(log_rows(log)) == 2
            ):
                break
            time.sleep(0.02)
        if to_thread:
            signal_other_thread(process.pid, signum)
        else:
            process.send_signal(signum)
        assert process.wait(timeout=60) == status
    finally:
        process.kill()
        process.wait()
    assert sorted(row[8].split()[-2] for row in log_rows(log)) == ["quick1", "quick2"]
    for line in report.read_text().splitlines():
        child, grandchild = map(int, line.split())
        assert_dies(child)
        assert_dies(grandchild)
    assert os.path.exists(log)


# ------------------------------------------- every option through a real process
_SH = ["echo out-{}; exit $(( {} % 2 ))"]


@pytest.mark.parametrize(
    ("options", "status", "expected_out"),
    [
        (["-j", "2"], 1, ["out-1", "out-2"]),
        (["-j", "+1"], 1, ["out-1", "out-2"]),
        (["-k"], 1, ["out-1", "out-2"]),
        (["--keep-order", "--tag"], 1, ["1\tout-1", "2\tout-2"]),
        (
            ["--dry-run", "-k"],
            0,
            ["echo out-1; exit $(( 1 % 2 ))", "echo out-2; exit $(( 2 % 2 ))"],
        ),
        (["--retries", "2", "-k"], 1, ["out-1", "out-2"]),
        (["--timeout", "30", "-k"], 1, ["out-1", "out-2"]),
        (["--halt", "soon,fail=1", "-j", "1"], 1, ["out-1"]),
        (["--term-seq", "TERM,100,KILL,0", "-k"], 1, ["out-1", "out-2"]),
    ],
)
def test_options_through_a_real_process(
    options: list[str], status: int, expected_out: list[str]
) -> None:
    result = run_cli(*options, *_SH, ":::", "1", "2")
    assert result.returncode == status, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(expected_out)
    if "-k" in options or "--keep-order" in options:
        assert result.stdout.splitlines() == expected_out


def test_shell_and_joblog_resume_through_a_real_process(tmp_path: Path) -> None:
    log = tmp_path / "log"
    first = run_cli("--joblog", str(log), "echo {} | tr a-z A-Z; test {} != b", ":::", "a", "b")
    assert first.returncode == 1 and sorted(first.stdout.split()) == ["A", "B"]
    resumed = run_cli("--resume", "--joblog", str(log), "echo {}", ":::", "a", "b", "c")
    assert resumed.stdout.split() == ["c"]
    rerun = run_cli("--resume-failed", "--joblog", str(log), "echo again-{}", ":::", "a", "b", "c")
    assert rerun.stdout.split() == ["again-b"] and rerun.returncode == 0
    seqs = [row[0] for row in log_rows(log)]
    assert sorted(seqs[:2]) == ["1", "2"] and seqs[2:] == ["3", "2"]


def test_console_script_when_installed() -> None:
    script = shutil.which("procexec")
    if script is None:
        pytest.skip(
            "the procexec console script is not on PATH (not installed in this environment)"
        )
    result = subprocess.run(
        [script, "-k", "echo", ":::", "a", "b"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.split() == ["a", "b"]


def test_every_option_is_documented_in_docs_cli_md() -> None:
    import argparse

    from procexec.cli._args import build_parser

    page = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()
    missing = [
        option
        for action in build_parser()._actions
        if action.help != argparse.SUPPRESS
        for option in action.option_strings
        if f"`{option}" not in page
    ]
    assert missing == []
