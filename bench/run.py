"""procexec against its peers: ``python -m bench`` (``--quick`` for a run under a minute).

Each workload runs with each contender in this one process tree, each sample in a fresh
interpreter (``bench.one``), the contenders' order rotating from round to round. The table
gives median wall seconds and the ratio procexec / contender (below 1.0: procexec is
faster). Missing contenders are listed, not dropped. Wall times on a shared 2-core machine
are noisy: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bench.contenders import NO_CAPTURE, Runner, Workload, contenders, missing
from bench.fresh import in_fresh_interpreter
from procexec import ProcessExecutor

MIB = 1024 * 1024


def workloads(quick: bool) -> list[Workload]:
    """The workloads of the issue; smaller ones with ``quick``."""
    if quick:
        return [
            Workload("storm", ("/bin/true", "x"), 200, 2),
            Workload("short", ("sleep", "0.01"), 50, 2),
            Workload("wide", ("sleep", "0.5"), 64, 64),
            Workload("out", ("head", "-c", str(16 * MIB), "/dev/zero"), 4, 2, capture=True),
        ]
    return [
        Workload("storm", ("/bin/true", "x"), 1000, 2),
        Workload("short", ("sleep", "0.01"), 200, 2),
        Workload("wide", ("sleep", "1"), 256, 256),
        Workload("out", ("head", "-c", str(64 * MIB), "/dev/zero"), 8, 2, capture=True),
    ]


def measure(
    runners: dict[str, Runner | None], loads: list[Workload], rounds: int, quick: bool
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(workload, contender) -> [(wall seconds, CPU seconds of the tree)] over the rounds.

    Each sample runs in a fresh interpreter (``bench.one``), a child of this one.
    """
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    active = {n: r for n, r in runners.items() if r is not None}
    names = list(active)
    for round_number in range(rounds):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for load in loads:
            for name in order:
                if load.capture and name in NO_CAPTURE:
                    continue
                wall, used = _sample(name, load, quick)
                samples.setdefault((load.name, name), []).append((wall, used))
                print(
                    f"  round {round_number + 1} {load.name:6} {name:20} {wall:7.3f}s",
                    file=sys.stderr,
                )
    return samples


def _sample(name: str, load: Workload, quick: bool) -> tuple[float, float]:
    args = ["bench.one", name, load.name, *(["--quick"] if quick else [])]
    sample = json.loads(in_fresh_interpreter(args))
    return float(sample["wall"]), float(sample["cpu"])


def table(samples: dict[tuple[str, str], list[tuple[float, float]]], loads: list[Workload]) -> str:
    """Markdown: median wall seconds, tree CPU seconds and the procexec ratio."""
    lines = [
        "| workload | contender | median wall s | CPU s (tree) | procexec / contender |",
        "|---|---|---|---|---|",
    ]
    for load in loads:
        ours = statistics.median(w for w, _ in samples[(load.name, "procexec")])
        for (name_load, name), values in samples.items():
            if name_load != load.name:
                continue
            wall = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            lines.append(f"| {load.name} | {name} | {wall:.3f} | {cpu:.2f} | {ours / wall:.2f} |")
    return "\n".join(lines)


def queue_costs(count: int) -> str:
    """Per-job submit time and memory while ``count`` jobs wait, procexec vs ThreadPool."""
    gate_r, gate_w = os.pipe()
    ex = ProcessExecutor(1)
    blocker = ex.submit(["cat"], stdin=gate_r, stdout=subprocess.DEVNULL)
    blocker.wait_started()
    ours_time, ours_mem = _submit_costs(lambda: ex.submit(["/bin/true"]), count)
    ex.shutdown(wait=False, cancel_futures=True)
    os.close(gate_w)
    ex.shutdown()
    os.close(gate_r)
    release = threading.Event()
    pool = ThreadPoolExecutor(1)
    pool.submit(release.wait)
    theirs_time, theirs_mem = _submit_costs(lambda: pool.submit(int), count)
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    pool.shutdown()
    return (
        f"| queue ({count} pending) | submit µs/job | bytes/pending job (tracemalloc) |\n"
        "|---|---|---|\n"
        f"| procexec | {ours_time * 1e6:.2f} | {ours_mem:.0f} |\n"
        f"| ThreadPoolExecutor | {theirs_time * 1e6:.2f} | {theirs_mem:.0f} |\n"
        f"| ratio | {ours_time / theirs_time:.2f} | {ours_mem / theirs_mem:.2f} |"
    )


