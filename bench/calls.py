"""procexec's Python calls against the pools people use: ``python -m bench.calls``.

``python -m bench.calls [--quick] [--rounds N] [--workloads mixed tiny ...]``
``python -m bench.calls --ab BEFORE_SRC AFTER_SRC [--rounds N] [--workloads ...]`` (procexec
of two source trees, alternating: a change's before and after); ``--save FILE`` keeps the
samples, ``--tables-from FILE`` prints their tables again

Workloads (issue 30), N = the CPU count:

- ``mixed``: 40 commands (``python -S -c`` burning 0.2 s of CPU) and 40 calls (burning
  0.2 s), interleaved, ``max_jobs=N``; against A, ``ThreadPoolExecutor(N)`` +
  ``subprocess.run`` beside ``loky.get_reusable_executor(N)`` (two budgets), and B, the
  same with one ``threading.Semaphore(N)`` held by every item. Each item stamps its start
  and end: peak concurrency, wall, mean item time;
- ``tiny``: 10,000 calls of an identity function, submitted one by one, then collected;
  against loky's and CPython's (spawn) ``ProcessPoolExecutor(N)``;
- ``map``: ``map_calls`` over 100,000 items, chunksize 100, against their ``map``;
- ``lazy``: ``map_calls(buffersize=64)`` over an endless generator: the first result, the
  parent's resident memory then and over the 100,000 results that follow, and the Python
  heap it still holds (tracemalloc) after 100,000 more;
- ``cold``: construction to the first result (procexec, loky, CPython spawn, pebble), and
  procexec with ``prestart`` once its workers wait (that wait untimed);
- ``stop``: ``cancel()`` of a running call (busy, writing a line every 0.2 ms) to its last
  line, 50 times: procexec and pebble (loky and CPython's pool cannot stop a running call);
- ``recover``: a worker SIGKILLed under a call, the next call queued: to its result,
  against procexec's own cold start (an executor made, its first call's result).

Every sample runs in a fresh interpreter (``python -m bench.callpeers``), the contenders
in turn, their order rotating each round; pools are warm before the clock except in
``cold``. Prints the medians, then each target of the issue with its ratio: met or not.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.callpeers import SAMPLES, contenders
from bench.callstarts import HAS_PEBBLE, N
from bench.callwork import BEAT
from bench.contenders import bench_env
from bench.fresh import in_fresh_interpreter

#: Total stops and recoveries measured per contender, spread over the rounds.
STOPS, RECOVERS = 50, 30
Figures = dict[str, dict[str, list[dict[str, Any]]]]  # workload -> contender -> samples
ROOT = Path(__file__).resolve().parent.parent


def sample(
    workload: str, contender: str, quick: bool, repeat: int, src: Path | None = None
) -> dict[str, Any]:
    """One sample in a fresh interpreter (with ``src``: procexec from that source tree)."""
    args = ["bench.callpeers", workload, contender, "--repeat", str(repeat)]
    env = bench_env()
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    figures: dict[str, Any] = json.loads(in_fresh_interpreter(args + ["--quick"] * quick, env))
    return figures


def _repeat(workload: str, rounds: int, quick: bool) -> int:
    """How many stops or recoveries one sample measures (the totals spread over rounds)."""
    total = {"stop": 5 if quick else STOPS, "recover": 3 if quick else RECOVERS}
    return math.ceil(total.get(workload, 1) / rounds)


def measure(workloads: list[str], rounds: int, quick: bool) -> Figures:
    """Every contender of every workload, ``rounds`` times, in rotating order."""
    figures: Figures = {}
    for number in range(rounds):
        for workload in workloads:
            names = contenders(workload)
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                got = sample(workload, name, quick, _repeat(workload, rounds, quick))
                figures.setdefault(workload, {}).setdefault(name, []).append(got)
                print(f"  round {number + 1} {workload:7} {name:18} {got}", file=sys.stderr)
    return figures


def median(samples: list[dict[str, Any]], key: str) -> float:
    """The median of ``key`` over the samples (lists of values pooled)."""
    values: list[float] = []
    for each in samples:
        value = each[key]
        values += value if isinstance(value, list) else [value]
    return statistics.median(values)


def tables(figures: Figures) -> str:
    """The medians of each workload, one Markdown table each."""
    out = []
    columns = {
        "mixed": ("wall", "item", "slots_used", "parent_cpu"),
        "tiny": ("wall",),
        "map": ("wall",),
        "lazy": ("first", "rss_first", "rss_after", "heap_held"),
        "cold": ("first",),
        "stop": ("stops",),
        "recover": ("recover", "cold"),
    }
    for workload, by_name in figures.items():
        keys = [k for k in columns[workload] if any(k in s for v in by_name.values() for s in v)]
        heads = [f"median {k}" for k in keys] + (["max peak"] if workload == "mixed" else [])
        out.append(f"| {workload} | " + " | ".join(heads) + " | samples |")
        out.append("|---" * (len(heads) + 2) + "|")
        for name, samples in by_name.items():
            cells = [_cell(k, median(samples, k)) if k in samples[0] else "" for k in keys]
            if workload == "mixed":
                cells.append(str(max(s["peak"] for s in samples)))
            count = sum(len(s[keys[0]]) if isinstance(s[keys[0]], list) else 1 for s in samples)
            out.append(f"| {name} | " + " | ".join(cells) + f" | {count} |")
        out.append("")
    return "\n".join(out)


def _cell(key: str, value: float) -> str:
    if key == "slots_used":
        return f"{value:.1%}"
    if key.startswith(("rss", "heap")):
        return f"{value / 2**20:+.2f} MiB"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"


Target = tuple[str, str, float, float]  # what, the figures, the ratio or value, its limit


def targets(figures: Figures) -> list[Target]:
    """Each target of the issue whose workload was run, with its figure and limit."""
    found: list[Target] = []
    for workload, check in CHECKS.items():
        if workload in figures:
            found += check(figures[workload])
    return found


def _paired(
    what: str,
    ours: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
    key: str,
    *,
    limit: float,
    name: str,
    their_key: str | None = None,
) -> Target:
    """``ours / theirs`` on ``key``, as the median over the rounds of each round's ratio:
    a round's samples run within a minute or two, so the load of a shared machine drifts
    less within a round than across the run. The medians of each side are shown too."""
    other = their_key or key
    ratios = [median([o], key) / median([t], other) for o, t in zip(ours, theirs, strict=True)]
    shown = (
        f"{_cell('', median(ours, key))} / {_cell('', median(theirs, other))} ({name}); "
        f"each round {min(ratios):.2f} to {max(ratios):.2f}"
    )
    return (what, shown, statistics.median(ratios), limit)


def _mixed(got: dict[str, list[dict[str, Any]]]) -> list[Target]:
    ours, a, b = got["procexec"], got["A: two budgets"], got["B: one Semaphore"]
    peak = max(s["peak"] for s in ours)
    return [
        ("mixed: peak concurrency ≤ N", f"{peak} (N = {N})", peak, N),
        _paired("mixed: wall ≤ 1.05 x B", ours, b, "wall", limit=1.05, name="B"),
        _paired("mixed: mean item ≤ 0.6 x A", ours, a, "item", limit=0.6, name="A"),
        *_mixed_without_load(ours, a, b),
    ]


def _mixed_without_load(
    ours: list[dict[str, Any]], a: list[dict[str, Any]], b: list[dict[str, Any]]
) -> list[Target]:
    """The mixed targets from the share of the slots' time the items ran, which other work
    on the machine does not change: at equal item times the walls are in the inverse ratio
    of those shares, and CPU-bound items on an otherwise idle machine take time in the
    ratio of how many run at once."""
    used, used_a, used_b = (median(side, "slots_used") for side in (ours, a, b))
    return [
        ("mixed, at equal item times: wall ≤ 1.05 x B (B's slot use / ours)",
         f"{used:.1%} / {used_b:.1%} of the slots' time", used_b / used, 1.05),
        ("mixed, on an idle machine: item ≤ 0.6 x A (items at once, ours / A's)",
         f"{used * N:.2f} / {used_a * N:.2f} at once", used / used_a, 0.6),
    ]  # fmt: skip


def _tiny(got: dict[str, list[dict[str, Any]]]) -> list[Target]:
    faster = [
        min(pair, key=lambda sample: float(sample["wall"]))
        for pair in zip(got["loky"], got["ProcessPool"], strict=True)
    ]
    what = "tiny: ≤ 1.1 x the faster peer"
    return [_paired(what, got["procexec"], faster, "wall", limit=1.1, name="the faster each round")]


def _map(got: dict[str, list[dict[str, Any]]]) -> list[Target]:
    return [
        _paired(f"map: ≤ 1.2 x {name}", got["procexec"], got[name], "wall", limit=1.2, name=name)
        for name in ("loky", "ProcessPool")
    ]


def _lazy(got: dict[str, list[dict[str, Any]]]) -> list[Target]:
    ours = got["procexec"]
    grown = max(s["rss_after"] for s in ours) / 2**20
    shown = (
        f"first result {_cell('', median(ours, 'first'))}; RSS "
        f"{_cell('rss', median(ours, 'rss_first'))} then, {_cell('rss', median(ours, 'rss_after'))}"
        f" after the next results (at most {grown:+.2f} MiB); Python heap held after as "
        f"many more: {_cell('heap', median(ours, 'heap_held'))}"
    )
    return [("lazy: the parent's RSS flat (grows < 1 MiB)", shown, grown, 1.0)]


def _cold(got: dict[str, list[dict[str, Any]]]) -> list[Target]:
    loky = got["loky"]
    return [
        _paired("cold: ≤ 1.0 x loky", got["procexec"], loky, "first", limit=1.0, name="loky"),
        _paired("cold, prestart: ≤ 0.1 x loky", got["procexec prestart"], loky, "first",
                limit=0.1, name="loky"),
    ]  # fmt: skip


def _stop(got: dict[str, list[dict[str, Any]]]) -> list[Target]:
    ours = median(got["procexec"], "stops")
    shown = f"{_stop_figures(got['procexec'])} (a beat every {BEAT * 1000:g} ms)"
    if "pebble" in got:
        shown += f"; pebble {_stop_figures(got['pebble'])}"
    return [("stop: median ≤ 50 ms", shown, ours * 1000, 50.0)]


def _stop_figures(samples: list[dict[str, Any]]) -> str:
    """The median and the 90th percentile of the stops, in ms."""
    stops = sorted(s for each in samples for s in each["stops"])
    tenth = statistics.quantiles(stops, n=10)[-1] if len(stops) > 1 else stops[0]
    return f"median {statistics.median(stops) * 1000:.2f} ms, 90 % ≤ {tenth * 1000:.2f} ms"


def _recover(got: dict[str, list[dict[str, Any]]]) -> list[Target]:
    ours = got["procexec"]
    what = "recover: ≤ 1.2 x a cold start"
    return [_paired(what, ours, ours, "recover", limit=1.2, name="procexec cold", their_key="cold")]


CHECKS: dict[str, Callable[[dict[str, list[dict[str, Any]]]], list[Target]]] = {
    "mixed": _mixed,
    "tiny": _tiny,
    "map": _map,
    "lazy": _lazy,
    "cold": _cold,
    "stop": _stop,
    "recover": _recover,
}


def target_table(found: list[Target]) -> str:
    lines = ["| target | figures | ratio / value | met |", "|---|---|---|---|"]
    for what, shown, value, limit in found:
        lines.append(f"| {what} | {shown} | {value:.2f} | {'yes' if value <= limit else 'NO'} |")
    return "\n".join(lines)


#: The figures an A/B of two source trees compares, per workload.
AB_KEYS = {
    "mixed": ("wall", "slots_used"),
    "tiny": ("wall",),
    "map": ("wall",),
    "lazy": ("first", "rss_after"),
    "cold": ("first",),
    "stop": ("stops",),
    "recover": ("recover", "cold"),
}


def ab(trees: tuple[Path, Path], workloads: list[str], rounds: int, quick: bool) -> str:
    """procexec of two source trees (before, after), alternating round after round, each
    sample in a fresh interpreter: a Markdown table of medians and after / before."""
    runs: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
    for number in range(rounds):
        for workload in workloads:
            before, after = runs.setdefault(workload, ([], []))
            for side in (0, 1) if number % 2 == 0 else (1, 0):
                got = sample(workload, "procexec", quick, _repeat(workload, rounds, quick),
                             trees[side])  # fmt: skip
                (before, after)[side].append(got)
                print(f"  round {number + 1} {workload:7} {'ba'[side]} {got}", file=sys.stderr)
    lines = ["| workload | figure | before | after | after / before |", "|---|---|---|---|---|"]
    for workload, (before, after) in runs.items():
        for key in AB_KEYS[workload]:
            x, y = median(before, key), median(after, key)
            lines.append(
                f"| {workload} | {key} | {_cell(key, x)} | {_cell(key, y)} | {y / x:.2f}x |"
            )
    return "\n".join(lines)


def header(rounds: int) -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    names = ("loky", "pebble", "cloudpickle") if HAS_PEBBLE else ("loky", "cloudpickle")
    peers = ", ".join(f"{name} {version(name)}" for name in names)
    return (
        f"# procexec calls bench: {platform.platform()}, {N} CPUs, "
        f"Python {platform.python_version()}, {peers}; {rounds} round(s); load {load}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small workloads, one round")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 1)")
    parser.add_argument("--workloads", nargs="+", choices=list(SAMPLES), default=list(SAMPLES))
    parser.add_argument(
        "--ab",
        nargs=2,
        type=Path,
        metavar=("BEFORE_SRC", "AFTER_SRC"),
        help="compare procexec of two source trees (the src of a worktree each) instead",
    )
    parser.add_argument("--save", type=Path, help="also write every sample to this JSON file")
    parser.add_argument(
        "--tables-from", type=Path, metavar="JSON", help="print the tables of a --save file"
    )
    args = parser.parse_args(argv)
    if args.tables_from:
        figures = json.loads(args.tables_from.read_text())
        print(tables(figures))
        print(target_table(targets(figures)))
        return 0
    rounds = args.rounds or (1 if args.quick else 5)
    print(header(rounds))
    if args.ab:
        print(ab(tuple(args.ab), args.workloads, rounds, args.quick))
        return 0
    figures = measure(args.workloads, rounds, args.quick)
    if args.save:
        args.save.write_text(json.dumps(figures, indent=1))
    print(tables(figures))
    print(target_table(targets(figures)))
    if not HAS_PEBBLE:
        print("\nmissing: pebble (pip install -r bench/requirements.txt)")
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
