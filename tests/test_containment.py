"""One job's failure is that job's outcome: the executor, its lanes and the other jobs go on.

Each test injects a failure at one step of a job's life (start, output, decode, line
callback, done-callback, reap) or into a lane's loop, and checks that only the jobs
concerned fail, that every future resolves once, that no child is left, and that
``shutdown()`` returns. The property test at the end mixes them at random (issue 17).
"""

from __future__ import annotations

import errno
import logging
import math
import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procexec import JobResult, ProcessExecutor, ProcessFuture
from procexec._core._lane import Lane
from procexec._core._resources import _limits
from procexec._core._streams import OutputPipe
from tests._helpers import Gate, assert_lanes_end, last_json, my_children, run_script

pytestmark = pytest.mark.usefixtures("reaper_path")

#: Output that is not valid UTF-8 (Latin-1 "café").
UNDECODABLE = ["printf", r"a\nb\ncaf\351\nd\n"]


def _goes_on(ex: ProcessExecutor) -> None:
    """The executor still takes jobs and runs them to the end."""
    futures = [ex.submit(["sh", "-c", "exit 5"]) for _ in range(3)]
    assert [f.result(timeout=30) for f in futures] == [5] * 3


# ----------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_undecodable_captured_output_fails_that_job_only(stream: str) -> None:
    redirect = ">&2" if stream == "stderr" else ""
    with ProcessExecutor(2) as ex:
        bad = ex.run(["sh", "-c", f"printf 'caf\\351' {redirect}"], capture_output=True, text=True)
        good = ex.run(["echo", "fine"], capture_output=True, text=True)
        assert isinstance(bad.exception(timeout=30), UnicodeDecodeError)
        assert good.result(timeout=30).stdout == "fine\n"
        _goes_on(ex)
    assert_lanes_end(ex)
    assert bad.popen is not None and bad.popen.returncode == 0


def test_undecodable_line_is_the_jobs_error_not_the_callbacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="procexec"), ProcessExecutor(1) as ex:
        future = ex.run(UNDECODABLE, text=True, on_stdout_line=lines.append)
        assert isinstance(future.exception(timeout=30), UnicodeDecodeError)
        _goes_on(ex)
    assert lines == ["a\n", "b\n"]  # the lines before the bad one; none after it
    assert "line callback" not in caplog.text


def test_errors_replace_decodes_what_strict_refuses() -> None:
    with ProcessExecutor(1) as ex:
        result = ex.run(UNDECODABLE, capture_output=True, text=True, errors="replace").result()
    assert result.stdout == "a\nb\ncaf\ufffd\nd\n"


@pytest.mark.parametrize(
    "kwargs", [{"encoding": "nosuch"}, {"errors": "nosuch"}, {"text": True, "errors": "nosuch"}]
)
def test_unknown_encoding_or_error_handler_is_a_lookup_error_at_the_call(
    kwargs: dict[str, Any],
) -> None:
    with ProcessExecutor(1) as ex:
        with pytest.raises(LookupError, match="nosuch"):
            ex.run(["true"], capture_output=True, **kwargs)
        _goes_on(ex)


def test_a_text_timeout_carries_the_output_as_bytes_even_if_undecodable() -> None:
    """``subprocess.TimeoutExpired`` documents its output as bytes, always; decoding it
    could also hide the timeout behind a decode error."""
    with ProcessExecutor(1) as ex:
        future = ex.run(
            ["sh", "-c", r"printf 'caf\351'; exec sleep 30"],
            capture_output=True,
            text=True,
            timeout=0.5,
        )
        error = future.exception(timeout=30)
    assert isinstance(error, subprocess.TimeoutExpired)
    assert error.stdout == b"caf\xe9"


