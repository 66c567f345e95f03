"""ProcessExecutor: limits, statuses, futures protocol, stopping, resizing, leaks, threads."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, as_completed, wait
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procexec import JobResult, ProcessExecutor, ProcessFuture, default_max_jobs
from tests._helpers import (
    Gate,
    assert_dies,
    assert_lanes_end,
    lane_threads,
    my_children,
    py,
    read_pid_lines,
    recorder,
    seen_counts,
    spawner,
)

pytestmark = pytest.mark.usefixtures("reaper_path")


# ------------------------------------------------------------------ the limit
@pytest.mark.parametrize("max_jobs", [1, 2, 3])
def test_limit_reached_and_never_exceeded(tmp_path: Path, max_jobs: int) -> None:
    with ProcessExecutor(max_jobs) as ex:
        futures = [ex.submit(recorder(tmp_path, barrier=max_jobs)) for _ in range(2 * max_jobs + 1)]
    assert [f.result() for f in futures] == [0] * len(futures)
    assert max(seen_counts(tmp_path)) == max_jobs


@pytest.mark.parametrize("max_jobs", [2, 3])
def test_no_more_futures_running_than_max_jobs(max_jobs: int) -> None:
    # The lanes start children side by side, each under its share of max_jobs and all of
    # them under max_jobs; seen from the futures, the limit holds across lanes.
    futures: list[concurrent.futures.Future[int]] = []
    seen: list[int] = []

    def count_the_others(done: concurrent.futures.Future[int]) -> None:
        if on_a_lane():  # at resolution (not later, in this thread, for one already done)
            seen.append(sum(f.running() for f in futures if f is not done))

    with ProcessExecutor(max_jobs) as ex:
        for _ in range(300):
            future = ex.submit(["true"])
            future.add_done_callback(count_the_others)
            futures.append(future)
    assert [f.result() for f in futures] == [0] * 300
    assert seen and max(seen) <= max_jobs - 1


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one lane per core: needs 2 cores")
def test_children_are_started_by_more_than_one_lane() -> None:
    lanes: set[str] = set()

    def note_the_lane(_: object) -> None:
        if on_a_lane():
            lanes.add(threading.current_thread().name)

    with ProcessExecutor(2) as ex:
        futures = [ex.submit(["true"]) for _ in range(100)]
        for future in futures:
            future.add_done_callback(note_the_lane)
    assert [f.result() for f in futures] == [0] * 100
    assert len(lanes) == 2, lanes


def test_a_slot_freed_in_another_lane_goes_to_the_call_next_in_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two lanes run one command each; calls run only in the first. When the second lane's
    # command ends with a call next in line, the first lane must start it although its own
    # command runs on: it used to be told only when that command ended.
    monkeypatch.setattr("procexec._core._reaper._cores", lambda: 2)
    gates = [Gate(), Gate()]
    with ProcessExecutor(2) as ex:
        commands = [ex.submit(["cat"], stdin=g.read_fd, stdout=subprocess.DEVNULL) for g in gates]
        for command in commands:
            command.wait_started()
        call = ex.submit_call(abs, -3)  # waits: both slots are taken
        second = next(t for t in lane_threads(ex) if t.name.endswith("-lane1"))
        ended = next(
            i for i, c in enumerate(commands) if c.pid in _children_of_thread(second.native_id)
        )
        gates[ended].open()
        assert commands[ended].result(timeout=60) == 0
        assert call.result(timeout=60) == 3
        assert not commands[1 - ended].done()
        gates[1 - ended].open()
    for gate in gates:
        gate.close()


def _children_of_thread(tid: int | None) -> set[int]:
    """The pids of the children that the thread ``tid`` of this process started."""
    with open(f"/proc/self/task/{tid}/children") as children:
        return {int(pid) for pid in children.read().split()}


def on_a_lane() -> bool:
    """Whether this runs on one of procexec's lane threads."""
    return threading.current_thread().name.startswith("procexec-reaper")


