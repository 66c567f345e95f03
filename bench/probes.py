"""The measurements behind "What is in the way" in docs/benchmarks-log.md.

``python -m bench.probes [cpu|latency|handoff|bytecodes|all] [--rounds N] [--quick]``

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
  must do beyond starting and reaping: the C floor; one event loop (``Popen``, pidfds in
  ``poll()``) on a new thread, nothing handed back; the same loop in the caller's own
  thread, busy with the interpreter's imports just before; that loop on a new thread
  resolving a ``Future`` per job that the caller waits on, in order; two threads running
  ``Popen`` + ``wait()`` with nothing handed back; the same with a ``Future`` per job;
  ThreadPool+run; procexec. Wall seconds and the interpreter's own CPU seconds.
- ``bytecodes``: the storm workload with procexec and ThreadPool+run, counting the Python
  bytecode instructions executed per job (``bench/bytecodes.py``), by the code that owns
  them and in the caller's thread. The counts barely move from run to run, so one round.

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
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Literal

from bench.bytecodes import OWNER_NAMES, count_bytecodes
from bench.contenders import Workload, build_floor, contenders
from bench.fresh import in_fresh_interpreter
from bench.one import load_named, measure
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


def _run_on_threads(work: Callable[[], None], threads: int, wait_for: list[Future[Any]]) -> None:
    """Run ``work`` on ``threads`` new threads, wait on ``wait_for`` in order in this one,
    then join the threads."""
    started = [threading.Thread(target=work) for _ in range(threads)]
    for thread in started:
        thread.start()
    for future in wait_for:
        future.result()
    for thread in started:
        thread.join()


def _on_thread(argv: list[str], count: int, with_futures: bool) -> None:
    futures: list[Future[None]] = [Future() for _ in range(count)]

    def work() -> None:
        for future in futures:
            _pidfd_wait(argv)
            future.set_result(None)

    _run_on_threads(work, 1, futures if with_futures else [])


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


def _threads_popen_wait(w: Workload, with_futures: bool) -> None:
    """``w.jobs`` threads take ``w.argv`` jobs from one counter and run ``Popen`` +
    ``wait()``; with futures, each job's Future is resolved and the caller waits on them
    in order."""
    futures: list[Future[int]] = [Future() for _ in range(w.count)]
    jobs = iter(futures)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                future = next(jobs, None)
            if future is None:
                return
            status = subprocess.Popen(w.argv).wait()
            if with_futures:
                future.set_result(status)

    _run_on_threads(work, w.jobs, futures if with_futures else [])


def _one_loop(w: Workload, thread: Literal["new", "caller", "futures"]) -> None:
    """One loop keeps ``w.jobs`` children running: ``Popen``, each child's pidfd in
    ``poll()``, then the reap. ``thread``: ``"new"`` runs it on a new thread and hands
    nothing back; ``"caller"`` runs it in the caller's own thread (in the probe, the
    interpreter's main thread, busy with its imports just before); ``"futures"`` runs it on
    a new thread that resolves a Future per job, which the caller waits on in order."""
    futures: list[Future[int]] = [Future() for _ in range(w.count)]

    def loop() -> None:
        poller = select.poll()
        running: dict[int, tuple[subprocess.Popen[bytes], Future[int]]] = {}
        waiting = iter(futures)
        while True:
            while len(running) < w.jobs and (future := next(waiting, None)) is not None:
                child = subprocess.Popen(w.argv)
                pidfd = os.pidfd_open(child.pid)
                running[pidfd] = (child, future)
                poller.register(pidfd, select.POLLIN)
            if not running:
                return
            for pidfd, _ in poller.poll():
                child, future = running.pop(pidfd)
                poller.unregister(pidfd)
                os.close(pidfd)
                status = child.wait()
                if thread == "futures":
                    future.set_result(status)

    if thread == "caller":
        loop()
    else:
        _run_on_threads(loop, 1, futures if thread == "futures" else [])


#: The hand-off ladder's rungs that are not bench contenders (those run through bench.one).
BARE_THREADS: dict[str, Callable[[Workload], None]] = {
    "1 thread: one loop of Popen + pidfds in poll(), nothing handed back": (
        lambda w: _one_loop(w, "new")
    ),
    "... the same loop in the caller's thread, busy with imports just before": (
        lambda w: _one_loop(w, "caller")
    ),
    "... on 1 thread + a Future per job the caller waits on": (lambda w: _one_loop(w, "futures")),
    "2 threads: Popen + wait(), nothing handed back": lambda w: _threads_popen_wait(w, False),
    "... + a Future per job the caller waits on": lambda w: _threads_popen_wait(w, True),
}
HANDOFF_LADDER = (FLOOR, *BARE_THREADS, "ThreadPool+run", "procexec")
BYTECODE_CONTENDERS = ("ThreadPool+run", "procexec")


def latency_sample(variant: str, count: int) -> float:
    """Milliseconds per job for one variant, in this interpreter."""
    argv = _sleep_argv()
    start = time.perf_counter()
    LATENCY_VARIANTS[variant](argv, count)
    return (time.perf_counter() - start) / count * 1e3


def bytecodes_sample(name: str, quick: bool) -> dict[str, float]:
    """Bytecode instructions per storm job for one contender, in this interpreter: per
    owner, ``total``, and ``caller`` (those run in the calling thread)."""
    storm = load_named("storm", quick)
    runner = contenders()[name]
    assert runner is not None
    total, caller = count_bytecodes(lambda: runner(storm))
    per_job = {owner: total[owner] / storm.count for owner in OWNER_NAMES}
    per_job["total"] = sum(total.values()) / storm.count
    per_job["caller"] = sum(caller.values()) / storm.count
    return per_job


def _samples(
    names: list[str], rounds: int, command: Callable[[str], list[str]]
) -> dict[str, list[Any]]:
    """Each name's JSON output of ``python -m COMMAND(name)`` over ``rounds``, every sample
    in a fresh interpreter, the names' order rotating by round."""
    samples: dict[str, list[Any]] = {name: [] for name in names}
    for round_number in range(rounds):
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(json.loads(in_fresh_interpreter(command(name))))
    return samples


