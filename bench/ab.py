"""A/B of procexec itself: two source trees, alternating samples in fresh interpreters.

``python -m bench.ab BEFORE_SRC AFTER_SRC [--workloads storm,short] [--rounds 15] [--quick]``

Each sample is ``python -m bench.one procexec WORKLOAD`` with ``PYTHONPATH`` set to one
tree's ``src`` (a ``git worktree`` of the commit before, say), the two trees taken in turn
so that the machine's load weighs on both alike. Prints the median wall and own-CPU
seconds of each and their ratio (after / before) as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench.contenders import bench_env

ROOT = Path(__file__).resolve().parent.parent


def sample(src: Path, workload: str, quick: bool) -> dict[str, float]:
    """One run of ``workload`` with the procexec of ``src``, in a fresh interpreter."""
    env = bench_env()
    env["PYTHONPATH"] = os.pathsep.join([str(src), str(ROOT)])
    argv = [sys.executable, "-m", "bench.one", "procexec", workload, *(["--quick"] * quick)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"bench.one with {src} failed:\n{result.stderr}")
    figures: dict[str, float] = json.loads(result.stdout)
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("before", type=Path, help="the src directory of the tree before")
    parser.add_argument("after", type=Path, help="the src directory of the tree after")
    parser.add_argument("--workloads", default="storm,short")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="the workloads' small versions")
    args = parser.parse_args(argv)
    print("| workload | before: wall, own CPU (s) | after | after / before: wall, own CPU |")
    print("|---|---|---|---|")
    for workload in args.workloads.split(","):
        runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for _ in range(args.rounds):
            runs["before"].append(sample(args.before, workload, args.quick))
            runs["after"].append(sample(args.after, workload, args.quick))
        med = {
            side: {key: statistics.median(r[key] for r in rs) for key in ("wall", "own_cpu")}
            for side, rs in runs.items()
        }
        before, after = med["before"], med["after"]
        wall, cpu = after["wall"] / before["wall"], after["own_cpu"] / before["own_cpu"]
        print(
            f"| {workload} | {before['wall']:.3f}, {before['own_cpu']:.3f} "
            f"| {after['wall']:.3f}, {after['own_cpu']:.3f} | {wall:.2f}x, {cpu:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