# ------------------------------------------------------------------------------ timeouts
@pytest.mark.parametrize("timeout", [math.inf, float("1e400"), 1e300])
def test_an_infinite_or_huge_timeout_means_no_timeout(timeout: float) -> None:
    with ProcessExecutor(2) as ex:
        submitted = ex.submit(["true"], timeout=timeout)
        ran = ex.run(["echo", "x"], capture_output=True, timeout=timeout)
        mapped = list(ex.map([["true"]], timeout=timeout))
        assert submitted.result(timeout=30) == 0 and not submitted.timed_out
        assert ran.result(timeout=30).stdout == b"x\n"
        assert mapped == [0]
        _goes_on(ex)


def test_an_infinite_grace_period_never_escalates() -> None:
    with ProcessExecutor(1, term_sequence=[(signal.SIGTERM, math.inf)]) as ex:
        future = ex.submit(["sleep", "30"])
        assert future.wait_started(30)
        future.terminate()
        assert future.result(timeout=30) == -signal.SIGTERM


# ----------------------------------------------------------------------------- callbacks
@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt(), MemoryError()])
def test_done_callback_raising_anything_is_logged_and_the_rest_go_on(
    raised: BaseException, caplog: pytest.LogCaptureFixture, gate: Gate
) -> None:
    calls: Counter[str] = Counter()

    def explode(_: object) -> None:
        calls["explode"] += 1
        raise raised

    with caplog.at_level(logging.ERROR, logger="procexec"), ProcessExecutor(2) as ex:
        futures = [ex.submit(["sh", "-c", f"cat; exit {i}"], stdin=gate.read_fd) for i in range(6)]
        for future in futures:  # before they end: the callbacks run on the lanes
            future.add_done_callback(explode)
            future.add_done_callback(lambda _: calls.update(["after"]))
        gate.open()
        assert [f.result(timeout=30) for f in futures] == list(range(6))
        _goes_on(ex)
    assert_lanes_end(ex)
    assert calls == {"explode": 6, "after": 6}, "a callback after the raising one was skipped"
    assert type(raised).__name__ in caplog.text


