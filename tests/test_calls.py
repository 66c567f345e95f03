"""Python calls in the slots of commands: submit_call, run_call, map_calls, ex.calls.

The calls run ``tests._call_targets`` functions in worker processes. Every test runs on both
ways of watching a child's exit (pidfd and the portable fallback).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import gc
import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from procexec import (
    CallFuture,
    CallLost,
    CallTimeout,
    InitializerError,
    ProcessExecutor,
    WorkerOptions,
)
from tests import _call_targets as targets
from tests._helpers import assert_dies, my_children

pytestmark = pytest.mark.usefixtures("reaper_path")

ROOT = Path(__file__).resolve().parent.parent


def _beats(path: Path) -> int:
    return path.read_text().count("beat") if path.exists() else 0


def _wait_until(predicate: Any, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.005)


def _line(path: Path, prefix: str) -> int:
    _wait_until(lambda: any(line.startswith(prefix) for line in _lines(path)))
    return next(int(line.split()[1]) for line in _lines(path) if line.startswith(prefix))


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _no_workers_left() -> None:
    assert my_children() == set(), "a worker (or its child) is left after shutdown"


# ------------------------------------------------------------------------- the contract
def test_submit_call_returns_the_value() -> None:
    with ProcessExecutor(2) as ex:
        future = ex.submit_call(targets.double, 21)
        assert isinstance(future, CallFuture)
        assert future.result(timeout=60) == 42
    _no_workers_left()


def test_fn_is_positional_only_so_fn_and_self_reach_the_function() -> None:
    with ProcessExecutor(1) as ex:
        assert ex.submit_call(targets.keywords, 1, fn=2, self=3).result(timeout=60) == (
            (1,),
            {"fn": 2, "self": 3},
        )


def test_lambdas_closures_partials_and_local_functions() -> None:
    offset = 10

    def local(x: int) -> int:
        return x + offset

    with ProcessExecutor(2) as ex:
        assert ex.submit_call(lambda x: x * 3, 2).result(timeout=60) == 6
        assert ex.submit_call(local, 1).result(timeout=60) == 11
        assert ex.submit_call(functools.partial(targets.add, 5), b=1).result(timeout=60) == 6


def test_a_function_of_a_scripts_main_module(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        "from procexec import ProcessExecutor\n"
        "def square(x):\n    return x * x\n"
        "class Box:\n    def __init__(self, v):\n        self.v = v\n"
        "def boxed(v):\n    return Box(v)\n"
        "if __name__ == '__main__':\n"
        "    with ProcessExecutor(2) as ex:\n"
        "        print(ex.submit_call(square, 7).result(timeout=60))\n"
        "        box = ex.submit_call(boxed, 3).result(timeout=60)\n"
        "        print(type(box) is Box, box.v)\n"
    )
    result = _run(script)
    assert result.stdout.split() == ["49", "True", "3"], result.stderr


def _run(script: Path) -> Any:
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, str(script)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_an_exception_comes_back_with_the_workers_traceback() -> None:
    from concurrent.futures.process import _RemoteTraceback

    with ProcessExecutor(1) as ex:
        future = ex.submit_call(targets.raise_value_error, "boom")
        with pytest.raises(ValueError, match="boom") as caught:
            future.result(timeout=60)
    cause = caught.value.__cause__
    assert type(cause) is _RemoteTraceback
    assert "raise_value_error" in str(cause)


def test_a_classmethods_traceback_shows_its_source_line() -> None:
    """A method bound to a class travels by reference (cloudpickle sent its function by
    value, compiled in the worker from no file: the traceback had no source line)."""
    with ProcessExecutor(1) as ex:
        future = ex.submit_call(targets.Raiser.fail, "boom")
        with pytest.raises(RuntimeError, match="boom") as caught:
            future.result(timeout=60)
    cause = str(caught.value.__cause__)
    assert "raise RuntimeError(message)  # a line the traceback shows" in cause, cause
    assert "_call_targets.py" in cause


def test_system_exit_is_the_futures_exception_and_the_worker_goes_on() -> None:
    with ProcessExecutor(1) as ex:
        first = ex.submit_call(targets.pid).result(timeout=60)
        with pytest.raises(SystemExit):
            ex.submit_call(targets.exit_with, 4).result(timeout=60)
        assert ex.submit_call(targets.pid).result(timeout=60) == first


def test_an_argument_that_cannot_be_pickled_fails_the_future_not_the_call() -> None:
    with ProcessExecutor(1) as ex:
        future = ex.submit_call(targets.keywords, threading.Lock())
        with pytest.raises(TypeError, match="pickle"):
            future.result(timeout=60)
        assert ex.submit_call(targets.double, 2).result(timeout=60) == 4


def test_a_result_that_cannot_be_pickled_is_that_futures_pickling_error() -> None:
    with ProcessExecutor(1) as ex:
        with pytest.raises((pickle.PicklingError, TypeError)):
            ex.submit_call(targets.unpicklable_result).result(timeout=60)
        assert ex.submit_call(targets.double, 2).result(timeout=60) == 4


def test_after_shutdown_submit_call_raises_cpythons_error() -> None:
    ex = ProcessExecutor(1)
    ex.shutdown()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit_call(targets.double, 1)


def test_after_interpreter_shutdown_an_atexit_hook_gets_cpythons_error(tmp_path: Path) -> None:
    script = tmp_path / "late.py"
    script.write_text(
        "import atexit\nfrom procexec import ProcessExecutor\n"
        "ex = ProcessExecutor(1)\n"
        "@atexit.register\n"
        "def late():\n"
        "    try:\n        ex.submit_call(print, 1)\n"
        "    except RuntimeError as exc:\n        print(exc)\n"
        "print(ex.submit_call(abs, -3).result(timeout=60))\n"
    )
    result = _run(script)
    assert result.stdout.splitlines() == [
        "3",
        "cannot schedule new futures after interpreter shutdown",
    ], result.stderr


def test_calls_executor_is_a_concurrent_futures_executor() -> None:
    with ProcessExecutor(2) as ex:
        pool = ex.calls
        assert isinstance(pool, concurrent.futures.Executor)
        assert pool.submit(targets.double, 4).result(timeout=60) == 8
        assert list(pool.map(targets.add, [1, 2], [10, 20])) == [11, 22]


def test_map_calls_in_order_with_chunks_and_a_lazy_buffer() -> None:
    with ProcessExecutor(2) as ex:
        assert list(ex.map_calls(targets.double, range(20), chunksize=7)) == [
            2 * i for i in range(20)
        ]
        endless = iter(range(10**9))
        taken = []
        for value in ex.map_calls(targets.double, endless, buffersize=4):
            taken.append(value)
            if len(taken) == 10:
                break
        assert taken == [2 * i for i in range(10)]
        assert next(endless) < 30  # read only as results were taken
        with pytest.raises(ValueError, match="chunksize"):
            ex.map_calls(targets.double, [1], chunksize=0)


def test_map_calls_raises_when_the_failing_item_is_reached() -> None:
    with ProcessExecutor(2) as ex:
        results = ex.map_calls(targets.raise_value_error, ["a", "b"])
        with pytest.raises(ValueError, match="a"):
            next(results)


# ------------------------------------------------------------------- cancel really stops
def test_cancel_of_a_running_call_stops_it_and_its_child(tmp_path: Path) -> None:
    beats = tmp_path / "beats"
    with ProcessExecutor(2) as ex:
        future = ex.submit_call(targets.heartbeat, str(beats), True)
        child, worker = _line(beats, "child"), _line(beats, "worker")
        _wait_until(lambda: _beats(beats) > 3)
        done_waiter = threading.Thread(
            target=concurrent.futures.wait,
            args=([future],),
            kwargs={"return_when": "FIRST_COMPLETED"},
        )
        done_waiter.start()
        assert future.cancel() is True
        assert future.cancelled()
        done_waiter.join(timeout=60)
        assert not done_waiter.is_alive(), "wait(FIRST_COMPLETED) did not wake"
        assert_dies(worker, timeout=5.0)  # promised within 0.5 s: a 10x margin
        assert_dies(child, timeout=5.0)
        stopped_at = _beats(beats)
        assert ex.submit_call(targets.pid).result(timeout=60) != worker  # a fresh worker
        assert _beats(beats) == stopped_at
    _no_workers_left()


def test_a_call_trapping_sigterm_gets_its_grace_then_sigkill(tmp_path: Path) -> None:
    beats = tmp_path / "beats"
    with ProcessExecutor(1, term_sequence=[(signal.SIGTERM, 0.2)]) as ex:
        future = ex.submit_call(targets.heartbeat, str(beats), False, True)
        worker = _line(beats, "worker")
        _wait_until(lambda: _beats(beats) > 3)
        future.cancel()
        assert_dies(worker)


def test_kill_stops_at_once_and_terminate_is_cancel(tmp_path: Path) -> None:
    with ProcessExecutor(2) as ex:
        for stop in ("kill", "terminate"):
            beats = tmp_path / stop
            future = ex.submit_call(targets.heartbeat, str(beats), False, True)
            worker = _line(beats, "worker")
            getattr(future, stop)()
            assert future.cancelled()
            if stop == "terminate":  # it traps SIGTERM: the sequence's SIGKILL ends it
                future.kill()
            assert_dies(worker)


def test_cancel_of_a_waiting_call_means_it_never_runs(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with ProcessExecutor(1) as ex:
        blocker = ex.submit_call(targets.wait_for_file, str(gate), 1)
        waiting = ex.submit_call(targets.heartbeat, str(tmp_path / "never"))
        assert waiting.cancel() is True
        gate.touch()
        assert blocker.result(timeout=60) == 1
    assert not (tmp_path / "never").exists()


def test_a_finished_call_and_a_hand_made_future_cannot_be_cancelled() -> None:
    with ProcessExecutor(1) as ex:
        future = ex.submit_call(targets.double, 1)
        future.result(timeout=60)
        assert future.cancel() is False
    hand_made: CallFuture[int] = CallFuture()
    assert hand_made.set_running_or_notify_cancel()
    assert hand_made.cancel() is False


def test_asyncio_cancellation_stops_the_call(tmp_path: Path) -> None:
    async def main(ex: ProcessExecutor) -> None:
        for how in ("wrap_future", "run_in_executor"):
            beats = tmp_path / how
            if how == "wrap_future":
                waiting = asyncio.wrap_future(ex.submit_call(targets.heartbeat, str(beats)))
            else:
                loop = asyncio.get_running_loop()
                waiting = loop.run_in_executor(ex.calls, targets.heartbeat, str(beats))
            worker = await asyncio.to_thread(_line, beats, "worker")
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await asyncio.to_thread(assert_dies, worker)

    with ProcessExecutor(2) as ex:
        asyncio.run(main(ex))


def test_closing_map_calls_early_stops_its_running_calls(tmp_path: Path) -> None:
    with ProcessExecutor(2) as ex:
        results = ex.map_calls(targets.heartbeat, [str(tmp_path / "a"), str(tmp_path / "b")])
        workers = [_line(tmp_path / "a", "worker"), _line(tmp_path / "b", "worker")]
        cast(Any, results).close()  # the iterator of map: close() cancels, as a generator's
        for worker in workers:
            assert_dies(worker)


def test_shutdown_with_cancel_futures_cancels_only_the_waiting_calls(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    ex = ProcessExecutor(1)
    running = ex.submit_call(targets.wait_for_file, str(gate), "ran")
    running.wait_started(60)
    waiting = ex.submit_call(targets.double, 1)
    ex.shutdown(wait=False, cancel_futures=True)
    gate.touch()
    assert running.result(timeout=60) == "ran"
    assert waiting.cancelled()
    ex.shutdown()
    _no_workers_left()


def test_queued_calls_reuse_the_workers_while_the_with_block_waits() -> None:
    """Leaving the block (shutdown(wait=True)) with calls queued: they run on the workers
    there are (each had a fresh worker: the draining pool retired every idle one)."""
    with ProcessExecutor(2) as ex:
        futures = [ex.submit_call(targets.pid) for _ in range(20)]
    assert len({future.result() for future in futures}) <= 2


def test_shutdown_without_wait_lets_the_idle_workers_exit() -> None:
    ex = ProcessExecutor(2)  # idle_timeout: 60 s, which they no longer wait out
    workers = {ex.submit_call(targets.pid).result(timeout=60) for _ in range(4)}
    ex.shutdown(wait=False)
    for worker in workers:
        assert_dies(worker)
    ex.shutdown()


def test_a_dropped_executor_lets_its_workers_exit_once_its_calls_ran(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    ex = ProcessExecutor(1)
    running = ex.submit_call(targets.wait_for_file, str(gate), "ran")
    queued = ex.submit_call(targets.double, 21)
    running.wait_started(60)
    worker = running.pid
    assert worker is not None
    del ex
    gc.collect()
    gate.touch()
    assert (running.result(timeout=60), queued.result(timeout=60)) == ("ran", 42)
    assert_dies(worker)


@pytest.mark.parametrize("stop", ["terminate_jobs", "kill_jobs"])
def test_the_executors_stop_of_its_jobs_cancels_the_running_calls(
    stop: str, tmp_path: Path
) -> None:
    """A call stopped by terminate_jobs() or kill_jobs() has no result: it ends cancelled,
    like one stopped through its future (it ended in CallLost, "killed by SIGTERM", as if
    it had crashed). The queued calls still run."""
    with ProcessExecutor(2) as ex:
        running = [ex.submit_call(targets.heartbeat, str(tmp_path / f"b{i}")) for i in (1, 2)]
        queued = ex.submit_call(targets.double, 21)
        workers = [_line(tmp_path / f"b{i}", "worker") for i in (1, 2)]
        getattr(ex, stop)()
        concurrent.futures.wait(running, timeout=60)
        assert all(future.cancelled() for future in running)
        for worker in workers:
            assert_dies(worker)
        assert queued.result(timeout=60) == 42


def test_leaving_the_with_block_by_an_exception_cancels_the_running_calls(
    tmp_path: Path,
) -> None:
    with pytest.raises(KeyboardInterrupt), ProcessExecutor(1) as ex:
        running = ex.submit_call(targets.heartbeat, str(tmp_path / "beats"))
        queued = ex.submit_call(targets.double, 21)
        worker = _line(tmp_path / "beats", "worker")
        raise KeyboardInterrupt
    assert running.cancelled() and queued.cancelled()
    assert_dies(worker)
    _no_workers_left()


# --------------------------------------------------------------------------------- timeout
def test_run_call_timeout_counts_from_the_start_and_stops_the_worker(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with ProcessExecutor(1) as ex:
        blocker = ex.submit_call(targets.wait_for_file, str(gate))
        slow = ex.run_call(targets.heartbeat, (str(tmp_path / "slow"),), timeout=1.0)
        quick = ex.run_call(targets.double, (2,), timeout=30)
        time.sleep(0)  # the blocker holds the only slot: the timeout has not begun
        gate.touch()
        blocker.result(timeout=60)
        worker = _line(tmp_path / "slow", "worker")
        with pytest.raises(CallTimeout) as caught:
            slow.result(timeout=60)
        assert caught.value.timeout == 1.0
        assert isinstance(caught.value, TimeoutError)
        assert slow.timed_out
        assert slow.duration is not None and slow.duration >= 1.0  # from its start
        assert slow.duration < 10.0  # stopped within 1 s of its timeout, with a 10x margin
        assert_dies(worker)
        assert quick.result(timeout=60) == 4 and not quick.timed_out


# -------------------------------------------------------------------- a crash stays put
CRASHES: dict[str, Callable[[ProcessExecutor], CallFuture[Any]]] = {
    "sigkill": lambda ex: ex.submit_call(targets.kill_self),
    "segfault": lambda ex: ex.submit_call(targets.segfault),
    "os._exit": lambda ex: ex.submit_call(targets.os_exit, 3),
    "unreadable result": lambda ex: ex.submit_call(targets.unreadable_result),
    # Pickling the result needs more memory than the call's limit (RLIMIT_AS) allows.
    "result too big": lambda ex: ex.run_call(targets.huge_result, limits={"memory": "1G"}),
}


@pytest.mark.parametrize("crash", sorted(CRASHES))
def test_a_crash_fails_only_its_own_call(crash: str, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with ProcessExecutor(2) as ex:
        innocent = ex.submit_call(targets.wait_for_file, str(gate), "innocent")
        innocent.wait_started(60)
        crashing = CRASHES[crash](ex)
        queued = [ex.submit_call(targets.double, i) for i in range(4)]
        with pytest.raises(CallLost) as caught:
            crashing.result(timeout=60)
        assert isinstance(caught.value, concurrent.futures.process.BrokenProcessPool)
        gate.touch()
        assert innocent.result(timeout=60) == "innocent"
        assert [f.result(timeout=60) for f in queued] == [0, 2, 4, 6]
        assert ex.submit_call(targets.double, 5).result(timeout=60) == 10
    error = caught.value
    if crash == "segfault":
        assert "SIGSEGV" in str(error) and "Fatal Python error" in error.stderr
    if crash == "sigkill":
        assert error.returncode == -signal.SIGKILL and "SIGKILL" in str(error)
    if crash == "os._exit":
        assert error.returncode == 3
    if crash == "result too big":
        assert "MemoryError" in str(error) and error.returncode is None  # the worker lives on
    _no_workers_left()


def test_a_worker_killed_while_idle_is_replaced_silently(caplog: pytest.LogCaptureFixture) -> None:
    with ProcessExecutor(1, workers=WorkerOptions(idle_timeout=None)) as ex:
        idle = ex.submit_call(targets.pid).result(timeout=60)
        _wait_until(lambda: ex.stats().idle_workers == 1)
        with caplog.at_level(logging.DEBUG, logger="procexec"):
            os.kill(idle, signal.SIGKILL)
            _wait_until(lambda: ex.stats().idle_workers == 0)  # seen, reaped, forgotten
            fresh = ex.submit_call(targets.pid)
            assert fresh.result(timeout=60) not in (idle, None)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    _no_workers_left()


def test_the_worker_pid_is_named_in_the_error() -> None:
    with ProcessExecutor(1) as ex:
        future = ex.submit_call(targets.kill_self)
        with pytest.raises(CallLost) as caught:
            future.result(timeout=60)
    assert caught.value.pid == future.pid and f"pid {future.pid}" in str(caught.value)


# ---------------------------------------------------------------------- one slot budget
def test_calls_and_commands_share_max_jobs(tmp_path: Path) -> None:
    """20 commands and 20 calls, max_jobs 3: never more than 3 at once, and 3 while enough
    wait (each item records how many it saw running as it started)."""
    command = [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from tests._call_targets import record;"
        "record(sys.argv[1], int(sys.argv[2]), sys.argv[3])",
    ]
    futures: list[concurrent.futures.Future[Any]] = []
    with ProcessExecutor(3) as ex:
        for i in range(20):
            futures.append(ex.submit([*command, str(tmp_path), "3", f"cmd{i}"]))
            futures.append(ex.submit_call(targets.record, str(tmp_path), 3, f"call{i}"))
    assert all(f.exception() is None for f in futures)
    seen = [int(p.read_text()) for p in tmp_path.glob("seen-*")]
    assert len(seen) == 40
    assert max(seen) == 3


def test_lowering_max_jobs_while_calls_run_does_not_block(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with ProcessExecutor(3, workers={"idle_timeout": None}) as ex:
        running = [ex.submit_call(targets.wait_for_file, str(gate), i) for i in range(3)]
        for future in running:
            future.wait_started(60)
        ex.max_jobs = 1  # returns at once
        assert ex.stats().running_calls == 3
        gate.touch()
        assert [f.result(timeout=60) for f in running] == [0, 1, 2]
        _wait_until(lambda: ex.stats().idle_workers <= 1)


def test_stats_count_calls_and_idle_workers(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with ProcessExecutor(1, workers=WorkerOptions(idle_timeout=None)) as ex:
        running = ex.submit_call(targets.wait_for_file, str(gate))
        queued = ex.submit_call(targets.double, 1)
        command = ex.submit(["true"])
        running.wait_started(60)
        stats = ex.stats()
        assert (stats.running, stats.running_calls) == (1, 1)
        assert (stats.queued, stats.queued_calls) == (2, 1)
        gate.touch()
        queued.result(timeout=60)
        command.result(timeout=60)
        assert ex.stats().idle_workers == 1


# --------------------------------------------------------------------------- the workers
def test_max_tasks_replaces_a_worker() -> None:
    with ProcessExecutor(1, workers=WorkerOptions(max_tasks=3)) as ex:
        pids = [ex.submit_call(targets.pid).result(timeout=60) for _ in range(4)]
    assert pids[0] == pids[1] == pids[2] != pids[3]


def test_an_idle_worker_exits_after_idle_timeout() -> None:
    with ProcessExecutor(1, workers=WorkerOptions(idle_timeout=0.2)) as ex:
        worker = ex.submit_call(targets.pid).result(timeout=60)
        assert_dies(worker)
        assert ex.stats().idle_workers == 0
        assert ex.submit_call(targets.pid).result(timeout=60) != worker


def test_the_initializer_runs_once_per_worker(tmp_path: Path) -> None:
    log = tmp_path / "init"
    options = WorkerOptions(initializer=targets.write_pid, initargs=(str(log),))
    with ProcessExecutor(2, workers=options) as ex:
        pids = {f.result(timeout=60) for f in [ex.submit_call(targets.pid) for _ in range(10)]}
    assert sorted(int(line) for line in _lines(log)) == sorted(pids)


def test_a_failing_initializer_fails_the_calls_not_the_executor() -> None:
    options = WorkerOptions(initializer=targets.failing_initializer)
    with ProcessExecutor(1, workers=options) as ex:
        futures = [ex.submit_call(targets.double, i) for i in range(5)]
        for future in futures:
            with pytest.raises(InitializerError, match="error in initializer") as caught:
                future.result(timeout=60)
            assert isinstance(caught.value, concurrent.futures.BrokenExecutor)
        # A later submit tries again (and fails again, the initializer being what it is).
        with pytest.raises(InitializerError):
            ex.submit_call(targets.double, 1).result(timeout=60)
    _no_workers_left()


def test_three_failed_worker_starts_fail_the_calls_queued_then_at_once(tmp_path: Path) -> None:
    """Not one worker started per queued call: after three failed starts in a row, the
    calls queued by then fail at once; a later submit tries again."""
    log = tmp_path / "starts"
    options = WorkerOptions(initializer=targets.failing_initializer_logging, initargs=(str(log),))
    with ProcessExecutor(1, workers=options) as ex:
        futures = [ex.submit_call(targets.double, i) for i in range(10)]
        for future in futures:
            with pytest.raises(InitializerError, match="error in initializer"):
                future.result(timeout=60)
        assert len(_lines(log)) == 3
        with pytest.raises(InitializerError):
            ex.submit_call(targets.double, 1).result(timeout=60)
        assert len(_lines(log)) == 4


def test_calls_stopped_while_their_worker_starts_are_not_failed_starts(tmp_path: Path) -> None:
    """Cancelling calls whose workers had not finished starting (their initializer waits
    for a file) does not count those workers as failed starts: the call queued behind them
    runs (it failed with InitializerError after three)."""
    gate = tmp_path / "gate"
    options = WorkerOptions(initializer=targets.wait_for_file, initargs=(str(gate),))
    with ProcessExecutor(1, workers=options) as ex:
        stopped = [ex.submit_call(targets.double, i) for i in range(3)]
        innocent = ex.submit_call(targets.double, 21)
        for future in stopped:
            assert future.wait_started(60)
            assert future.cancel()
            assert_dies(cast(int, future.pid))
        gate.touch()
        assert innocent.result(timeout=60) == 42


def test_a_timeout_counts_from_when_the_worker_is_ready() -> None:
    """A worker's start-up and initializer (here 1.5 s) are not the call's time: a quick
    call with a 0.5 s timeout given to a worker still starting is not timed out."""
    options = WorkerOptions(initializer=targets.sleep_then, initargs=(None, 1.5))
    with ProcessExecutor(1, workers=options) as ex:
        future = ex.run_call(targets.double, (2,), timeout=0.5)
        assert future.result(timeout=60) == 4
        assert not future.timed_out


def test_prestart_and_env() -> None:
    options = WorkerOptions(prestart=2, env={"PROCEXEC_TEST_VAR": "set"}, idle_timeout=None)
    with ProcessExecutor(2, workers=options) as ex:
        _wait_until(lambda: ex.stats().idle_workers == 2)
        assert ex.submit_call(targets.environment, "PROCEXEC_TEST_VAR").result(timeout=60) == "set"


def test_bad_worker_options_are_refused_at_the_constructor() -> None:
    with pytest.raises(TypeError, match="unknown option 'max_task'"):
        ProcessExecutor(1, workers={"max_task": 3})
    with pytest.raises(ValueError, match="max_tasks must be at least 1"):
        WorkerOptions(max_tasks=0)
    with pytest.raises(ValueError, match="idle_timeout"):
        WorkerOptions(idle_timeout=-1)


def test_limits_run_the_call_in_a_worker_of_its_own() -> None:
    with ProcessExecutor(1) as ex:
        shared = ex.submit_call(targets.pid).result(timeout=60)
        alone = ex.run_call(targets.pid, limits={"cpu": 60}).result(timeout=60)
        assert alone != shared
        assert ex.submit_call(targets.pid).result(timeout=60) == shared


# ------------------------------------------------------------------------------- rusage
def test_rusage_of_a_call() -> None:
    with ProcessExecutor(1) as ex:
        burnt = ex.submit_call(targets.burn, 0.3)
        burnt.result(timeout=60)
        assert burnt.rusage is not None
        assert burnt.rusage.user_time + burnt.rusage.system_time >= 0.25
        ex.submit_call(targets.allocate, 400).result(timeout=60)
        second = ex.submit_call(targets.allocate, 200)
        second.result(timeout=60)
        usage = second.rusage
        assert usage is not None and usage.max_rss is not None
        assert 190 * 2**20 <= usage.max_rss <= 330 * 2**20  # its own peak, not the 400 MiB one
        assert second.queued_for is not None and second.duration is not None
        assert second.started_at is not None and second.ended_at is not None


def test_nothing_keeps_the_arguments_or_the_result() -> None:
    import gc
    import weakref

    class Payload:
        pass

    payload = Payload()
    ref = weakref.ref(payload)
    with ProcessExecutor(1) as ex:
        future = ex.submit_call(targets.keywords, payload, payload)
        future.result(timeout=60)
        del payload
        gc.collect()
        assert ref() is None


def test_await_a_call_and_cancelling_the_task_stops_it(tmp_path: Path) -> None:
    """``await ex.submit_call(...)`` is the awaitable form; cancelling the task stops it."""
    beats = tmp_path / "beats"

    async def main(ex: ProcessExecutor) -> None:
        assert await ex.submit_call(targets.double, 4) == 8
        task = asyncio.ensure_future(_await(ex.submit_call(targets.heartbeat, str(beats))))
        worker = await asyncio.to_thread(_line, beats, "worker")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(assert_dies, worker)

    with ProcessExecutor(2) as ex:
        asyncio.run(main(ex))


async def _await(future: CallFuture[Any]) -> Any:
    return await future


def test_the_errors_of_calls_survive_pickling() -> None:
    """A Dask worker sends them to the client pickled."""
    lost = CallLost("gone", pid=7, returncode=-9, stderr="tail")
    again = pickle.loads(pickle.dumps(lost))
    assert (str(again), again.pid, again.returncode, again.stderr) == (str(lost), 7, -9, "tail")
    timeout = pickle.loads(pickle.dumps(CallTimeout(1.5)))
    assert timeout.timeout == 1.5 and str(timeout) == str(CallTimeout(1.5))
    init = pickle.loads(pickle.dumps(InitializerError("Traceback\nValueError: x\n")))
    assert init.traceback == "Traceback\nValueError: x\n" and "ValueError: x" in str(init)


def test_a_calls_stderr_shows_as_usual_and_a_crash_quotes_its_end(tmp_path: Path) -> None:
    script = tmp_path / "printer.py"
    script.write_text(
        "import os, sys\nfrom procexec import CallLost, ProcessExecutor\n"
        "def speak_and_die():\n"
        "    print('last words', file=sys.stderr, flush=True)\n"
        "    os._exit(7)\n"
        "if __name__ == '__main__':\n"
        "    with ProcessExecutor(1) as ex:\n"
        "        try:\n            ex.submit_call(speak_and_die).result(timeout=60)\n"
        "        except CallLost as exc:\n            print('tail:', exc.stderr.strip())\n"
    )
    result = _run(script)
    assert "last words" in result.stderr  # the worker's stderr is this process's
    assert result.stdout.strip() == "tail: last words", result.stderr


def test_a_dropped_future_frees_its_result_without_the_garbage_collector() -> None:
    # The future refers to its job for its figures; a job that still referred to its
    # future once settled made a cycle, and the result lived on until a full collection.
    import gc
    import weakref

    gc.disable()
    try:
        with ProcessExecutor(1) as ex:
            future = ex.submit_call(set, [1, 2])
            result = future.result(timeout=60)
            assert future.duration is not None  # the future still knows its call's figures
            ref = weakref.ref(result)
            del result, future
            _wait_until(lambda: ref() is None, timeout=10)
    finally:
        gc.enable()
