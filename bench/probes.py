"""The measurements behind "What is in the way" in docs/benchmarks.md.

``python -m bench.probes [cpu|latency|handoff|all] [--rounds N] [--quick]``

- ``cpu``: the storm workload (1000 x ``/bin/true``, j=2) with procexec, ThreadPool+run
  and the C floor, through ``bench.one``: wall seconds, the contender interpreter's own CPU,
  its children's CPU, and how busy the run kept the machine's cores
  ((own + children) / (wall x CPUs)). For xargs and the floor, "own" is only the Python
  that started them; their work shows as children's CPU.
- ``latency``: 200 x ``sleep 0.01`` one at a time (j=1), in ms per job, for a ladder of
  what an executor adds to a bare start: the C floor; a ``Popen`` + ``wait()`` loop; the
  same waiting for the exit on a pidfd in epoll and then reaping with ``wait4``; that loop
  on a second thread; with a ``Future`` per job that the first thread waits on; procexec.
  A job's 10 ms sleep is the same in every row: the differences are the cost of each step.
- ``handoff``: the storm workload (1000 x ``/bin/true``, j=2) for what any futures executor
  must do beyond starting and reaping: the C floor; two threads running ``Popen`` +
  ``wait()`` with nothing handed back; the same resolving a ``Future`` per job that the
  caller waits on, in order; ThreadPool+run; procexec. Wall seconds and the interpreter's
  own CPU seconds.

Every sample runs in a fresh interpreter, the variants' order alternating by round.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from bench.contenders import bench_env, build_floor
from procexec import ProcessExecutor

FLOOR = "C floor"
CPU_CONTENDERS = ("procexec", "ThreadPool+run", FLOOR)
LATENCY_FLOOR = "C floor (posix_spawn + wait)"
LATENCY_JOBS = 200


def _sleep_argv() -> list[str]:
    # An absolute path, so that no row pays for a PATH search the others skip.
    return [shutil.which("sleep") or "/bin/sleep", "0.01"]


def _popen_loop(argv: list[str], count: int) -> None:
    for _ in range(count):
        subprocess.Popen(argv).wait()


def _pidfd_loop(argv: list[str], count: int) -> None:
    for _ in range(count):
        _pidfd_wait(argv)


def _pidfd_wait(argv: list[str]) -> None:
    child = subprocess.Popen(argv)
    pidfd = os.pidfd_open(child.pid)
    with select.epoll() as poller:
        poller.register(pidfd, select.EPOLLIN)
        poller.poll()
        poller.unregister(pidfd)
    os.close(pidfd)
    os.wait4(child.pid, 0)
    child.returncode = 0  # reaped here: keep Popen.__del__ from looking for it


def _on_thread(argv: list[str], count: int, with_futures: bool) -> None:
    futures: list[Future[None]] = [Future() for _ in range(count)]

    def work() -> None:
        for future in futures:
            _pidfd_wait(argv)
            future.set_result(None)

    thread = threading.Thread(target=work)
    thread.start()
    if with_futures:
        for future in futures:
            future.result()
    thread.join()


def _procexec(argv: list[str], count: int) -> None:
    with ProcessExecutor(1) as ex:
        for future in [ex.submit(argv) for _ in range(count)]:
            future.result()


def _floor(argv: list[str], count: int) -> None:
    binary = build_floor()
    assert binary is not None
    subprocess.run([binary, "1", str(count), *argv], check=True)


LATENCY_VARIANTS: dict[str, Callable[[list[str], int], None]] = {
    LATENCY_FLOOR: _floor,
    "Popen + wait() loop": _popen_loop,
    "... waiting on a pidfd, then wait4": _pidfd_loop,
    "... on a second thread": lambda argv, n: _on_thread(argv, n, with_futures=False),
    "... + a Future per job the caller waits on": lambda argv, n: _on_thread(
        argv, n, with_futures=True
    ),
    "procexec (j=1)": _procexec,
}


STORM_ARGV = ("/bin/true", "x")
STORM_JOBS = 2


def _threads_popen_wait(count: int, with_futures: bool) -> None:
    """``STORM_JOBS`` threads take jobs from one counter and run ``Popen`` + ``wait()``;
    with futures, each job's Future is resolved and the caller waits on them in order."""
    futures: list[Future[int]] = [Future() for _ in range(count)]
    jobs = iter(futures)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                future = next(jobs, None)
            if future is None:
                return
            status = subprocess.Popen(STORM_ARGV).wait()
            if with_futures:
                future.set_result(status)

    threads = [threading.Thread(target=work) for _ in range(STORM_JOBS)]
    for thread in threads:
        thread.start()
    if with_futures:
        for future in futures:
            future.result()
    for thread in threads:
        thread.join()


def _threadpool_storm(count: int) -> None:
    with ThreadPoolExecutor(STORM_JOBS) as pool:
        for future in [pool.submit(subprocess.run, STORM_ARGV) for _ in range(count)]:
            future.result()


def _procexec_storm(count: int) -> None:
    with ProcessExecutor(STORM_JOBS) as ex:
        for future in [ex.submit(STORM_ARGV) for _ in range(count)]:
            future.result()


