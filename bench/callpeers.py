"""One sample of ``python -m bench.calls``, in a fresh interpreter:
``python -m bench.callpeers WORKLOAD CONTENDER [--quick] [--repeat K]``.

Prints the sample's figures as JSON (which figures depends on the workload). Pools are
warmed up (their workers started) before the clock starts, except where start-up is what
is measured (``cold``). The items are in ``bench.callwork``.
"""

from __future__ import annotations

import itertools
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import loky

from bench import callstarts as starts
from bench.callstarts import N, spawn_pool
from bench.callwork import burn, burn_command, identity, intervals, nap, peak_concurrency
from procexec import ProcessExecutor

Sample = Callable[[bool, int], dict[str, Any]]


def sizes(quick: bool) -> dict[str, Any]:
    """How big each workload is (``quick``: a smoke run)."""
    if quick:
        return {"mixed": (6, 0.1), "tiny": 1000, "map": 10_000, "lazy": 10_000}
    return {"mixed": (40, 0.2), "tiny": 10_000, "map": 100_000, "lazy": 100_000}


def warm(submit: Callable[..., Future[Any]], workers: int = N) -> None:
    """Start ``workers`` workers: as many naps at once, each holding one."""
    for future in [submit(nap, 0.2) for _ in range(workers)]:
        future.result()


# ---------------------------------------------------------------------------- mixed
def _mixed(
    run: Callable[[list[list[str]], list[tuple[float, str]]], None], quick: bool
) -> dict[str, Any]:
    """Commands and calls interleaved, each burning CPU and stamping a file."""
    count, seconds = sizes(quick)["mixed"]
    with tempfile.TemporaryDirectory(prefix="bench-mixed-") as tmp:
        folder = Path(tmp)
        commands = [burn_command(seconds, folder / f"command-{i}") for i in range(count)]
        calls = [(seconds, str(folder / f"call-{i}")) for i in range(count)]
        start, cpu = time.perf_counter(), _own_cpu()
        run(commands, calls)
        wall, cpu = time.perf_counter() - start, _own_cpu() - cpu
        spans = intervals(folder)
    assert len(spans) == 2 * count, f"{len(spans)} items stamped of {2 * count}"
    busy = sum(end - begin for begin, end in spans)
    return {
        "wall": wall,
        "peak": peak_concurrency(spans),
        "item": busy / len(spans),
        "slots_used": busy / (N * wall),  # the share of the N slots' time items ran
        "parent_cpu": cpu,
    }


