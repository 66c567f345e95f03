"""The samples of ``python -m bench.calls`` about workers starting and stopping: ``cold``,
``stop`` and ``recover`` (run by ``bench.callpeers`` in a fresh interpreter).

pebble is optional (``bench/requirements.txt``): :data:`HAS_PEBBLE` says whether it is here.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import loky

from bench.callwork import (
    announce_and_sleep,
    heartbeat,
    identity,
    last_beat_after_quiet,
    wait_for_file,
)
from procexec import CallLost, ProcessExecutor, WorkerOptions

N = os.cpu_count() or 2
HAS_PEBBLE = importlib.util.find_spec("pebble") is not None
Submit = Callable[..., Future[Any]]


def spawn_pool(workers: int) -> ProcessPoolExecutor:
    """CPython's pool with the spawn context (fresh interpreters, as loky and procexec)."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def pebble_pool(workers: int) -> Any:
    """pebble's pool (its default context: fork here); Any: pebble may be missing when
    the types are checked."""
    import pebble

    return pebble.ProcessPool(workers)


def pebble_submit(pool: Any) -> Submit:
    """``submit(fn, *args)`` on a pebble pool."""
    return lambda fn, *args: pool.schedule(fn, args=args)


def close_pebble(pool: Any) -> None:
    """Stop a pebble pool's workers and wait for them."""
    pool.stop()
    pool.join()


# ----------------------------------------------------------------------------- cold
def _cold(make: Callable[[], Any], submit_of: Callable[[Any], Submit]) -> dict[str, Any]:
    """From making the pool to the result of its first call."""
    start = time.perf_counter()
    pool = make()
    assert submit_of(pool)(identity, 1).result() == 1
    first = time.perf_counter() - start
    if hasattr(pool, "shutdown"):
        pool.shutdown()
    else:
        close_pebble(pool)
    return {"first": first}


def cold_procexec(_: bool, __: int) -> dict[str, Any]:
    return _cold(lambda: ProcessExecutor(N), lambda ex: ex.submit_call)


def cold_loky(_: bool, __: int) -> dict[str, Any]:
    return _cold(lambda: loky.get_reusable_executor(max_workers=N), lambda pool: pool.submit)


def cold_cpython(_: bool, __: int) -> dict[str, Any]:
    return _cold(lambda: spawn_pool(N), lambda pool: pool.submit)


def cold_pebble(_: bool, __: int) -> dict[str, Any]:
    return _cold(lambda: pebble_pool(N), pebble_submit)


def cold_prestart(_: bool, __: int) -> dict[str, Any]:
    """Construction with ``prestart=N``, then (untimed) until its workers wait for calls,
    then the first call: the construction and the call are timed."""
    start = time.perf_counter()
    ex = ProcessExecutor(N, workers=WorkerOptions(prestart=N))
    made = time.perf_counter() - start
    _wait_for_idle_workers(N)
    start = time.perf_counter()
    assert ex.submit_call(identity, 1).result() == 1
    first = made + time.perf_counter() - start
    ex.shutdown()
    return {"first": first}


def _wait_for_idle_workers(count: int, timeout: float = 60.0) -> None:
    """Until ``count`` worker children of this process block reading their tasks pipe."""
    deadline = time.monotonic() + timeout
    while len(_idle_workers()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} workers were not idle within {timeout} s")
        time.sleep(0.01)


def _idle_workers() -> list[int]:
    """procexec workers, children of this process, whose main thread waits on a pipe."""
    me, found = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            wchan = Path(entry.path, "wchan").read_text()
            command = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == me and b"_worker_main" in command and wchan.endswith("pipe_read"):
            found.append(int(entry.name))
    return found


