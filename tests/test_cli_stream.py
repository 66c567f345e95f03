"""The command line reads its input as the jobs run, prints while they run when asked, and
says what GNU parallel users expect on stderr: issue 18's behaviours that a comparison of
finished outputs cannot show. Every wait here is on a file, a pipe or a process."""

from __future__ import annotations

import contextlib
import os
import pty
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from procexec.cli import main
from procexec.cli._outputs import Outputs
from procexec.cli._plan import make_plan
from procexec.cli._runner import Runner
from procexec.cli._shell import needs_shell, quote, user_shell
from procexec.cli._template import Template
from tests._helpers import log_rows, run_cli

PROCEXEC = [sys.executable, "-m", "procexec"]


def wait_for_files(*paths: Path, deadline: float = 60) -> str:
    """Python code for a producer: wait until every path exists (bounded)."""
    names = ", ".join(repr(str(p)) for p in paths)
    return textwrap.dedent(f"""
        import os, time
        end = time.monotonic() + {deadline}
        while not all(os.path.exists(p) for p in [{names}]):
            if time.monotonic() > end:
                print("gave up waiting", flush=True)
                break
            time.sleep(0.01)
    """)


def run_pipeline(
    script: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a shell pipeline with bash; its output as text."""
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


# ---------------------------------------------------------------- streaming input
def test_jobs_start_as_their_input_arrives(tmp_path: Path) -> None:
    """The producer writes three lines, then waits until their jobs have run: a procexec
    that read all of its input before starting would wait for it, and it would give up."""
    ran = [tmp_path / f"ran.{n}" for n in (1, 2, 3)]
    producer = (
        "import sys\nprint('1\\n2\\n3', flush=True)\n"
        + wait_for_files(*ran)
        + "\nprint('4\\n5', flush=True)\n"
    )
    script = f"{sys.executable} -c {quote(producer)} | {' '.join(PROCEXEC)} -j 3 touch ran.{{}}"
    result = run_pipeline(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ran.{n}" for n in range(1, 6)]


def test_endless_input_is_read_a_bounded_amount_ahead(tmp_path: Path) -> None:
    """An endless producer counts what it could write before procexec, halted after three
    jobs, closed the pipe: input read lazily, not to its (never coming) end."""
    count = tmp_path / "written"
    producer = textwrap.dedent(f"""
        import sys
        n = 0
        try:
            while True:
                sys.stdout.write("x\\n" * 1000)
                n += 1000
        except BrokenPipeError:
            pass
        open({str(count)!r}, "w").write(str(n))
        sys.stderr.close()
    """)
    script = (
        f"{sys.executable} -c {quote(producer)} 2>/dev/null | "
        f"{' '.join(PROCEXEC)} -j 2 --halt now,done=3 true"
    )
    result = run_pipeline(script)
    assert result.returncode == 0, result.stderr
    assert int(count.read_text()) < 2_000_000  # a pipe, a read chunk and a bounded queue


def test_keep_order_runs_a_bounded_window_ahead_of_a_stuck_job(tmp_path: Path) -> None:
    """With -k, while job 1 waits, at most a window of later jobs may start: none of the
    jobs after that window starts before job 1 has ended."""
    release, done = tmp_path / "release", tmp_path / "done.1"
    template = (
        f"if [ {{}} = 1 ]; then while [ ! -e {release} ]; do sleep 0.01; done; touch {done}; "
        f"elif [ -e {done} ]; then touch ok.{{}}; else touch early.{{}}; fi; "
        f"[ {{}} = 64 ] && touch {release}; true"
    )
    result = subprocess.run(
        [*PROCEXEC, "-k", "-j", "2", template],
        input="".join(f"{n}\n" for n in range(1, 201)),
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    early = {int(p.name.split(".")[1]) for p in tmp_path.glob("early.*")}
    ok = {int(p.name.split(".")[1]) for p in tmp_path.glob("ok.*")}
    assert early == set(range(2, 65))  # the window: 64 jobs delivered while job 1 waited
    assert ok == set(range(65, 201))


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_waiting_for_input_ends_the_run(signum: int, status: int) -> None:
    """stdin stays open with nothing more to read: the input thread is blocked in read()."""
    with subprocess.Popen(
        [*PROCEXEC, "echo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write("first\n")
        process.stdin.flush()
        assert process.stdout.readline() == "first\n"  # its job ran: now it waits for input
        process.send_signal(signum)
        assert process.wait(timeout=30) == status
        process.stdin.close()


def test_an_interrupt_inside_the_runners_wait_never_blocks_its_wake_up() -> None:
    """The runner's wait, interrupted at random moments by a handler that raises (as
    Ctrl-C and SIGTERM do): afterwards another thread's wake() still returns. With
    concurrent.futures.wait, which takes the futures' locks and a waiter's in Python, an
    interrupt there left one held; the signal watch thread then blocked forever waking
    the runner, and the exit, which joins that thread, with it (seen in CI: SIGTERM while
    procexec waited for input hung it)."""
    args = ["echo", ":::", "a"]
    plan = make_plan(args)
    runner = Runner(plan, Outputs(plan, args))

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    rng = random.Random(0)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        for _ in range(300):
            # The timer's signal may land on another thread, leaving this one asleep with
            # the handler pending: a wake-up then lets it run, as procexec's signal watch
            # does (procexec._core._signals).
            watch = threading.Timer(0.05, runner.wake)
            watch.start()
            with contextlib.suppress(KeyboardInterrupt):
                try:
                    signal.setitimer(signal.ITIMER_REAL, rng.uniform(1e-6, 300e-6))
                    runner._wait()  # nothing to wait for: the interrupt ends it
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            watch.cancel()
            watch.join()
            waker = threading.Thread(
                target=runner.wake, daemon=True
            )  # a failure must not hang the exit
            waker.start()
            waker.join(timeout=10)
            assert not waker.is_alive(), "wake() blocked after an interrupted wait"
            with contextlib.suppress(queue.Empty):  # so that the next wait blocks again
                while True:
                    runner.wakeups.get_nowait()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("mode", [["-u"], ["--results", "out"], ["--line-buffer"]])
def test_keep_order_with_output_that_is_not_held_runs_every_job(
    mode: list[str], tmp_path: Path
) -> None:
    """-k holds nothing back with these modes: the window of jobs run ahead of the first
    one not yet printed must not stop the run (it once waited forever after 64 jobs)."""
    result = subprocess.run(
        [*PROCEXEC, "-k", *mode, "echo"], input="".join(f"{n}\n" for n in range(200)),
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    if mode[0] == "--results":
        assert len(list((tmp_path / "out" / "1").iterdir())) == 200
    else:
        assert sorted(result.stdout.split(), key=int) == [str(n) for n in range(200)]


def test_yes_into_head_exits_promptly() -> None:
    script = f"yes | {' '.join(PROCEXEC)} -j 2 echo | head -3; echo ${{PIPESTATUS[1]}} >&2"
    result = run_pipeline(script, timeout=60)
    assert result.stdout == "y\ny\ny\n"
    assert result.stderr.strip() == "141"


def test_line_buffer_into_head_exits_while_the_job_still_writes() -> None:
    """``yes`` writes as fast as it is read: procexec must still notice that its stdout
    is closed. The pipeline runs in a session of its own, killed whole if it hangs."""
    script = f"{' '.join(PROCEXEC)} --line-buffer yes ::: x | head -2; echo ${{PIPESTATUS[0]}} >&2"
    with subprocess.Popen(
        ["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    ) as process:  # fmt: skip
        try:
            out, err = process.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert out == "x\nx\n"
    assert err.strip() == "141"


def test_pipe_feeds_blocks_as_input_arrives(tmp_path: Path) -> None:
    """--pipe: the first block's job runs before the producer writes the rest."""
    first = tmp_path / "part.1"
    producer = (
        "import sys\nsys.stdout.write('a\\n' * 10); sys.stdout.flush()\n"
        + wait_for_files(first)
        + "\nsys.stdout.write('b\\n' * 10)\n"
    )
    script = (
        f"{sys.executable} -c {quote(producer)} | "
        f"{' '.join(PROCEXEC)} --pipe --block 20 'cat > part.{{#}}'"
    )
    result = run_pipeline(script, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert first.read_text() == "a\n" * 10
    assert (tmp_path / "part.2").read_text() == "b\n" * 10


def test_round_robin_feeds_every_block_to_j_long_jobs() -> None:
    lines = "".join(f"{n}\n" for n in range(100_000))
    counted = subprocess.run(
        [*PROCEXEC, "-j", "3", "--pipe", "--block", "10k", "--round-robin", "wc", "-l"],
        input=lines, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    counts = [int(n) for n in counted.stdout.split()]
    assert counted.returncode == 0 and len(counts) == 3 and sum(counts) == 100_000
    copied = subprocess.run(
        [*PROCEXEC, "-j", "3", "--pipe", "--block", "10k", "--round-robin", "cat"],
        input=lines, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert sorted(copied.stdout.splitlines(), key=int) == lines.splitlines()


def test_round_robin_leaves_no_descriptor_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    source = tmp_path / "input"
    source.write_text("a\n" * 5000)
    before = sorted(os.listdir("/proc/self/fd"))
    with source.open() as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert main(["-j", "2", "--pipe", "--block", "1k", "--round-robin", "wc", "-l"]) == 0
    assert sorted(os.listdir("/proc/self/fd")) == before
    assert sum(int(n) for n in capsysbinary.readouterr().out.split()) == 5000


# ------------------------------------------------------------ output while running
@pytest.mark.parametrize(
    ("options", "expected"),
    [(["--line-buffer"], "first line\n"), (["--line-buffer", "--tag"], "x\tfirst line\n")],
)
def test_line_buffer_prints_a_line_while_the_job_runs(
    options: list[str], expected: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    job = f"echo first line; while [ ! -e {go} ]; do sleep 0.01; done; echo second line; : {{}}"
    with subprocess.Popen(
        [*PROCEXEC, *options, job, ":::", "x"], stdout=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stdout.readline() == expected  # before the job can end
        go.touch()
        rest = process.stdout.read()
    assert process.returncode == 0
    assert rest == expected.replace("first", "second")


def test_ungroup_passes_partial_lines_through(tmp_path: Path) -> None:
    go = tmp_path / "go"
    job = f"printf partial; while [ ! -e {go} ]; do sleep 0.01; done; echo ' end'; : {{}}"
    with subprocess.Popen([*PROCEXEC, "-u", job, ":::", "x"], stdout=subprocess.PIPE) as process:
        assert process.stdout is not None
        assert process.stdout.read(7) == b"partial"  # no newline yet: -u does not wait
        go.touch()
        assert process.stdout.read() == b" end\n"
    assert process.returncode == 0


@pytest.mark.parametrize("option", ["--eta", "--progress"])
def test_eta_and_progress_go_to_stderr(option: str) -> None:
    result = run_cli(option, "-j", "2", "echo", ":::", "a", "b", "c")
    assert sorted(result.stdout.split()) == ["a", "b", "c"]
    assert "Computers / CPU cores / Max jobs to run" in result.stderr
    assert "local:0/3/100%/" in result.stderr
    assert ("ETA: 0s Left: 0" in result.stderr) is (option == "--eta")


def test_results_prints_nothing_and_saves_every_stream(tmp_path: Path) -> None:
    result = run_cli("--results", "out", "echo {}; echo err >&2", ":::", "a", "..", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "")
    assert (tmp_path / "out/1/a/stdout").read_text() == "a\n"
    assert (tmp_path / "out/1/a/stderr").read_text() == "err\n"
    assert (tmp_path / "out/1/a/seq").read_text() == "1"
    assert (tmp_path / "out/1/\\.\\./stdout").read_text() == "..\n"  # never outside out/


def test_results_of_a_value_too_long_for_a_file_name_go_under_a_cut_name(tmp_path: Path) -> None:
    """As GNU parallel: the directory name is cut to the longest the file system takes."""
    result = run_cli("--results", "out", "echo", ":::", "x" * 300, "ok", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    longest = os.pathconf(tmp_path, "PC_NAME_MAX")
    assert (tmp_path / "out/1" / ("x" * longest) / "stdout").read_text() == "x" * 300 + "\n"
    assert (tmp_path / "out/1/ok/stdout").read_text() == "ok\n"


def test_results_that_cannot_be_saved_are_a_warning_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file where a directory must go\n")
    result = run_cli("--results", "out", "echo", ":::", "a", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert "procexec: Warning: cannot save job 1's output under out/1/a" in result.stderr


# --------------------------------------------------------------- stderr messages
def test_halt_says_why_it_stopped() -> None:
    result = run_cli("-j", "1", "--halt", "soon,fail=1", "exit {}", ":::", "0", "3", "0")
    assert result.returncode == 3
    assert result.stderr == "procexec: This job failed:\nexit 3\n"
    waiting = run_cli("-j", "2", "--halt", "soon,fail=1", "exit {}", ":::", "3", "sleep 0")
    assert "This job failed:\nexit 3\n" in waiting.stderr


def test_a_timed_out_job_is_named() -> None:
    result = run_cli("--timeout", "0.2", "sleep {}", ":::", "30")
    assert result.returncode == 1
    assert result.stderr == (
        "procexec: Warning: This job was killed because it timed out:\n"
        "procexec: Warning: sleep 30\n"
    )


def test_percent_timeout_stops_a_job_far_slower_than_the_median(tmp_path: Path) -> None:
    log = tmp_path / "log"
    result = run_cli(
        "-j", "1", "--timeout", "1000%", "--joblog", str(log), "sleep {}", ":::",
        "0", "0", "0", "300",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    rows = {row[8]: row for row in log_rows(log)}
    assert rows["sleep 300"][6] == "-1"  # logged as timed out, as GNU parallel does
    assert "timed out" in result.stderr


def test_terminal_input_gets_a_warning() -> None:
    parent, child = pty.openpty()
    try:
        process = subprocess.Popen(
            [*PROCEXEC, "echo"], stdin=child, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        os.write(parent, b"typed\n\x04")
        out, err = process.communicate(timeout=60)
    finally:
        os.close(parent)
        os.close(child)
    assert out == b"typed\n"
    assert b"procexec: Warning: Input is read from the terminal" in err


def test_a_command_line_too_long_is_refused_with_the_limit() -> None:
    result = subprocess.run(
        [*PROCEXEC, "echo", "{}", "{}"], input="a" * 100_000 + "\n", capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 255 and result.stdout == ""
    assert result.stderr.startswith("procexec: command line too long (200007 >= ")  # argv+NULs
    assert "this system's limit) at job 1: echo aaaa" in result.stderr
    assert len(result.stderr) < 300 and "Traceback" not in result.stderr


def test_input_that_turns_bad_mid_run_is_one_line() -> None:
    result = subprocess.run(
        [*PROCEXEC, "-k", "echo"], input=b"a\nb\0c\n", capture_output=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 255
    assert result.stderr.decode().count("\n") == 1 and b"line 2: a NUL byte" in result.stderr


# ------------------------------------------------------------------- the shell rule
def test_a_plain_command_runs_without_a_shell() -> None:
    plan = make_plan(["echo", "{}", "x{.}", ":::", "a b.c"])
    job = plan.feed.take()
    assert job is not None
    assert plan.command(job, 1) == ["echo", "a b.c", "xa b"]
    assert plan.text(job, 1) == "echo 'a b.c' x'a b'"


@pytest.mark.parametrize(
    "template",
    ["echo {} | wc", "echo {} > f", "a=1 echo {}", "echo $HOME", "echo *", "cd {}", "f {}"],
)
def test_shell_syntax_builtins_and_functions_need_a_shell(
    template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASH_FUNC_f%%", "() { echo; }")
    plan = make_plan([template, ":::", "a"])
    job = plan.feed.take()
    assert job is not None
    assert isinstance(plan.command(job, 1), str)


def test_quote_is_gnu_parallels() -> None:
    assert [quote(v) for v in ["a/b.c-d_e", "", "a b", "it's", "$x"]] == [
        "a/b.c-d_e", "''", "'a b'", "'it'\"'\"'s'", "'$x'",
    ]  # fmt: skip


def test_the_users_shell(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PARALLEL_SHELL", "/bin/dash")
    assert user_shell() == "/bin/dash"
    monkeypatch.delenv("PARALLEL_SHELL")
    monkeypatch.setattr("procexec.cli._shell._parent_shell", lambda: None)
    monkeypatch.setenv("SHELL", "/bin/bash")
    assert user_shell() == "/bin/bash"
    monkeypatch.setenv("SHELL", "/usr/bin/fish")  # not POSIX: its quoting differs
    assert user_shell() == "/bin/sh"
    monkeypatch.setattr("procexec.cli._shell._parent_shell", lambda: "/usr/bin/zsh")
    assert user_shell() == "/usr/bin/zsh"


def test_the_parent_shell_is_found() -> None:
    script = (
        f"{sys.executable} -c 'from procexec.cli._shell import user_shell; print(user_shell())'"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PARALLEL_SHELL", "SHELL")}
    result = subprocess.run(
        ["bash", "-c", script + "; true"], capture_output=True, text=True, env=env, check=True
    )
    assert os.path.basename(result.stdout.strip()) == "bash"


def test_needs_shell_checks_the_program() -> None:
    assert not needs_shell("echo x", "echo")
    assert needs_shell("no-such-program-xyz x", "no-such-program-xyz")
    assert needs_shell("echo x", None)


def test_context_template_repeats_words() -> None:
    template = Template.parse(["echo", "a{}b"], shell=True, context=True)
    assert template.expand(["1", "2 3"], 1, 1) == ["echo", "a1b", "a2 3b"]
    assert template.text(["1", "2 3"], 1, 1) == "echo a1b a'2 3'b"