def test_callbacks_run_by_cancel_in_the_callers_thread_all_run_then_the_interrupt_is_raised(
    gate: Gate,
) -> None:
    """On the caller's own thread a KeyboardInterrupt from a callback is the caller's:
    raised, as concurrent.futures would, but only after every callback has run."""
    calls: list[str] = []

    def interrupt(_: object) -> None:
        calls.append("interrupt")
        raise KeyboardInterrupt

    with ProcessExecutor(1) as ex:
        blocker = ex.submit(["cat"], stdin=gate.read_fd)
        queued = ex.submit(["true"])
        queued.add_done_callback(interrupt)
        queued.add_done_callback(lambda _: calls.append("after"))
        with pytest.raises(KeyboardInterrupt):
            queued.cancel()
        assert queued.cancelled()
        gate.open()
        assert blocker.result(timeout=30) == 0
    assert calls == ["interrupt", "after"]


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()])
def test_line_callback_raising_anything_is_logged_and_the_job_goes_on(
    raised: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[bytes] = []

    def explode(line: bytes) -> None:
        seen.append(line)
        raise raised

    with caplog.at_level(logging.ERROR, logger="procexec"), ProcessExecutor(2) as ex:
        future = ex.run(["printf", r"a\nb\n"], capture_output=True, on_stdout_line=explode)
        others = [ex.submit(["sh", "-c", "exit 2"]) for _ in range(4)]
        assert future.result(timeout=30).stdout == b"a\nb\n"
        assert [f.result(timeout=30) for f in others] == [2] * 4
        _goes_on(ex)
    assert seen == [b"a\n", b"b\n"]
    assert "line callback" in caplog.text


# --------------------------------------------------------------------- memory exhaustion
MEMORY_LIMIT = """
import json, resource
from procexec import ProcessExecutor

def vm_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize")

with ProcessExecutor(2) as ex:
    assert ex.submit(["true"]).result() == 0  # the lanes' threads exist before the limit
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm_bytes() + (192 << 20), hard))
    big = ex.run(["sh", "-c", "exec head -c 4294967296 /dev/zero"], capture_output=True)
    error = big.exception()
    small = ex.run(["echo", "ok"], capture_output=True).result()
    after = ex.submit(["sh", "-c", "exit 3"]).result()
print(json.dumps([type(error).__name__, small.stdout.decode(), after, big.popen.returncode]))
"""


def test_memory_error_while_capturing_fails_that_job_and_kills_it(reaper_path: str) -> None:
    proc = run_script(MEMORY_LIMIT, reaper_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc) == [
        "MemoryError",
        "ok\n",
        3,
        -signal.SIGKILL,
    ]


# ---------------------------------------------------------------------- the lane's loop
@contextmanager
def _loop_fails(monkeypatch: pytest.MonkeyPatch, times: int) -> Iterator[list[int]]:
    """Make the next ``times`` turns of any lane's loop fail after its wait."""
    real = Lane._pass_deadlines
    failures: list[int] = []

    def broken(self: Lane) -> None:
        if len(failures) < times:
            failures.append(1)
            raise RuntimeError("injected loop bug")
        real(self)

    with monkeypatch.context() as patch:
        patch.setattr(Lane, "_pass_deadlines", broken)
        yield failures


def test_a_failed_loop_fails_its_own_jobs_and_the_executor_goes_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    ex = ProcessExecutor(1)
    running = ex.run(["sleep", "300"], capture_output=True, input=b"x" * 200_000)
    assert running.wait_started(30)
    waiting = ex.submit(["sh", "-c", "exit 4"])
    with _loop_fails(monkeypatch, 1) as failures:
        ex.terminate_jobs()  # wakes the loop, which now fails
        error = running.exception(timeout=30)
        assert failures == [1]
    assert isinstance(error, RuntimeError) and "injected loop bug" in str(error)
    assert running.popen is not None and running.popen.returncode == -signal.SIGKILL
    assert waiting.result(timeout=30) == 4
    _goes_on(ex)
    ex.shutdown(wait=True)
    assert_lanes_end(ex)
    assert not my_children()
    assert "the reaper loop failed" in caplog.text


def test_a_loop_failing_again_and_again_still_resolves_every_future(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every turn fails right after starting its jobs: each run fails what it took, and the
    lane restarts for the rest, so every job fails (killed and reaped) and none hangs."""

    def broken(self: Lane) -> bool:
        raise RuntimeError("injected loop bug")

    ex = ProcessExecutor(2)
    with monkeypatch.context() as patch:
        patch.setattr(Lane, "_end_if_idle", broken)
        futures = [ex.submit(["sleep", "300"]) for _ in range(8)]
        for future in futures:
            error = future.exception(timeout=30)
            assert isinstance(error, RuntimeError) and "injected loop bug" in str(error)
    ex.shutdown(wait=True)
    assert_lanes_end(ex)
    assert not my_children()


def test_a_loop_that_fails_before_taking_any_job_closes_the_executor_without_hanging(
    monkeypatch: pytest.MonkeyPatch, gate: Gate
) -> None:
    """A failure that does not consume a job would restart the lane for ever: after a few
    such failures in a row the executor gives up, fails what waits, and refuses new jobs."""

    real_start_jobs = Lane._start_jobs

    def broken(self: Lane) -> None:
        if self._running:  # a turn while the blocker still runs (a wake-up left pending
            real_start_jobs(self)  # by the submits): it takes nothing; not the one to fail
            return
        raise RuntimeError("injected start bug")

    ex = ProcessExecutor(1)
    blocker = ex.submit(["cat"], stdin=gate.read_fd)
    waiting = [ex.submit(["true"]) for _ in range(5)]
    assert blocker.wait_started(30)
    monkeypatch.setattr(Lane, "_start_jobs", broken)
    gate.open()  # the blocker ends; the next turn of the loop fails, and each after it
    assert blocker.result(timeout=30) == 0
    for future in waiting:
        error = future.exception(timeout=30)
        assert isinstance(error, RuntimeError) and "injected start bug" in str(error)
    with pytest.raises(RuntimeError, match="shutdown"):
        ex.submit(["true"])
    ex.shutdown(wait=True)
    assert_lanes_end(ex)


def test_the_recovery_goes_on_when_closing_a_pipe_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The recovery path itself once crashed ("I/O operation on closed file")."""

    def close_fails(self: OutputPipe) -> None:
        raise ValueError("I/O operation on closed file")

    ex = ProcessExecutor(1)
    future = ex.run(["sleep", "300"], capture_output=True)
    assert future.wait_started(30)
    with _loop_fails(monkeypatch, 1), monkeypatch.context() as patch:
        patch.setattr(OutputPipe, "close", close_fails)
        patch.setattr(OutputPipe, "abandon", close_fails)
        ex.terminate_jobs()
        assert isinstance(future.exception(timeout=30), RuntimeError)
    assert future.popen is not None and future.popen.stdout is not None
    future.popen.stdout.close()  # the pipes the patch made unclosable: not a leak of ours
    assert future.popen.stderr is not None
    future.popen.stderr.close()
    _goes_on(ex)
    ex.shutdown(wait=True)
    assert_lanes_end(ex)
    assert not my_children()


def test_a_lane_without_an_fd_for_its_wake_pipe_fails_its_jobs_and_the_executor_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lane's thread makes its own wake pipe as it begins; with no fd left (and the limit
    at its maximum) the jobs it would have run fail with an error naming the limit."""
    import procexec._core._lane as lane_module

    real = lane_module._wake_pipe
    calls: list[int] = []

    def no_fd_once() -> tuple[int, int]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.EMFILE, "Too many open files")
        return real()

    monkeypatch.setattr(lane_module, "_wake_pipe", no_fd_once)
    monkeypatch.setattr(_limits, "raise_open_file_limit", lambda: False)
    ex = ProcessExecutor(1)
    error = ex.submit(["true"]).exception(timeout=30)
    assert isinstance(error, OSError) and error.errno == errno.EMFILE
    assert "RLIMIT_NOFILE" in str(error)
    _goes_on(ex)
    ex.shutdown(wait=True)
    assert_lanes_end(ex)


# ------------------------------------------------- property: failures at every step, mixed
STEPS = ("none", "start", "output", "decode", "line-callback", "done-callback", "reap")
RAISED: dict[str, Callable[[], BaseException]] = {
    "ValueError": lambda: ValueError("injected"),
    "MemoryError": MemoryError,
    "SystemExit": lambda: SystemExit(7),
    "KeyboardInterrupt": KeyboardInterrupt,
}


def _marker(index: int, step: str, raised: str) -> str:
    return f"job{index}:{step}:{raised}:"


def _fault(text: str, step: str) -> BaseException | None:
    """The exception to inject at ``step`` for the job whose marker is in ``text``."""
    for raised, make in RAISED.items():
        if f":{step}:{raised}:" in text:
            return make()
    return None


@contextmanager
def _faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Patch the start, output and reap steps to raise for the jobs whose marker asks."""
    import procexec._core._lane as lane_module

    real_popen, real_feed, real_reap = lane_module._popen, OutputPipe._feed, Lane._reap
    reaped_once: set[int] = set()

    def popen(job: Any) -> Any:
        fault = _fault(str(job.argv), "start")
        if fault is not None:
            raise fault
        return real_popen(job)

    def feed(self: OutputPipe, data: bytes) -> None:
        fault = _fault(data.decode("latin-1"), "output")
        if fault is not None:
            raise fault
        real_feed(self, data)

    def reap(self: Lane, job: Any) -> Any:
        fault = _fault(str(job.argv), "reap")
        if fault is not None and id(job) not in reaped_once:
            reaped_once.add(id(job))  # once: the recovery's own reap then succeeds
            raise fault
        return real_reap(self, job)

    with monkeypatch.context() as patch:
        patch.setattr(lane_module, "_popen", popen)
        patch.setattr(OutputPipe, "_feed", feed)
        patch.setattr(Lane, "_reap", reap)
        yield


def _expected_error(step: str, raised: str) -> type[BaseException] | None:
    """What the job's future holds: the injected exception (a SystemExit or
    KeyboardInterrupt wrapped in a RuntimeError, so that ``result()`` does not end the
    caller), UnicodeDecodeError for bad output, nothing for a raising callback."""
    if step in ("start", "output", "reap"):
        wrapped = raised in ("SystemExit", "KeyboardInterrupt")
        return RuntimeError if wrapped else type(RAISED[raised]())
    if step == "decode":
        return UnicodeDecodeError
    return None


JOBS = st.lists(
    st.tuples(st.sampled_from(STEPS), st.sampled_from(sorted(RAISED))), min_size=1, max_size=10
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(jobs=JOBS, max_jobs=st.integers(1, 3))
def test_property_failures_injected_at_every_step_stay_with_their_job(
    monkeypatch: pytest.MonkeyPatch, jobs: list[tuple[str, str]], max_jobs: int
) -> None:
    done_calls: Counter[int] = Counter()
    lines: Counter[int] = Counter()
    futures: list[ProcessFuture[JobResult[Any]]] = []
    logging.getLogger("procexec").setLevel(logging.CRITICAL)  # the injected errors are logged
    try:
        with _faults(monkeypatch):
            ex = ProcessExecutor(max_jobs)
            for index, (step, raised) in enumerate(jobs):
                futures.append(_submit_faulty(ex, index, step, raised, lines))
                futures[-1].add_done_callback(lambda f: done_calls.update([id(f)]))
            for future in futures:
                future.exception(timeout=30)
            _goes_on(ex)
            ex.shutdown(wait=True)
    finally:
        logging.getLogger("procexec").setLevel(logging.NOTSET)
    for index, ((step, raised), future) in enumerate(zip(jobs, futures, strict=True)):
        _check_job(index, step, raised, future, lines)
        assert done_calls[id(future)] == 1, f"job {index}: done-callbacks ran other than once"
    assert_lanes_end(ex)
    assert not my_children()


def _submit_faulty(
    ex: ProcessExecutor, index: int, step: str, raised: str, lines: Counter[int]
) -> ProcessFuture[JobResult[Any]]:
    marker = _marker(index, step, raised)
    script = r"printf 'caf\351\n'" if step == "decode" else 'printf "%s\n" "$0"'
    argv = ["sh", "-c", script, marker]

    def on_line(line: str) -> None:
        lines[index] += 1
        if step == "line-callback":
            raise RAISED[raised]()

    future = ex.run(argv, capture_output=True, text=True, on_stdout_line=on_line)
    if step == "done-callback":

        def explode(_: object) -> None:
            raise RAISED[raised]()

        future.add_done_callback(explode)
    return future


def _check_job(
    index: int, step: str, raised: str, future: ProcessFuture[JobResult[Any]], lines: Counter[int]
) -> None:
    expected = _expected_error(step, raised)
    error = future.exception(timeout=0)
    if expected is None:
        assert error is None, f"job {index} ({step}): {error!r}"
        assert future.result().stdout == _marker(index, step, raised) + "\n"
        assert lines[index] == 1
    else:
        assert isinstance(error, expected), f"job {index} ({step}, {raised}): {error!r}"
    if step == "start":
        assert future.popen is None
    else:
        assert future.popen is not None and future.popen.returncode is not None


def test_the_injection_helpers_really_inject(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard for the property test: each injected step does fail its job."""
    with _faults(monkeypatch), ProcessExecutor(1) as ex:
        for step in ("start", "output", "reap"):
            future = _submit_faulty(ex, 0, step, "ValueError", Counter())
            error = future.exception(timeout=30)
            assert isinstance(error, ValueError) and "injected" in str(error), (step, error)