def cpu_probe(rounds: int, quick: bool, has_floor: bool) -> str:
    """The storm workload's CPU split per contender, medians over ``rounds``."""
    names = [n for n in CPU_CONTENDERS if has_floor or n != FLOOR]
    extra = ["--quick"] if quick else []
    samples = _samples(names, rounds, lambda name: ["bench.one", name, "storm", *extra])
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
    names = [n for n in HANDOFF_LADDER if has_floor or n != FLOOR]
    extra = ["--quick"] if quick else []

    def command(name: str) -> list[str]:
        if name in BARE_THREADS:
            return ["bench.probes", "--handoff-sample", name, *extra]
        return ["bench.one", name, "storm", *extra]

    samples = _samples(names, rounds, command)
    storm = load_named("storm", quick)
    lines = [
        f"| {storm.count} x /bin/true, j={storm.jobs} | wall s | own CPU s |",
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
    samples = _samples(names, rounds, lambda name: ["bench.probes", "--sample", name, str(count)])
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


def bytecodes_probe(quick: bool) -> str:
    """Bytecode instructions per storm job, by owner, one sample per contender."""
    names = list(BYTECODE_CONTENDERS)
    extra = ["--quick"] if quick else []
    samples = _samples(names, 1, lambda name: ["bench.probes", "--bytecodes-sample", name, *extra])
    storm = load_named("storm", quick)
    lines = [
        f"| {storm.count} x /bin/true, j={storm.jobs}: per job | "
        + " | ".join(OWNER_NAMES)
        + " | total | of it in the caller's thread |",
        "|---" * (len(OWNER_NAMES) + 3) + "|",
    ]
    for name in names:
        counts = samples[name][0]
        cells = [f"{counts[key]:.0f}" for key in [*OWNER_NAMES, "total", "caller"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.probes", description=__doc__)
    parser.add_argument(
        "probe",
        nargs="?",
        default="all",
        choices=("cpu", "latency", "handoff", "bytecodes", "all"),
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 1)")
    parser.add_argument("--quick", action="store_true", help="small workloads, one round")
    parser.add_argument("--sample", nargs=2, metavar=("VARIANT", "COUNT"), help=argparse.SUPPRESS)
    parser.add_argument("--handoff-sample", help=argparse.SUPPRESS)
    parser.add_argument("--bytecodes-sample", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sample:
        print(latency_sample(args.sample[0], int(args.sample[1])))
        return 0
    if args.handoff_sample:
        storm = load_named("storm", args.quick)
        print(json.dumps(measure(BARE_THREADS[args.handoff_sample], storm)))
        return 0
    if args.bytecodes_sample:
        print(json.dumps(bytecodes_sample(args.bytecodes_sample, args.quick)))
        return 0
    rounds = args.rounds or (1 if args.quick else 5)
    has_floor = build_floor() is not None
    if args.probe in ("cpu", "all"):
        print(cpu_probe(rounds, args.quick, has_floor), end="\n\n")
    if args.probe in ("latency", "all"):
        print(latency_probe(rounds, args.quick, has_floor), end="\n\n")
    if args.probe in ("handoff", "all"):
        print(handoff_probe(rounds, args.quick, has_floor), end="\n\n")
    if args.probe in ("bytecodes", "all"):
        print(bytecodes_probe(args.quick))
    if not has_floor:
        print("missing: C floor: no C compiler (cc) to build bench/floor.c")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