def _floor_storm(count: int) -> None:
    binary = build_floor()
    assert binary is not None
    subprocess.run([binary, str(STORM_JOBS), str(count), *STORM_ARGV], check=True)


HANDOFF_VARIANTS: dict[str, Callable[[int], None]] = {
    FLOOR: _floor_storm,
    "2 threads: Popen + wait(), nothing handed back": lambda n: _threads_popen_wait(n, False),
    "... + a Future per job the caller waits on": lambda n: _threads_popen_wait(n, True),
    "ThreadPool+run": _threadpool_storm,
    "procexec": _procexec_storm,
}


def handoff_sample(variant: str, count: int) -> dict[str, float]:
    """Wall and own CPU seconds of one run of ``variant``, in this interpreter."""
    HANDOFF_VARIANTS[variant](count // 10)  # warm up: imports, first thread starts
    cpu, start = time.process_time(), time.perf_counter()
    HANDOFF_VARIANTS[variant](count)
    return {"wall": time.perf_counter() - start, "own_cpu": time.process_time() - cpu}


def latency_sample(variant: str, count: int) -> float:
    """Milliseconds per job for one variant, in this interpreter."""
    argv = _sleep_argv()
    start = time.perf_counter()
    LATENCY_VARIANTS[variant](argv, count)
    return (time.perf_counter() - start) / count * 1e3


def _run_self(args: list[str]) -> str:
    argv = [sys.executable, "-m", *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=bench_env())
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def cpu_probe(rounds: int, quick: bool, has_floor: bool) -> str:
    """The storm workload's CPU split per contender, medians over ``rounds``."""
    names = [n for n in CPU_CONTENDERS if has_floor or n != FLOOR]
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            extra = ["--quick"] if quick else []
            samples[name].append(json.loads(_run_self(["bench.one", name, "storm", *extra])))
    cpus = os.cpu_count() or 1
    lines = [
        "| storm | wall s | own CPU s | children's CPU s | cores kept busy |",
        "|---|---|---|---|---|",
    ]
    for name, runs in samples.items():
        wall = statistics.median(r["wall"] for r in runs)
        own = statistics.median(r["own_cpu"] for r in runs)
        kids = statistics.median(r["cpu"] - r["own_cpu"] for r in runs)
        busy = statistics.median(r["cpu"] / (r["wall"] * cpus) for r in runs)
        lines.append(f"| {name} | {wall:.3f} | {own:.2f} | {kids:.2f} | {busy:.0%} |")
    return "\n".join(lines)


def handoff_probe(rounds: int, quick: bool, has_floor: bool) -> str:
    """Storm for each rung of the hand-off ladder: wall and own CPU, medians over ``rounds``."""
    count = 200 if quick else 1000
    names = [n for n in HANDOFF_VARIANTS if has_floor or n != FLOOR]
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            out = _run_self(["bench.probes", "--handoff-sample", name, str(count)])
            samples[name].append(json.loads(out))
    lines = [
        f"| {count} x /bin/true, j={STORM_JOBS} | wall s | own CPU s |",
        "|---|---|---|",
    ]
    for name, runs in samples.items():
        wall = statistics.median(r["wall"] for r in runs)
        own = statistics.median(r["own_cpu"] for r in runs)
        lines.append(f"| {name} | {wall:.3f} | {own:.2f} |")
    return "\n".join(lines)


def latency_probe(rounds: int, quick: bool, has_floor: bool) -> str:
    """Milliseconds per job for each rung of the ladder, medians over ``rounds``."""
    count = 50 if quick else LATENCY_JOBS
    names = [n for n in LATENCY_VARIANTS if has_floor or n != LATENCY_FLOOR]
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            out = _run_self(["bench.probes", "--sample", name, str(count)])
            samples[name].append(float(out))
    lines = [
        f"| {count} x sleep 0.01, j=1 | ms per job | added by this step |",
        "|---|---|---|",
    ]
    previous = None
    for name in names:
        ms = statistics.median(samples[name])
        step = f"{ms - previous:+.3f}" if previous is not None else ""
        lines.append(f"| {name} | {ms:.3f} | {step} |")
        previous = ms
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probes", description=__doc__)
    parser.add_argument(
        "probe", nargs="?", default="all", choices=("cpu", "latency", "handoff", "all")
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 1)")
    parser.add_argument("--quick", action="store_true", help="small workloads, one round")
    parser.add_argument("--sample", nargs=2, metavar=("VARIANT", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--handoff-sample", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sample:
        print(latency_sample(args.sample[0], int(args.sample[1])))
        return 0
    if args.handoff_sample:
        print(json.dumps(handoff_sample(args.handoff_sample[0], int(args.handoff_sample[1]))))
        return 0
    rounds = args.rounds or (1 if args.quick else 5)
    has_floor = build_floor() is not None
    if args.probe in ("cpu", "all"):
        print(cpu_probe(rounds, args.quick, has_floor), end="\n\n")
    if args.probe in ("latency", "all"):
        print(latency_probe(rounds, args.quick, has_floor), end="\n\n")
    if args.probe in ("handoff", "all"):
        print(handoff_probe(rounds, args.quick, has_floor))
    if not has_floor:
        print("missing: C floor: no C compiler (cc) to build bench/floor.c")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
