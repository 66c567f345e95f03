"""ProcessExecutor.run(): capture, stdin, timeouts, check, line callbacks, rusage, timing."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from procexec import JobResult, ProcessExecutor
from tests._helpers import Gate, assert_dies, my_children, py, py_on_path, run_script

pytestmark = pytest.mark.usefixtures("reaper_path")

MIB = 1024 * 1024

#: Writes argv[1] MiB to stdout and to stderr interleaved, each byte pattern distinct.
BOTH_STREAMS = r"""
import sys
n = int(sys.argv[1])
for i in range(n * 16):
    sys.stdout.buffer.write(bytes([i % 251]) * 65536)
    sys.stderr.buffer.write(bytes([i % 241]) * 65536)
"""


def _expected(n_mib: int, modulo: int) -> bytes:
    return b"".join(bytes([i % modulo]) * 65536 for i in range(n_mib * 16))


def test_capture_several_mib_on_both_streams() -> None:
    with ProcessExecutor(2) as ex:
        future = ex.run([*py(BOTH_STREAMS), "8"], capture_output=True)
    result = future.result()
    assert isinstance(result, JobResult) and isinstance(result, subprocess.CompletedProcess)
    assert result.returncode == 0
    assert result.stdout == _expected(8, 251)
    assert result.stderr == _expected(8, 241)


def test_input_of_several_mib_echoed_back() -> None:
    data = os.urandom(6 * MIB)
    code = (
        "import sys; d = sys.stdin.buffer.read(); "
        "sys.stdout.buffer.write(d); sys.stderr.buffer.write(d[::-1])"
    )
    with ProcessExecutor(2) as ex:
        result = ex.run(py(code), input=data, capture_output=True).result()
    assert result.stdout == data and result.stderr == data[::-1]


def test_text_mode_and_encoding() -> None:
    code = (
        "import sys; sys.stdout.buffer.write('h\\u00e9\\r\\nx'.encode()); sys.stdout.flush(); "
        "print(sys.stdin.read(), end='', file=sys.stderr)"
    )
    with ProcessExecutor(1) as ex:
        result = ex.run(
            py(code), input="entr\u00e9e", capture_output=True, encoding="utf-8"
        ).result()
    assert result.stdout == "h\u00e9\nx" and result.stderr == "entr\u00e9e"


def test_separate_stdout_stderr_arguments(tmp_path: object) -> None:
    # Flushed in order: merged output must not depend on PYTHONUNBUFFERED being set.
    code = "import sys; print('out', flush=True); print('err', file=sys.stderr, flush=True)"
    with ProcessExecutor(2) as ex:
        merged = ex.run(py(code), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        only_err = ex.run(py(code), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        nothing = ex.run(py(code), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert merged.result().stdout == "out\nerr\n" and merged.result().stderr is None
    assert only_err.result().stdout is None and only_err.result().stderr == b"err\n"
    assert nothing.result().stdout is None and nothing.result().returncode == 0


def test_check_raises_called_process_error_with_output() -> None:
    with ProcessExecutor(1) as ex:
        future = ex.run(
            py("print('partial'); raise SystemExit(3)"), capture_output=True, check=True
        )
        ok = ex.run(py("pass"), check=True)
    error = future.exception()
    assert isinstance(error, subprocess.CalledProcessError)
    assert error.returncode == 3 and error.stdout == b"partial\n"
    assert ok.result().returncode == 0


def test_timeout_with_grandchild_holding_the_pipe() -> None:
    # The child prints, starts a grandchild that inherits stdout and sleeps, then waits for
    # it. A shell, not Python: under load and coverage a Python child took longer than the
    # timeout to print (b'' seen); a shell prints in milliseconds, 2 s is a wide margin.
    code = "echo before; sleep 300 & echo $!; wait"
    with ProcessExecutor(1, term_sequence=[(signal.SIGTERM, 1.0)]) as ex:
        future = ex.run(["sh", "-c", code], capture_output=True, timeout=2.0)
        error = future.exception(timeout=60)  # raises TimeoutError if the job hangs
    assert isinstance(error, subprocess.TimeoutExpired)
    assert error.stdout is not None and error.stdout.startswith(b"before\n")
    grandchild = int(error.stdout.split()[1])
    assert future.timed_out
    assert_dies(grandchild)
    assert future.pid not in my_children()


def test_timeout_counts_from_start_not_from_queueing() -> None:
    # The job waits 1.5 s for a slot with a 1 s timeout; /bin/true itself takes ~1 ms.
    with ProcessExecutor(1) as ex:
        blocker = ex.run(["sleep", "1.5"])
        queued = ex.run(["true"], timeout=1.0)
    assert blocker.result().returncode == 0
    assert queued.result().returncode == 0 and not queued.timed_out


def test_duration_excludes_waiting_for_a_slot() -> None:
    with ProcessExecutor(1) as ex:
        first = ex.run(py("import time; time.sleep(0.3)"))
        second = ex.run(py("pass"))
    one, two = first.result(), second.result()
    assert two.started_at >= one.started_at + one.duration - 0.05
    assert two.duration < two.ended_at - one.started_at
    assert two.ended_at >= two.started_at


def test_rusage_reports_cpu() -> None:
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    with ProcessExecutor(2) as ex:
        busy = ex.run(py(burn)).result()
    assert busy.rusage is not None and busy.rusage.user_time + busy.rusage.system_time >= 0.25
    assert busy.pid > 0 and "JobResult" in repr(busy)


#: A parent of argv[1] MiB that runs a child of argv[2] MiB (each touches every page) and
#: prints the child's figures and its own peak, in MiB.
MEMORY_PARENT = """
import json, resource, sys
from procexec import ProcessExecutor
parent_mib, child_mib = int(sys.argv[1]), int(sys.argv[2])
ballast = bytearray(parent_mib << 20)
ballast[::4096] = b"x" * len(ballast[::4096])
touch = f"b = bytearray({child_mib} << 20); b[::4096] = b'x' * len(b[::4096])"
with ProcessExecutor(1) as ex:
    result = ex.run([sys.executable, "-c", touch]).result()
    future = ex.submit([sys.executable, "-c", touch])
    future.result()
