"""Progress bars that count finished jobs and failures, and what a future and a result show
of themselves (repr)."""

from __future__ import annotations

import io
import logging
import re
import subprocess
from typing import Any

import pytest

import procexec
from procexec import JobResult, ProcessExecutor, ProcessFuture, Rusage
from tests._helpers import Gate, py

pytestmark = pytest.mark.usefixtures("reaper_path")


def last_line(stream: io.StringIO) -> str:
    """The bar as last drawn (tqdm redraws with carriage returns)."""
    return re.split(r"[\r\n]+", stream.getvalue().strip())[-1]


def test_progress_yields_every_future_and_counts_failures() -> None:
    out = io.StringIO()
    with ProcessExecutor(2) as ex:
        futures: list[ProcessFuture[Any]] = [
            ex.submit(py(f"raise SystemExit({i % 3 == 0})")) for i in range(7)
        ]
        futures.append(ex.submit(["/no/such/program"]))
        futures.append(ex.run(py("raise SystemExit(2)"), check=True))
        seen = list(procexec.progress(futures, desc="jobs", file=out, mininterval=0))
    assert sorted(map(id, seen)) == sorted(map(id, futures))
    bar = last_line(out)
    assert bar.startswith("jobs: 100%") and "9/9" in bar and "failed=5" in bar


def test_a_calls_value_is_not_an_exit_status_only_its_exception_fails() -> None:
    from tests import _call_targets as targets

    out = io.StringIO()
    with ProcessExecutor(2, progress={"file": out, "mininterval": 0}) as ex:
        ex.submit_call(targets.double, 3)  # 6: a value, not a failed status
        ex.submit_call(targets.raise_value_error, "x")
    assert "2/2" in last_line(out) and "failed=1" in last_line(out)


def test_progress_of_a_generator_with_a_total() -> None:
    out = io.StringIO()
    with ProcessExecutor(2) as ex:
        futures = (ex.submit(py("pass")) for _ in range(3))
        assert len(list(procexec.progress(futures, total=3, file=out, mininterval=0))) == 3
    assert "3/3" in last_line(out) and "failed" not in last_line(out)


def test_executor_progress_bar_counts_as_jobs_are_queued_and_end() -> None:
    out = io.StringIO()
    with ProcessExecutor(2, progress={"file": out, "mininterval": 0, "desc": "ex"}) as ex:
        for i in range(5):
            ex.submit(py(f"raise SystemExit({i == 4})"))
    bar = last_line(out)
    assert bar.startswith("ex: 100%") and "5/5" in bar and "failed=1" in bar


def test_future_repr_shows_command_pid_and_state(gate: Gate) -> None:
    with ProcessExecutor(1) as ex:
        running = ex.submit(["cat"], stdin=gate.read_fd)
        waiting = ex.submit(py("pass"))
        failing = ex.submit(["/no/such/program"])
        assert running.wait_started(30)
        assert repr(running) == f"<ProcessFuture ['cat'] pid={running.pid} running>"
        assert repr(waiting).startswith("<ProcessFuture [") and repr(waiting).endswith(" pending>")
        waiting.cancel()
        assert repr(waiting).endswith(" cancelled>")
        gate.open()
        assert failing.exception() is not None
    assert repr(running) == f"<ProcessFuture ['cat'] pid={running.pid} finished returned 0>"
    assert repr(failing) == "<ProcessFuture ['/no/such/program'] finished raised FileNotFoundError>"
    long = ProcessExecutor(1)
    with long:
        future = long.run(["echo", *["word"] * 100], capture_output=True)
    assert len(repr(future)) < 150 and "..." in repr(future)
    assert repr(ProcessFuture()) == "<ProcessFuture (unbound) pending>"


def test_job_result_repr_keeps_the_size_of_the_output_not_the_output() -> None:
    with ProcessExecutor(1) as ex:
        result = ex.run(py("print('x' * 100000)"), capture_output=True).result()
        text = ex.run(py("print('hé')"), stdout=subprocess.PIPE, text=True).result()
    assert isinstance(result, JobResult)
    assert "stdout=<100001 bytes>, stderr=<0 bytes>" in repr(result) and "xxx" not in repr(result)
    assert "stdout=<3 chars>, stderr=None" in repr(text)


def test_executor_repr_shows_the_limit_the_jobs_and_whether_it_is_shut_down(gate: Gate) -> None:
    ex = ProcessExecutor(1)
    assert repr(ex) == "<ProcessExecutor max_jobs=1 running=0 queued=0>"
    try:
        running = ex.submit(["cat"], stdin=gate.read_fd)
        ex.submit(py("pass"))
        assert running.wait_started(30)
        assert repr(ex) == "<ProcessExecutor max_jobs=1 running=1 queued=1>"
    finally:
        gate.open()
        ex.shutdown()
    assert repr(ex) == "<ProcessExecutor max_jobs=1 running=0 queued=0 shut down>"


def test_rusage_repr_rounds_the_times_to_the_microsecond_and_keeps_the_values() -> None:
    usage = Rusage(0.1 + 0.2, 0.0009159999999999999, None, 4096)
    assert repr(usage) == (
        "Rusage(user_time=0.3, system_time=0.000916, max_rss=None, max_rss_upper=4096)"
    )
    assert usage.user_time == 0.1 + 0.2 and usage.system_time == 0.0009159999999999999
    assert "max_rss=8192," in repr(Rusage(12.0, 0.0, 8192, 8192))


class _CountedPath:
    """A program path whose repr() is counted: it shows when a log line was formatted."""

    reprs = 0

    def __fspath__(self) -> str:
        return "true"

    def __repr__(self) -> str:
        _CountedPath.reprs += 1
        return "<the true program>"


def test_debug_log_says_queued_started_ended(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="procexec"), ProcessExecutor(1) as ex:
        future = ex.submit([_CountedPath()])
        ex.submit(["sleep", "60"], timeout=0.05)
    pid = future.pid
    lines = [r.getMessage() for r in caplog.records if r.name == "procexec"]
    assert "procexec: queued [<the true program>]" in lines
    assert f"procexec: started pid {pid}: [<the true program>]" in lines
    assert any(line.startswith(f"procexec: ended pid {pid} with status 0 after ") for line in lines)
    assert any(" with status -15 after " in line and "(timed out)" in line for line in lines)


def test_nothing_is_formatted_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    _CountedPath.reprs = 0
    with caplog.at_level(logging.INFO, logger="procexec"), ProcessExecutor(1) as ex:
        assert ex.submit([_CountedPath()]).result() == 0
    assert _CountedPath.reprs == 0 and not caplog.records