def _own_cpu() -> float:
    """CPU seconds of this interpreter (its threads included, its children not)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def mixed_procexec(quick: bool, _: int) -> dict[str, Any]:
    with ProcessExecutor(N) as ex:
        warm(ex.submit_call)

        def run(commands: list[list[str]], calls: list[tuple[float, str]]) -> None:
            futures: list[Future[Any]] = []
            for argv, call in zip(commands, calls, strict=True):
                futures += [ex.submit(argv), ex.submit_call(burn, *call)]
            assert all(f.result() in (0, None) for f in futures)

        return _mixed(run, quick)


def _two_budgets(gate: threading.Semaphore | None, quick: bool) -> dict[str, Any]:
    """ThreadPoolExecutor(N) + subprocess.run beside loky's reusable executor(N); with
    ``gate``, one Semaphore(N) held by every item while it runs."""
    pool = loky.get_reusable_executor(max_workers=N)
    warm(pool.submit)
    held = gate if gate is not None else nullcontext()

    def command(argv: list[str]) -> None:
        with held:
            subprocess.run(argv, check=True)

    def call(seconds: float, stamp: str) -> None:
        with held:
            pool.submit(burn, seconds, stamp).result()

    with ThreadPoolExecutor(N) as threads, ThreadPoolExecutor(N) as callers:

        def run(commands: list[list[str]], calls: list[tuple[float, str]]) -> None:
            futures: list[Future[Any]] = []
            for argv, each in zip(commands, calls, strict=True):
                futures.append(threads.submit(command, argv))
                if gate is None:
                    futures.append(pool.submit(burn, *each))
                else:
                    futures.append(callers.submit(call, *each))
            wait(futures)
            for future in futures:
                future.result()

        return _mixed(run, quick)


def mixed_two_budgets(quick: bool, _: int) -> dict[str, Any]:
    return _two_budgets(None, quick)


def mixed_semaphore(quick: bool, _: int) -> dict[str, Any]:
    return _two_budgets(threading.Semaphore(N), quick)


# ----------------------------------------------------------------------- tiny, map
def _tiny(submit: Callable[..., Future[Any]], quick: bool) -> dict[str, Any]:
    count = sizes(quick)["tiny"]
    warm(submit)
    start = time.perf_counter()
    futures = [submit(identity, i) for i in range(count)]
    results = [f.result() for f in futures]
    wall = time.perf_counter() - start
    assert results == list(range(count))
    return {"wall": wall}


def tiny_procexec(quick: bool, _: int) -> dict[str, Any]:
    with ProcessExecutor(N) as ex:
        return _tiny(ex.submit_call, quick)


def tiny_loky(quick: bool, _: int) -> dict[str, Any]:
    with loky.ProcessPoolExecutor(N) as pool:
        return _tiny(pool.submit, quick)


def tiny_cpython(quick: bool, _: int) -> dict[str, Any]:
    with spawn_pool(N) as pool:
        return _tiny(pool.submit, quick)


def _map(
    submit: Callable[..., Future[Any]], mapper: Callable[..., Iterator[Any]], quick: bool
) -> dict[str, Any]:
    count = sizes(quick)["map"]
    warm(submit)
    start = time.perf_counter()
    results = list(mapper(identity, range(count), chunksize=100))
    wall = time.perf_counter() - start
    assert results == list(range(count))
    return {"wall": wall}


def map_procexec(quick: bool, _: int) -> dict[str, Any]:
    with ProcessExecutor(N) as ex:
        return _map(ex.submit_call, ex.map_calls, quick)


def map_loky(quick: bool, _: int) -> dict[str, Any]:
    with loky.ProcessPoolExecutor(N) as pool:
        return _map(pool.submit, pool.map, quick)


def map_cpython(quick: bool, _: int) -> dict[str, Any]:
    with spawn_pool(N) as pool:
        return _map(pool.submit, pool.map, quick)


def _rss() -> int:
    """This process's resident set, in bytes."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def lazy_procexec(quick: bool, _: int) -> dict[str, Any]:
    """``map_calls(buffersize=64)`` over an endless generator: the first result; the
    parent's resident memory then and after ``count`` results; and the Python heap still
    held (tracemalloc, garbage not yet collected included) after ``count`` more."""
    count = sizes(quick)["lazy"]
    with ProcessExecutor(N) as ex:
        warm(ex.submit_call)
        before = _rss()
        start = time.perf_counter()
        results = ex.map_calls(identity, itertools.count(), chunksize=100, buffersize=64)
        assert next(results) == 0
        first = time.perf_counter() - start
        at_first = _rss()
        _expect(results, range(1, count))
        after = _rss()
        tracemalloc.start()
        _expect(results, range(count, 2 * count))
        held = tracemalloc.get_traced_memory()[0]  # no gc.collect(): cycles count too
        tracemalloc.stop()
        results.close()  # type: ignore[attr-defined]  # map_calls' iterator has close()
    return {
        "first": first,
        "rss_first": at_first - before,
        "rss_after": after - before,
        "heap_held": held,
    }


def _expect(results: Iterator[Any], expected: range) -> None:
    """Take ``len(expected)`` results (``expected`` first: zip takes no result too many)."""
    for wanted, value in zip(expected, results, strict=False):
        assert value == wanted


SAMPLES: dict[str, dict[str, Sample]] = {
    "mixed": {
        "procexec": mixed_procexec,
        "A: two budgets": mixed_two_budgets,
        "B: one Semaphore": mixed_semaphore,
    },
    "tiny": {"procexec": tiny_procexec, "loky": tiny_loky, "ProcessPool": tiny_cpython},
    "map": {"procexec": map_procexec, "loky": map_loky, "ProcessPool": map_cpython},
    "lazy": {"procexec": lazy_procexec},
    "cold": {
        "procexec": starts.cold_procexec,
        "procexec prestart": starts.cold_prestart,
        "loky": starts.cold_loky,
        "ProcessPool": starts.cold_cpython,
        "pebble": starts.cold_pebble,
    },
    "stop": {"procexec": starts.stop_procexec, "pebble": starts.stop_pebble},
    "recover": {
        "procexec": starts.recover_procexec,
        "loky": starts.recover_loky,
        "pebble": starts.recover_pebble,
    },
}


def contenders(workload: str) -> list[str]:
    """The contenders of ``workload`` that can run here (pebble is optional)."""
    return [name for name in SAMPLES[workload] if name != "pebble" or starts.HAS_PEBBLE]


def main(argv: list[str]) -> int:
    workload, contender = argv[0], argv[1]
    repeat = int(argv[argv.index("--repeat") + 1]) if "--repeat" in argv else 1
    figures = SAMPLES[workload][contender]("--quick" in argv, repeat)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