# ----------------------------------------------------------------------------- stop
def _stops(submit: Callable[[str], Future[Any]], repeat: int) -> dict[str, Any]:
    """``cancel()`` of a running heartbeat call, ``repeat`` times: from the cancel to the
    last beat written (the worker is replaced between stops, untimed)."""
    latencies = []
    with tempfile.TemporaryDirectory(prefix="bench-stop-") as tmp:
        for i in range(repeat):
            path = Path(tmp, f"beat-{i}")
            future = submit(str(path))
            wait_for_file(path)
            time.sleep(0.02 + 0.01 * (i % 10))  # spread over any polling period
            cancelled_at = time.monotonic()
            assert future.cancel(), "cancel() of a running call returned False"
            latencies.append(max(0.0, last_beat_after_quiet(path) - cancelled_at))
    return {"stops": latencies}


def stop_procexec(_: bool, repeat: int) -> dict[str, Any]:
    with ProcessExecutor(1) as ex:
        return _stops(lambda path: ex.submit_call(heartbeat, path), repeat)


def stop_pebble(_: bool, repeat: int) -> dict[str, Any]:
    pool = pebble_pool(1)
    try:
        return _stops(lambda path: pebble_submit(pool)(heartbeat, path), repeat)
    finally:
        close_pebble(pool)


# -------------------------------------------------------------------------- recover
def _kill_under_call(submit: Submit, folder: str, i: int) -> tuple[Future[Any], Future[Any], float]:
    """A call running in a one-worker pool, the next queued behind it, then the worker
    SIGKILLed: the two calls and the instant of the kill."""
    path = Path(folder, f"pid-{i}")
    doomed = submit(announce_and_sleep, str(path))
    pid = int(wait_for_file(path))
    following = submit(identity, 2)
    killed_at = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    return doomed, following, killed_at


def recover_procexec(_: bool, repeat: int) -> dict[str, Any]:
    """Each time: a cold start (an executor made, its first call's result), then in it a
    worker killed under its call: to the next call's result."""
    cold_procexec(False, 1)  # imports and first-use costs, untimed
    colds, recovers = [], []
    with tempfile.TemporaryDirectory(prefix="bench-recover-") as tmp:
        for i in range(repeat):
            start = time.perf_counter()
            ex = ProcessExecutor(1)
            assert ex.submit_call(identity, 1).result() == 1
            colds.append(time.perf_counter() - start)
            doomed, following, killed_at = _kill_under_call(ex.submit_call, tmp, i)
            assert following.result() == 2
            recovers.append(time.perf_counter() - killed_at)
            assert isinstance(doomed.exception(), CallLost)
            ex.shutdown()
    return {"recover": recovers, "cold": colds}


def recover_loky(_: bool, repeat: int) -> dict[str, Any]:
    """loky: both calls fail with the executor; ``get_reusable_executor()`` makes a new
    one, where the next call is submitted again."""
    recovers = []
    with tempfile.TemporaryDirectory(prefix="bench-recover-") as tmp:
        for i in range(repeat):
            pool = loky.get_reusable_executor(max_workers=1)
            assert pool.submit(identity, 1).result() == 1
            doomed, following, killed_at = _kill_under_call(pool.submit, tmp, i)
            assert following.exception() is not None and doomed.exception() is not None
            fresh = loky.get_reusable_executor(max_workers=1)
            assert fresh.submit(identity, 2).result() == 2
            recovers.append(time.perf_counter() - killed_at)
    return {"recover": recovers}


def recover_pebble(_: bool, repeat: int) -> dict[str, Any]:
    """pebble: only the killed call fails; the pool starts a worker for the next."""
    recovers = []
    pool = pebble_pool(1)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-recover-") as tmp:
            for i in range(repeat):
                assert pebble_submit(pool)(identity, 1).result() == 1
                doomed, following, killed_at = _kill_under_call(pebble_submit(pool), tmp, i)
                assert following.result() == 2
                recovers.append(time.perf_counter() - killed_at)
                assert doomed.exception() is not None
    finally:
        close_pebble(pool)
    return {"recover": recovers}