_SH_JOB = (
    'echo x > "$0/run.$$"; n=$(ls "$0" | grep -c "^run\\."); echo $n > "$0/seen.$$"; '
    'rm "$0/run.$$"; case $1 in kill) kill -9 $$;; *) exit $1;; esac'
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    max_jobs=st.integers(1, 4),
    jobs=st.lists(st.sampled_from(["0", "1", "7", "kill", "missing"]), min_size=1, max_size=12),
)
def test_property_limit_and_statuses(
    tmp_path_factory: pytest.TempPathFactory, max_jobs: int, jobs: list[str]
) -> None:
    directory = tmp_path_factory.mktemp("mix")
    with ProcessExecutor(max_jobs) as ex:
        futures = [
            ex.submit(
                ["/nonexistent/program"]
                if kind == "missing"
                else ["sh", "-c", _SH_JOB, str(directory), kind]
            )
            for kind in jobs
        ]
    for kind, future in zip(jobs, futures, strict=True):
        if kind == "missing":
            assert isinstance(future.exception(), FileNotFoundError)
        else:
            assert future.result() == (-signal.SIGKILL if kind == "kill" else int(kind))
    seen = [int(p.read_text()) for p in directory.glob("seen.*")]
    assert max(seen, default=0) <= max_jobs


# --------------------------------------------------------------- exit statuses
def test_exit_statuses() -> None:
    with ProcessExecutor(2) as ex:
        ok = ex.submit(py("pass"))
        bad = ex.submit(py("raise SystemExit(3)"))
        killed = ex.submit(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    assert (ok.result(), bad.result(), killed.result()) == (0, 3, -signal.SIGKILL)


def test_unstartable_commands_resolve_to_their_error_and_the_rest_run(tmp_path: Path) -> None:
    not_executable = tmp_path / "script"
    not_executable.write_text("#!/bin/sh\n")
    with ProcessExecutor(1) as ex:
        missing = ex.submit(["/no/such/program"])
        bad_cwd = ex.submit(py("pass"), cwd=tmp_path / "missing-dir")
        denied = ex.submit([str(not_executable)])
        after = ex.submit(py("raise SystemExit(5)"))
    assert isinstance(missing.exception(), FileNotFoundError)
    assert isinstance(bad_cwd.exception(), FileNotFoundError)
    assert isinstance(denied.exception(), PermissionError)
    assert after.result() == 5


# ------------------------------------------------------------ futures protocol
def test_as_completed_and_wait_first_completed(gate: Gate) -> None:
    with ProcessExecutor(2) as ex:
        slow = ex.submit(["cat"], stdin=gate.read_fd)
        fast = ex.submit(py("raise SystemExit(4)"))
        done, not_done = wait([slow, fast], return_when=FIRST_COMPLETED)
        assert done == {fast} and not_done == {slow}
        gate.open()
        assert {f.result() for f in as_completed([slow, fast])} == {0, 4}


def test_map_yields_in_input_order() -> None:
    commands = [
        py(f"import time; time.sleep({0.05 * (3 - i)}); raise SystemExit({i})") for i in range(4)
    ]
    with ProcessExecutor(4) as ex:
        assert list(ex.map(commands)) == [0, 1, 2, 3]


def test_map_buffersize_reads_input_lazily() -> None:
    taken: list[int] = []

    def commands() -> Iterator[list[str]]:
        for i in range(1_000_000):
            taken.append(i)
            yield py(f"raise SystemExit({i % 5})")

    with ProcessExecutor(2) as ex:
        results = ex.map(commands(), buffersize=3)
        assert len(taken) == 3
        assert [next(results) for _ in range(4)] == [0, 1, 2, 3]
        assert len(taken) == 7
        results.close()  # type: ignore[attr-defined]


def test_map_timeout_raises_and_cancels_the_rest(gate: Gate) -> None:
    with ProcessExecutor(1) as ex:
        results = ex.map([["cat"], ["cat"]], timeout=0.2, stdin=gate.read_fd)
        with pytest.raises(concurrent.futures.TimeoutError):  # the builtin one from 3.11
            next(results)
        gate.open()


def test_cancel_pending_job(gate: Gate) -> None:
    with ProcessExecutor(1) as ex:
        running = ex.submit(["cat"], stdin=gate.read_fd)
        assert running.wait_started(30)
        waiting = ex.submit(py("pass"))
        assert waiting.cancel()
        assert not running.cancel()  # started jobs cannot be cancelled
        gate.open()
    assert running.result() == 0 and waiting.cancelled()


def test_jobs_after_cancelled_and_unstartable_ones_still_start(gate: Gate) -> None:
    # When a slot frees, the lane takes the next job; if that one gives the slot straight
    # back (cancelled, or it cannot start), the lane must go on to the job after it.
    with ProcessExecutor(1) as ex:
        running = ex.submit(["cat"], stdin=gate.read_fd)
        assert running.wait_started(30)
        cancelled = ex.submit(py("pass"))
        missing = ex.submit(["/no/such/program"])
        last = ex.submit(py("raise SystemExit(4)"))
        assert cancelled.cancel()
        gate.open()
        assert last.result(timeout=60) == 4
    assert isinstance(missing.exception(), FileNotFoundError)


def test_shutdown_cancel_futures_and_submit_after_shutdown(gate: Gate) -> None:
    ex = ProcessExecutor(1)
    running = ex.submit(["cat"], stdin=gate.read_fd)
    assert running.wait_started(30)
    waiting = [ex.submit(py("pass")) for _ in range(3)]
    ex.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in waiting)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(py("pass"))
    gate.open()
    ex.shutdown(wait=True)
    assert running.result() == 0