mib = lambda n: None if n is None else n / (1 << 20)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
for usage in (result.rusage, future.rusage):
    print(json.dumps({"own": mib(usage.max_rss), "upper": mib(usage.max_rss_upper), "parent": own}))
"""


def test_a_small_child_of_a_big_parent_has_no_peak_of_its_own_to_report() -> None:
    """Linux hands the parent's peak to the child across exec: that figure is the upper
    bound, not the child's peak."""
    proc = run_script(MEMORY_PARENT, "pidfd", "500", "0")
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines():
        figures = json.loads(line)
        assert figures["own"] is None
        assert figures["upper"] >= 500  # what ru_maxrss says: the parent's size


def test_a_big_child_of_a_small_parent_reports_its_own_peak() -> None:
    # The parent is started by a shell that forks it: run straight from this process, it
    # would inherit this test process's own peak across exec (hundreds of MiB once the
    # suite has run a while) and be no small parent.
    argv = py_on_path(textwrap.dedent(MEMORY_PARENT), "pidfd")
    proc = subprocess.run(
        ["sh", "-c", '"$@"; exit $?', "sh", *argv, "0", "300"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for line in proc.stdout.splitlines():
        figures = json.loads(line)
        assert figures["parent"] < 300
        assert 300 <= figures["own"] < 400
        assert figures["own"] == figures["upper"]


def test_line_callbacks_see_every_line_in_order_including_last_unterminated() -> None:
    code = (
        "import sys\nfor i in range(2000): print(f'line {i}')\n"
        "sys.stdout.write('tail')\nprint('e1', file=sys.stderr)"
    )
    out: list[bytes] = []
    err: list[str] = []
    with ProcessExecutor(1) as ex:
        bytes_job = ex.run(py(code), on_stdout_line=out.append, stderr=subprocess.DEVNULL)
        text_job = ex.run(py(code), text=True, capture_output=True, on_stderr_line=err.append)
    assert out == [f"line {i}\n".encode() for i in range(2000)] + [b"tail"]
    assert bytes_job.result().stdout is None  # lines only: not kept
    assert text_job.result().stdout.endswith("line 1999\ntail")
    assert err == ["e1\n"]


def test_line_callback_that_raises_is_logged_and_job_result_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(line: bytes) -> None:
        raise RuntimeError(f"bad line {line!r}")

    with caplog.at_level(logging.ERROR), ProcessExecutor(1) as ex:
        future = ex.run(py("print('a'); print('b')"), capture_output=True, on_stdout_line=explode)
    assert future.result().stdout == b"a\nb\n"
    assert "bad line" in caplog.text


def test_child_that_stops_reading_stdin_does_not_hang() -> None:
    with ProcessExecutor(1) as ex:
        result = ex.run(
            py("import sys; sys.stdin.buffer.read(10)"), input=b"x" * (8 * MIB)
        ).result()
    assert result.returncode == 0


def test_256_jobs_with_output_at_once_without_a_thread_per_pipe() -> None:
    script = "head -c 100000 /dev/zero; echo err >&2; read line"
    release = Gate()
    before = threading.active_count()
    try:
        with ProcessExecutor(256) as ex:
            futures = [
                ex.run(["sh", "-c", script], capture_output=True, stdin=release.read_fd)
                for _ in range(256)
            ]
            assert all(f.wait_started(60) for f in futures)  # all 256 running at once
            release.open()
            results = [f.result() for f in futures]
    finally:
        release.close()
    assert all(len(r.stdout) == 100000 and r.stderr == b"err\n" for r in results)
    assert threading.active_count() <= before + 1  # no thread per pipe (waiter threads ended)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"capture_output": True, "stdout": subprocess.DEVNULL}, ValueError, "capture_output"),
        ({"input": b"x", "stdin": subprocess.DEVNULL}, ValueError, "stdin and input"),
        ({"on_stdout_line": 3}, TypeError, "callable"),
        ({"on_stderr_line": print, "stderr": subprocess.DEVNULL}, ValueError, "pipe"),
        ({"timeout": -1}, ValueError, "timeout"),
    ],
)
def test_bad_run_arguments(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    with ProcessExecutor(1) as ex, pytest.raises(error, match=match):
        ex.run(py("pass"), **kwargs)  # type: ignore[call-overload]


def test_stdin_pipe_without_input_sees_end_of_file() -> None:
    with ProcessExecutor(1) as ex:
        result = ex.run(
            py("import sys; print(len(sys.stdin.read()))"),
            stdin=subprocess.PIPE,
            capture_output=True,
            universal_newlines=True,
        )
    assert result.result().stdout == "0\n"


# ------------------------------------------------------- exactly subprocess.run's values
TRUE = shutil.which("true") or "/bin/true"


def test_a_bare_path_is_a_program_as_in_subprocess() -> None:
    with ProcessExecutor(1) as ex:
        result = ex.run(Path(TRUE)).result()
        status = ex.submit(Path(TRUE)).result()
    expected = subprocess.run(Path(TRUE), check=False)
    assert (result.returncode, result.args) == (expected.returncode, expected.args)
    assert result.args == Path(TRUE) and result.returncode == 0
    assert status == 0
    with ProcessExecutor(1) as ex, pytest.raises(TypeError, match="path-like command cannot"):
        ex.run(Path(TRUE), shell=True)  # at the call; subprocess refuses it too
    with pytest.raises(TypeError):
        subprocess.run(Path(TRUE), shell=True, check=False)


def test_a_tuple_of_args_stays_a_tuple_as_in_subprocess() -> None:
    args = (sys.executable, "-c", "raise SystemExit(3)")
    with ProcessExecutor(1) as ex:
        result = ex.run(args).result()
        checked = ex.run(args, check=True)
    assert result.args == args and type(result.args) is tuple
    with pytest.raises(subprocess.CalledProcessError) as raised:
        checked.result()
    with pytest.raises(subprocess.CalledProcessError) as theirs:
        subprocess.run(args, check=True)
    assert raised.value.cmd == theirs.value.cmd == args and type(raised.value.cmd) is tuple


def test_a_list_is_copied_so_changing_it_later_changes_nothing(gate: Gate) -> None:
    args = [sys.executable, "-c", "raise SystemExit(5)"]
    with ProcessExecutor(1) as ex:
        blocker = ex.submit(["cat"], stdin=gate.read_fd)
        assert blocker.wait_started(30)
        queued = ex.run(args)
        args[-1] = "raise SystemExit(6)"
        gate.open()
    assert queued.result().returncode == 5


@pytest.mark.parametrize("timeout", [1, 0.5])
def test_timeout_expired_reports_the_timeout_as_given(timeout: float) -> None:
    with ProcessExecutor(1, term_sequence=[(signal.SIGKILL, 0)]) as ex:
        future = ex.run(["sleep", "60"], capture_output=True, text=True, timeout=timeout)
    with pytest.raises(subprocess.TimeoutExpired) as raised:
        future.result()
    with pytest.raises(subprocess.TimeoutExpired) as theirs:
        subprocess.run(
            ["sleep", "60"], check=False, capture_output=True, text=True, timeout=timeout
        )
    assert raised.value.timeout == theirs.value.timeout == timeout
    assert type(raised.value.timeout) is type(timeout)
    assert raised.value.cmd == theirs.value.cmd
    assert raised.value.output == b"" and raised.value.stderr == b""  # bytes, always


def test_default_encoding_warning_points_at_the_caller_as_in_subprocess() -> None:
    code = (
        "from procexec import ProcessExecutor\n"
        "with ProcessExecutor(1) as ex:\n"
        "    ex.run('echo hello', shell=True, text=True).result()\n"
        "    ex.run('echo hello', shell=True, text=True, encoding='utf-8').result()\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "warn_default_encoding", "-c", code],
        capture_output=True, check=False,
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if b"Warning" in line]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(b"<string>:3: EncodingWarning: "), result.stderr


@pytest.mark.parametrize("keep", [False, True], ids=["line-callback", "captured"])
def test_a_child_writing_as_fast_as_it_is_read_does_not_starve_its_lane(keep: bool) -> None:
    """``yes`` refills its pipe as fast as the lane reads it: the lane still gets to the
    job's deadline and stops it (it used to read on and on in one event)."""
    lines = 0

    def count(line: bytes) -> None:
        nonlocal lines
        lines += 1

    with ProcessExecutor(max_jobs=1) as ex:
        future = ex.run(["yes"], on_stdout_line=count, capture_output=keep, timeout=0.3)
        with pytest.raises(subprocess.TimeoutExpired):
            future.result(timeout=60)
        assert ex.run(["true"]).result(timeout=60).returncode == 0  # the lane goes on
    assert lines > 0
