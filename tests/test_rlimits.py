"""Per-job resource limits (``limits=``): applied in the child only, checked at the call,
and the limit a failed job ran into named in its result."""

from __future__ import annotations

import resource
import signal
import subprocess
from pathlib import Path

import pytest

from procexec import Limits, ProcessExecutor
from procexec._core._resources import _rlimits
from tests._helpers import py

#: Allocate argv[1] MiB and touch every page.
ALLOCATE = "import sys\nb = bytearray(int(sys.argv[1]) << 20)\nb[::4096] = b'x' * len(b[::4096])"


@pytest.fixture(params=["prlimit", "preexec_fn"])
def how(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with limits set by util-linux prlimit, and by a preexec_fn."""
    if request.param == "prlimit" and _rlimits._prlimit() is None:
        pytest.skip("util-linux prlimit is not installed; the preexec_fn run covers limits")
    if request.param == "preexec_fn":
        monkeypatch.setattr(_rlimits, "_prlimit", lambda: None)
    return str(request.param)


def test_a_job_over_its_memory_limit_fails_and_says_which(how: str) -> None:
    with ProcessExecutor(2) as ex:
        over = ex.run([*py(ALLOCATE), "400"], capture_output=True, limits={"memory": "200M"})
        under = ex.run([*py(ALLOCATE), "20"], limits=Limits(memory="300M"))
        free = ex.run([*py(ALLOCATE), "400"])
    result = over.result()
    assert result.returncode != 0 and b"MemoryError" in result.stderr
    assert result.limit_hit == "memory" and over.limit_hit == "memory"
    assert under.result().returncode == 0 and under.result().limit_hit is None
    assert free.result().returncode == 0  # the limit was the job's, not the executor's


def test_data_limit(how: str) -> None:
    with ProcessExecutor(1) as ex:
        result = ex.run([*py(ALLOCATE), "400"], capture_output=True, limits={"data": 200 << 20})
    assert result.result().returncode != 0 and result.result().limit_hit == "data"


def test_cpu_limit_stops_a_spinning_job(how: str) -> None:
    with ProcessExecutor(1) as ex:
        future = ex.submit(py("while True: pass"), limits={"cpu": 1})
    assert future.result() in (-signal.SIGXCPU, -signal.SIGKILL)
    assert future.limit_hit == "cpu"


def test_open_files_and_processes_are_set_in_the_child(how: str) -> None:
    show = "import resource as r\nprint(r.getrlimit(r.RLIMIT_NOFILE)[0], r.getrlimit(r.RLIMIT_NPROC)[0])"  # noqa: E501
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    with ProcessExecutor(1) as ex:
        limits = {"open_files": 64, "processes": 4000}
        result = ex.run(py(show), capture_output=True, text=True, limits=limits)
    assert result.result().stdout.split() == ["64", "4000"]
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == before


def test_a_failure_under_a_cpu_limit_only_names_nothing() -> None:
    with ProcessExecutor(1) as ex:
        result = ex.run(["sh", "-c", "exit 3"], limits={"cpu": 5})
        plain = ex.run(["sh", "-c", "exit 3"])
    assert result.result().returncode == 3 and result.result().limit_hit is None
    assert plain.result().limit_hit is None and plain.limit_hit is None


def test_the_callers_preexec_fn_still_runs(tmp_path: Path) -> None:
    mark = tmp_path / "ran"
    with ProcessExecutor(1) as ex:
        result = ex.run(
            py("import resource as r; print(r.getrlimit(r.RLIMIT_NOFILE)[0])"),
            capture_output=True,
            text=True,
            limits={"open_files": 100},
            preexec_fn=lambda: mark.write_text("in the child"),
        )
    assert result.result().stdout.strip() == "100"
    assert mark.read_text() == "in the child"


@pytest.mark.parametrize(
    ("limits", "error", "message"),
    [
        ({"memroy": "1G"}, TypeError, "unknown limit.*memroy.*known: cpu, data, memory"),
        ({"memory": "lots"}, ValueError, "memory='lots' is not a size"),
        ({"memory": -1}, ValueError, "memory must be positive"),
        ({"memory": 1.5}, TypeError, "memory must be a number of bytes"),
        ({"cpu": 0}, ValueError, "cpu must be a positive number of seconds"),
        ({"cpu": "1"}, TypeError, "cpu must be a number of seconds"),
        ({"open_files": 10**12}, ValueError, "above this process's hard limit"),
        ({"processes": True}, TypeError, "processes must be an integer"),
        ("1G", TypeError, "limits must be a procexec.Limits or a dict"),
    ],
)
def test_bad_limits_are_refused_at_the_call(limits: object, error: type, message: str) -> None:
    with ProcessExecutor(1) as ex:
        with pytest.raises(error, match=message):
            ex.submit(["true"], limits=limits)  # type: ignore[arg-type]
        with pytest.raises(error, match=message):
            ex.run(["true"], limits=limits)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("size", "expected"),
    [("512", 512), ("1K", 1024), ("2M", 2 << 20), ("1.5G", 3 << 29), ("1GiB", 1 << 30), (7, 7)],
)
def test_sizes(size: int | str, expected: int) -> None:
    assert Limits(memory=size).rlimits() == ((resource.RLIMIT_AS, (expected, expected)),)


def test_cpu_hard_limit_is_one_second_later() -> None:
    assert Limits(cpu=2.4).rlimits() == ((resource.RLIMIT_CPU, (2, 3)),)


def test_a_limited_job_that_cannot_start_is_its_own_error(how: str) -> None:
    with ProcessExecutor(1) as ex:
        future = ex.run(["/nonexistent/program"], limits={"cpu": 5})
    with pytest.raises(FileNotFoundError):
        future.result()


def test_limits_with_check_raise_called_process_error() -> None:
    with ProcessExecutor(1) as ex:
        future = ex.run(
            [*py(ALLOCATE), "400"], capture_output=True, check=True, limits={"memory": "200M"}
        )
    with pytest.raises(subprocess.CalledProcessError):
        future.result()
    assert future.limit_hit == "memory"


def test_prlimit_runs_the_command_and_results_show_the_callers_argv(tmp_path: Path) -> None:
    if _rlimits._prlimit() is None:
        pytest.skip("util-linux prlimit is not installed")
    script = tmp_path / "show"
    script.write_text('#!/bin/sh\nulimit -n; echo "$@"\n')
    script.chmod(0o755)
    with ProcessExecutor(2) as ex:
        relative = ex.run(
            ["./show", "-a", "--b"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            limits={"open_files": 77},
        )
        shell = ex.run(
            "ulimit -n", shell=True, capture_output=True, text=True, limits={"open_files": 55}
        )
        future = ex.submit(["true"], limits={"open_files": 66})
    assert relative.result().stdout.split() == ["77", "-a", "--b"]
    assert relative.result().args == ["./show", "-a", "--b"]
    assert shell.result().stdout.strip() == "55" and shell.result().args == "ulimit -n"
    assert future.result() == 0 and future.args == ["true"]
    assert _program(future.popen) == _rlimits._prlimit()


def test_executable_falls_back_to_preexec_fn() -> None:
    with ProcessExecutor(1) as ex:
        result = ex.run(
            ["name-of-my-choosing", "-c", "ulimit -n"],
            executable="/bin/sh",
            capture_output=True,
            text=True,
            limits={"open_files": 44},
        )
    assert result.result().stdout.strip() == "44"
    assert _program(result.popen) == "name-of-my-choosing"


def _program(popen: subprocess.Popen[bytes] | None) -> object:
    """The program a Popen started (its first argument)."""
    assert popen is not None and isinstance(popen.args, list)
    return popen.args[0]