def test_shutdown_from_a_done_callback_returns_and_the_jobs_finish(gate: Gate) -> None:
    # The callback runs on a lane; waiting there for the lanes to end would wait forever.
    ex = ProcessExecutor(2)
    first = ex.submit(["cat"], stdin=gate.read_fd)
    others = [ex.submit(py("raise SystemExit(3)")) for _ in range(6)]
    returned: list[str] = []

    def shut_down(_: object) -> None:
        ex.shutdown(wait=True)
        returned.append("returned")

    first.add_done_callback(shut_down)
    gate.open()
    assert [f.result(timeout=60) for f in [first, *others]] == [0] + [3] * 6
    ex.shutdown(wait=True)
    assert returned == ["returned"]


def test_asyncio_wrap_future() -> None:
    async def main(ex: ProcessExecutor) -> list[int]:
        futures = [asyncio.wrap_future(ex.submit(py(f"raise SystemExit({i})"))) for i in range(3)]
        return list(await asyncio.gather(*futures))

    with ProcessExecutor(2) as ex:
        assert asyncio.run(main(ex)) == [0, 1, 2]


def test_raising_done_callback_is_logged_and_executor_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def explode(_: object) -> None:
        raise ValueError("callback bug")

    with caplog.at_level(logging.ERROR), ProcessExecutor(1) as ex:
        first = ex.submit(py("pass"))
        first.add_done_callback(explode)
        second = ex.submit(py("raise SystemExit(2)"))
    assert second.result() == 2
    assert "callback bug" in caplog.text


def test_callback_may_submit_more_work() -> None:
    with ProcessExecutor(1) as ex:
        chained: list[ProcessFuture[int]] = []
        submitted = threading.Event()

        def chain(_: object) -> None:
            chained.append(ex.submit(py("raise SystemExit(6)")))
            submitted.set()

        ex.submit(py("pass")).add_done_callback(chain)
        assert submitted.wait(30)
        assert chained[0].result(30) == 6


# ------------------------------------------------------------ Popen consistency
def test_future_exposes_pid_and_a_consistent_popen() -> None:
    with ProcessExecutor(1) as ex:
        future = ex.submit(py("raise SystemExit(9)"))
        assert future.result() == 9
    assert future.popen is not None and future.pid == future.popen.pid
    assert future.popen.poll() == 9 and future.popen.wait() == 9


def test_popen_stays_consistent_when_caller_waits_on_it(gate: Gate) -> None:
    with ProcessExecutor(1) as ex:
        future = ex.submit(
            py("import sys; sys.stdin.read(); raise SystemExit(7)"), stdin=gate.read_fd
        )
        assert future.wait_started(30) and future.popen is not None
        waited: list[int] = []
        waiter = threading.Thread(target=lambda: waited.append(future.popen.wait()))  # type: ignore[union-attr]
        waiter.start()
        gate.open()
        waiter.join()
    assert waited == [7] and future.result() == 7


