"""What issue 20's features cost, as ratios measured in one run.

``python -m bench.resources [--pairs N] [--quick] [--preexec]``

- the guardian: storm (1000 runs of ``/bin/true``, 2 at a time) with ``guardian=True`` against
  ``guardian=False``, alternating, each sample in a fresh interpreter;
- per-job limits: the same storm with ``limits={"open_files": 4096}`` on every job against
  none, from a small parent and from a parent of 500 MiB; limits run the job under
  util-linux ``prlimit``, or with ``--preexec`` through a preexec_fn (fork(), whose cost
  grows with the parent's memory).

Prints a Markdown table of medians and ratios.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

SAMPLE = """
import json, resource, sys, time
from procexec import ProcessExecutor
guardian, limits = sys.argv[1] == "on", sys.argv[2] == "on"
ballast_mib, count = int(sys.argv[3]), int(sys.argv[4])
ballast = bytearray(ballast_mib << 20)
ballast[::4096] = b"x" * len(ballast[::4096])
extra = {"limits": {"open_files": 4096}} if limits else {}
if sys.argv[5] == "preexec":
    import procexec._core._resources._rlimits
    procexec._core._resources._rlimits._prlimit = lambda: None
own = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
cpu, start = own(), time.perf_counter()
with ProcessExecutor(2, guardian=guardian) as ex:
    futures = [ex.submit(["/bin/true", "x"], **extra) for _ in range(count)]
assert all(f.result() == 0 for f in futures)
print(json.dumps({"wall": time.perf_counter() - start, "own_cpu": own() - cpu}))
"""


def sample(guardian: str, limits: str, ballast: int, count: int) -> dict[str, float]:
    how = "preexec" if PREEXEC else "prlimit"
    out = subprocess.run(
        [sys.executable, "-c", SAMPLE, guardian, limits, str(ballast), str(count), how],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def compare(
    name: str, base: tuple[str, str, int], other: tuple[str, str, int], pairs: int, count: int
) -> str:
    a: list[dict[str, float]] = []
    b: list[dict[str, float]] = []
    for _ in range(pairs):
        a.append(sample(*base, count))
        b.append(sample(*other, count))
    cells = []
    for key in ("wall", "own_cpu"):
        x = statistics.median(s[key] for s in a)
        y = statistics.median(s[key] for s in b)
        cells.append(f"{x:.3f} s | {y:.3f} s | **{y / x:.3f}x**")
    return f"| {name} | " + " | ".join(cells) + " |"


PREEXEC = False


def main(argv: list[str]) -> int:
    global PREEXEC  # noqa: PLW0603  # one switch for the samples of this run
    PREEXEC = "--preexec" in argv
    quick = "--quick" in argv
    pairs = int(argv[argv.index("--pairs") + 1]) if "--pairs" in argv else (2 if quick else 15)
    count = 200 if quick else 1000
    print(f"storm: {count} runs of /bin/true, 2 at a time; medians of {pairs} alternating pairs\n")
    print("| comparison | wall without | wall with | ratio | parent CPU without | with | ratio |")
    print("|---|---|---|---|---|---|---|")
    print(compare("guardian", ("off", "off", 0), ("on", "off", 0), pairs, count))
    print(compare("limits, 30 MiB parent", ("off", "off", 0), ("off", "on", 0), pairs, count))
    print(compare("limits, 500 MiB parent", ("off", "off", 500), ("off", "on", 500), pairs, count))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