def _submit_costs(submit: Callable[[], Future[Any]], count: int) -> tuple[float, float]:
    kept: list[Future[Any]] = []
    start = time.perf_counter()
    for _ in range(count):
        kept.append(submit())
    per_call = (time.perf_counter() - start) / count
    for future in kept:
        future.cancel()
    kept.clear()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [submit() for _ in range(count)]
    per_job = (tracemalloc.get_traced_memory()[0] - before) / count
    tracemalloc.stop()
    for future in kept:
        future.cancel()
    return per_call, per_job


#: VmHWM, not ru_maxrss: Linux carries the pre-exec high-water mark into ru_maxrss.
_HWM = "int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]) * 1024"
_RSS_CHILD = """
import sys
from procexec import ProcessExecutor
size, count = int(sys.argv[1]), int(sys.argv[2])
with ProcessExecutor(2) as ex:
    command = ["head", "-c", str(size), "/dev/zero"]
    futures = [ex.run(command, capture_output=True) for _ in range(count)]
    results = [f.result() for f in futures]
captured = sum(len(r.stdout) for r in results)
print(HWM, captured)
""".replace("HWM", _HWM)


def out_peak_rss(load: Workload) -> str:
    """Peak RSS of a fresh interpreter that captures the ``out`` workload with procexec."""
    size = int(load.argv[2])
    baseline = subprocess.run(
        [sys.executable, "-c", f"import procexec; print({_HWM})"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = subprocess.run(
        [sys.executable, "-c", _RSS_CHILD, str(size), str(load.count)],
        capture_output=True,
        text=True,
        check=True,
    )
    peak, captured = map(int, result.stdout.split())
    base = int(baseline.stdout)
    return (
        f"out: peak RSS {peak / MIB:.0f} MiB for {captured / MIB:.0f} MiB captured "
        f"(interpreter alone {base / MIB:.0f} MiB): "
        f"{(peak - base) / captured:.2f} x the bytes captured"
    )


def many_children(count: int, seconds: float) -> str:
    """``count`` children at once, each sleeping ``seconds``: do they all complete?"""
    start = time.perf_counter()
    with ProcessExecutor(count) as ex:
        statuses = [f.result() for f in [ex.submit(["sleep", str(seconds)]) for _ in range(count)]]
    wall = time.perf_counter() - start
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ok = sum(s == 0 for s in statuses)
    return (
        f"many: {ok}/{count} x sleep {seconds} at j={count} completed in {wall:.2f}s "
        f"(RLIMIT_NOFILE soft {soft}, hard {hard})"
    )


_LOW_LIMIT_CHILD = """
import resource, sys
from procexec import ProcessExecutor
count, seconds = int(sys.argv[1]), sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
with ProcessExecutor(count) as ex:
    futures = [ex.submit(["sleep", seconds]) for _ in range(count)]
    ok = sum(f.exception() is None and f.result() == 0 for f in futures)
print(ok, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def many_children_low_limit(count: int, seconds: float) -> str:
    """The same with the soft open-file limit lowered to 256: is it raised, or named?"""
    argv = [sys.executable, "-c", _LOW_LIMIT_CHILD, str(count), str(seconds)]
    result = subprocess.run(argv, capture_output=True, text=True, check=True)
    ok, soft = result.stdout.split()
    return (
        f"many, soft RLIMIT_NOFILE lowered to 256 first: {ok}/{count} completed; "
        f"soft limit then {soft}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workloads, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3, quick 1)")
    parser.add_argument(
        "--workloads",
        nargs="+",
        choices=[w.name for w in workloads(quick=False)],
        help="only these workloads, and none of the queue, RSS and 1,000-children checks",
    )
    parser.add_argument(
        "--contenders",
        nargs="+",
        metavar="NAME",
        help="only these contenders (procexec always runs: the ratios are against it)",
    )
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    loads = [w for w in workloads(args.quick) if not args.workloads or w.name in args.workloads]
    runners = contenders()
    if args.contenders:
        unknown = [name for name in args.contenders if name not in runners]
        if unknown:
            parser.error(f"unknown contender {unknown[0]!r}; choose from: {', '.join(runners)}")
        runners = {n: r for n, r in runners.items() if n in ("procexec", *args.contenders)}
    print(
        f"# procexec bench: {platform.platform()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {rounds} round(s)\n"
    )
    samples = measure(runners, loads, rounds, args.quick)
    print(table(samples, loads))
    if not args.workloads:
        print()
        print(queue_costs(10_000 if args.quick else 100_000))
        print()
        print(out_peak_rss(loads[-1]))
        print(many_children(100 if args.quick else 1000, 0.5 if args.quick else 2))
        print(many_children_low_limit(300 if args.quick else 1000, 0.5 if args.quick else 2))
    for name, why in sorted(missing.items()):
        if name in runners:
            print(f"missing: {name}: {why}")
    return 0