def test_pid_is_none_before_start(gate: Gate) -> None:
    with ProcessExecutor(1) as ex:
        first = ex.submit(["cat"], stdin=gate.read_fd)
        second = ex.submit(py("pass"))
        assert first.wait_started(30)
        assert second.pid is None and second.popen is None and second.started_at is None
        assert first.started_at is not None and first.started_at > 0
        assert first.args == ["cat"] and ProcessFuture().args is None
        assert not second.wait_started(0)
        gate.open()


def test_wait_started_wakes_when_the_job_starts(gate: Gate) -> None:
    with ProcessExecutor(1) as ex:
        first = ex.submit(["cat"], stdin=gate.read_fd)
        second = ex.submit(py("pass"))
        assert first.wait_started(30)
        started: list[bool] = []
        waiter = threading.Thread(target=lambda: started.append(second.wait_started()), daemon=True)
        waiter.start()
        deadline = time.monotonic() + 30
        while ex._reaper._progress_waiters == 0:  # not yet waiting: opening now proves nothing
            assert time.monotonic() < deadline
            time.sleep(0.001)
        gate.open()  # first ends, second starts: the waiter, with no timeout, must wake
        waiter.join(60)
        assert not waiter.is_alive() and started == [True]


# ----------------------------------------------------------------- stopping
def test_terminate_one_job_reaches_its_grandchild() -> None:
    report_r, report_w = os.pipe()
    try:
        with ProcessExecutor(2) as ex:
            future = ex.submit(spawner(report_w), pass_fds=(report_w,))
            [(child, grandchild)] = read_pid_lines(report_r, 1)
            future.terminate()
            assert future.result(30) == -signal.SIGTERM
        assert_dies(grandchild)
        assert child not in my_children()
    finally:
        os.close(report_r)
        os.close(report_w)


def test_keyboard_interrupt_in_with_block_stops_and_reaps_everything() -> None:
    report_r, report_w = os.pipe()
    try:
        with pytest.raises(KeyboardInterrupt), ProcessExecutor(3) as ex:
            futures = [ex.submit(spawner(report_w), pass_fds=(report_w,)) for _ in range(5)]
            pids = read_pid_lines(report_r, 3)
            raise KeyboardInterrupt
        assert [f.result() for f in futures[:3]] == [-signal.SIGTERM] * 3
        assert all(f.cancelled() for f in futures[3:])
        for child, grandchild in pids:
            assert child not in my_children()
            assert_dies(grandchild)
    finally:
        os.close(report_r)
        os.close(report_w)


def _in_a_thread(body: Callable[[], None]) -> None:
    """Run ``body`` on a helper thread; fail (instead of hanging the suite) if it has not
    returned within a minute."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            body()
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "leaving the with block hung"
    if errors:
        raise errors[0]


def test_interrupted_wait_leaving_a_running_futures_lock_held_does_not_hang_the_exit() -> None:
    # A KeyboardInterrupt that lands inside concurrent.futures.wait() or as_completed(), while
    # they take every future's lock one by one, leaves some of those locks held by the
    # interrupted thread. The lane resolving such a future used to block on it for ever, and
    # the with block's exit with it (seen as a parent that never exited after SIGINT).
    futures: list[ProcessFuture[int]] = []

    def body() -> None:
        with pytest.raises(KeyboardInterrupt), ProcessExecutor(1) as ex:
            futures.append(ex.submit(["sleep", "300"]))
            assert futures[0].wait_started(30)
            futures[0]._condition.acquire()  # what the interrupted wait() leaves behind
            raise KeyboardInterrupt

    _in_a_thread(body)
    assert futures[0].result(0) == -signal.SIGTERM


def test_interrupted_wait_leaving_a_queued_futures_lock_held_does_not_hang_shutdown() -> None:
    # The same, caught inside the block: the block ends normally and waits for every job,
    # including one that was still queued when its lock was left held.
    futures: list[ProcessFuture[int]] = []

    def body() -> None:
        with ProcessExecutor(1) as ex:
            futures.extend([ex.submit(["sleep", "300"]), ex.submit(["true"])])
            assert futures[0].wait_started(30)
            futures[1]._condition.acquire()  # left held by an interrupted wait()
            futures[0].kill()

    _in_a_thread(body)
    assert [f.result(0) for f in futures] == [-signal.SIGKILL, 0]


def test_child_ignoring_sigterm_is_killed_after_grace() -> None:
    code = (
        "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(flush=True); time.sleep(300)"
    )
    with ProcessExecutor(1, term_sequence=[(signal.SIGTERM, 0.2)]) as ex:
        future: ProcessFuture[JobResult[bytes]]
        future = ex.run(py(code), on_stdout_line=lambda _: future.terminate())
        assert future.result(30).returncode == -signal.SIGKILL


def _run_started_sleepers(ex: ProcessExecutor, count: int) -> list[ProcessFuture[JobResult[Any]]]:
    """Run ``count`` sleepers; return once each has printed its first line."""
    code = "import time; print(flush=True); time.sleep(300)"
    lines = threading.Semaphore(0)
    futures = [ex.run(py(code), on_stdout_line=lambda _: lines.release()) for _ in range(count)]
    for _ in range(count):
        assert lines.acquire(timeout=30)
    return futures


def test_terminate_jobs_and_kill_jobs() -> None:
    with ProcessExecutor(2) as ex:
        futures = _run_started_sleepers(ex, 2)
        ex.terminate_jobs()
        assert [f.result(30).returncode for f in futures] == [-signal.SIGTERM] * 2
        futures = _run_started_sleepers(ex, 2)
        ex.kill_jobs()
        assert [f.result(30).returncode for f in futures] == [-signal.SIGKILL] * 2


def test_terminate_has_no_effect_on_finished_or_pending_jobs(gate: Gate) -> None:
    with ProcessExecutor(1) as ex:
        done = ex.submit(py("pass"))
        assert done.result() == 0
        done.terminate()
        blocker = ex.submit(["cat"], stdin=gate.read_fd)
        pending = ex.submit(py("raise SystemExit(3)"))
        assert blocker.wait_started(30)
        pending.terminate()
        gate.open()
    assert pending.result() == 3


def test_submit_timeout_resolves_to_negative_signal() -> None:
    with ProcessExecutor(1, term_sequence=[(signal.SIGTERM, 5)]) as ex:
        future = ex.submit(["sleep", "300"], timeout=0.1)
        quick = ex.submit(py("pass"), timeout=30)
    assert future.result() == -signal.SIGTERM and future.timed_out
    assert quick.result() == 0 and not quick.timed_out


def test_future_reports_end_duration_and_usage_however_the_job_ends(gate: Gate) -> None:
    burn = "import time\nt = time.process_time() + 0.05\nwhile time.process_time() < t: pass"
    with ProcessExecutor(2, term_sequence=[(signal.SIGKILL, 0)]) as ex:
        plain = ex.submit(py(burn))
        slow = ex.submit(["sleep", "300"], timeout=0.05)
        checked = ex.run(py("raise SystemExit(4)"), check=True)
        waiting = ex.submit(["cat"], stdin=gate.read_fd)
        assert waiting.wait_started(30)
        assert waiting.ended_at is None and waiting.duration is None and waiting.rusage is None
        gate.open()
    for future in (plain, slow, checked, waiting):
        assert future.started_at is not None and future.ended_at is not None
        assert future.duration is not None and future.duration >= 0
        assert future.ended_at == pytest.approx(future.started_at + future.duration)
        assert future.rusage is not None and future.rusage.max_rss_upper > 0
    assert plain.rusage is not None and plain.rusage.user_time + plain.rusage.system_time >= 0.04
    assert slow.timed_out and slow.duration is not None and slow.duration >= 0.05
    with pytest.raises(subprocess.CalledProcessError):
        checked.result()


@pytest.mark.parametrize("where", ["executor", "job"])
def test_process_group_opt_out(where: str) -> None:
    code = "import os; raise SystemExit(0 if os.getpgrp() == os.getpid() else 1)"
    with ProcessExecutor(1, new_process_group=where == "job") as ex:
        own = ex.submit(py(code), new_process_group=where == "job" or None)
        shared = ex.submit(py(code), new_process_group=False)
    assert own.result() == (0 if where == "job" else 1)
    assert shared.result() == 1


# ------------------------------------------------------------------ resizing
def test_raising_max_jobs_starts_waiting_jobs(tmp_path: Path, gate: Gate) -> None:
    with ProcessExecutor(1) as ex:
        futures = [ex.submit(recorder(tmp_path, gated=True), stdin=gate.read_fd) for _ in range(3)]
        assert futures[0].wait_started(30)
        assert not futures[1].running() and not futures[2].running()
        ex.max_jobs = 3
        assert ex.max_jobs == 3
        assert all(f.wait_started(30) for f in futures)
        gate.open()


def test_lowering_max_jobs_lets_running_finish_and_holds_new_ones(tmp_path: Path) -> None:
    gates = [Gate() for _ in range(3)]
    try:
        with ProcessExecutor(3) as ex:
            first = [ex.submit(recorder(tmp_path, gated=True), stdin=g.read_fd) for g in gates]
            later = [ex.submit(recorder(tmp_path)) for _ in range(4)]
            assert all(f.wait_started(30) for f in first)
            ex.max_jobs = 1
            for g in gates:
                g.open()
        assert [f.result() for f in first + later] == [0] * 7
        later_pids = {f.pid for f in later}
        seen_by_later = [int((tmp_path / f"seen-{pid}").read_text()) for pid in later_pids]
        assert seen_by_later == [1] * 4
    finally:
        for g in gates:
            g.close()


# ------------------------------------------------------------- leaks, threads
@pytest.mark.usefixtures("no_fd_leak")
def test_no_fd_leak_and_no_zombie_after_500_jobs() -> None:
    with ProcessExecutor(2) as ex:
        futures = [ex.submit(["true"]) for _ in range(250)]
        runs = [ex.run(["echo", "x"], capture_output=True) for _ in range(250)]
    assert {f.result() for f in futures} == {0}
    assert {f.result().stdout for f in runs} == {b"x\n"}
    assert not {f.pid for f in futures + runs} & my_children()


def test_eight_threads_submitting_concurrently() -> None:
    results: dict[int, list[tuple[int, ProcessFuture[int]]]] = {}
    with ProcessExecutor(2) as ex:

        def submit_many(thread: int) -> None:
            results[thread] = [
                (i % 7, ex.submit(["sh", "-c", f"exit {i % 7}"])) for i in range(200)
            ]

        threads = [threading.Thread(target=submit_many, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    pairs = [pair for batch in results.values() for pair in batch]
    assert len(pairs) == 1600
    assert all(future.result() == expected for expected, future in pairs)


def test_reaper_threads_end_when_idle() -> None:
    ex = ProcessExecutor(4)
    assert [f.result() for f in [ex.submit(py("pass")) for _ in range(8)]] == [0] * 8
    ex.shutdown()
    assert_lanes_end(ex)


# ---------------------------------------------------------------- bad input
def test_default_max_jobs_follows_loky() -> None:
    from loky import cpu_count

    cpus = cpu_count()
    assert default_max_jobs() == (cpus if cpus <= 2 else cpus - 1)
    assert ProcessExecutor().max_jobs == default_max_jobs()


@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError), ("2", TypeError)],
)
def test_bad_max_jobs(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_jobs"):
        ProcessExecutor(value)  # type: ignore[arg-type]
    ex = ProcessExecutor(1)
    with pytest.raises(error, match="max_jobs"):
        ex.max_jobs = value  # type: ignore[assignment]
    assert ex.max_jobs == 1


@pytest.mark.parametrize(
    ("argv", "kwargs", "error", "match"),
    [
        ("ls -l", {}, TypeError, "shell=True"),
        ([], {}, ValueError, "empty"),
        (["echo", 3], {}, TypeError, r"argv\[1\]"),
        (42, {}, TypeError, "list of arguments"),
        (["true"], {"bogus": 1}, TypeError, "bogus"),
        (["true"], {"timeout": -1}, ValueError, "timeout"),
        (["true"], {"timeout": "soon"}, TypeError, "timeout"),
        (["true"], {"stdout": -1}, ValueError, "run()"),
        ("", {"shell": True}, ValueError, "empty"),
    ],
)
def test_bad_submit_arguments_raise_at_the_call(
    argv: object, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with ProcessExecutor(1) as ex:
        with pytest.raises(error, match=match):
            ex.submit(argv, **kwargs)  # type: ignore[arg-type]
        assert ex.submit(py("pass")).result() == 0


def test_shell_string_with_shell_true() -> None:
    with ProcessExecutor(1) as ex:
        assert ex.submit("exit 4", shell=True).result() == 4


@pytest.mark.parametrize(
    "sequence",
    [
        [],
        "TERM",
        [(signal.SIGTERM,)],
        [("TERM", 1)],
        [(signal.SIGTERM, -1)],
        [(9999, 1)],
        [(signal.SIGTERM, None)],
    ],
)
def test_bad_term_sequence(sequence: object) -> None:
    with pytest.raises((TypeError, ValueError), match="term_sequence"):
        ProcessExecutor(1, term_sequence=sequence)  # type: ignore[arg-type]


def test_bad_map_buffersize() -> None:
    with ProcessExecutor(1) as ex:
        with pytest.raises(ValueError, match="buffersize"):
            ex.map([["true"]], buffersize=0)
        with pytest.raises(TypeError, match="buffersize"):
            ex.map([["true"]], buffersize=1.5)  # type: ignore[arg-type]


def test_bug_setting_up_a_started_child_fails_that_job_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from procexec._core._job import Job

    def broken_take_pipes(self: Job) -> None:
        raise RuntimeError("injected reaper bug")

    with ProcessExecutor(2) as ex:
        with monkeypatch.context() as patch:
            patch.setattr(Job, "take_pipes", broken_take_pipes)
            future = ex.submit(["sleep", "300"])
            error = future.exception(timeout=30)
        assert ex.submit(["sh", "-c", "exit 4"]).result(timeout=30) == 4
    assert isinstance(error, RuntimeError) and "injected reaper bug" in str(error)
    assert future.pid is not None and future.pid not in my_children()
    assert future.popen is not None and future.popen.returncode == -signal.SIGKILL


def test_child_that_cannot_be_watched_is_reaped_and_its_future_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import errno

    from procexec._core._lane import Lane

    real_watch = Lane._watch
    calls: list[int] = []

    def watch_fails_once(self: Lane, job: object, pid: int) -> None:
        calls.append(pid)
        if len(calls) == 1:
            raise OSError(errno.EMFILE, "Too many open files")
        real_watch(self, job, pid)  # type: ignore[arg-type]

    monkeypatch.setattr(Lane, "_watch", watch_fails_once)
    with ProcessExecutor(1) as ex:
        failed = ex.run(["sleep", "300"], capture_output=True, input=b"x")
        after = ex.submit(py("raise SystemExit(3)"))
    error = failed.exception()
    assert isinstance(error, OSError) and error.errno == errno.EMFILE
    assert failed.popen is not None and failed.popen.returncode == -signal.SIGKILL
    assert failed.pid not in my_children()
    assert after.result() == 3


def test_a_dropped_future_frees_its_output_without_the_garbage_collector() -> None:
    """A settled job no longer refers to its future: the future -> job -> future cycle kept
    a command's result (its captured output too) until the collector's next full pass."""
    import gc
    import weakref

    gc.disable()
    try:
        with ProcessExecutor(1) as ex:
            future = ex.run(py("print('x' * 1000)"), capture_output=True)
            result = future.result(timeout=60)
            ref = weakref.ref(result)
            assert future.duration is not None  # the future still knows its job's figures
            del result, future
            end = time.monotonic() + 60
            while ref() is not None and time.monotonic() < end:  # the lane lets go at once
                time.sleep(0.005)
            assert ref() is None
    finally:
        gc.enable()
