"""The command line, measured against GNU parallel (and xargs): its shell rule, its
start-up, and ``--pipe``'s throughput.

``python -m bench.cli [--rounds N] [--quick] [--only storm,short,startup,pipe]``

Each contender runs the same work as a real process, round after round in turn (so a
machine that gets busier slows every contender alike), after one untimed round; each figure
is the median of the rounds, and each ratio is to the first contender of its table.
procexec is the console script a user runs (``python -m procexec`` where it is not
installed), with Python's bytecode cache allowed, as on a user's machine.

- ``storm`` (1,000 x ``true N``) and ``short`` (200 x ``sleep 0.01``), 2 jobs at a time:
  ``procexec -q`` (the words as the argv), ``procexec`` (no shell syntax: run directly),
  ``procexec --shell`` (a shell per job), GNU parallel and ``xargs -P 2 -n 1``.
- ``startup``: one short job (``true 1``): procexec, GNU parallel, ``xargs``.
- ``pipe``: ``--pipe wc -c`` over one record (a line) of 1, 32 and 128 MB with the default
  1M block (the block grows to the record), and over 64 MB of 100-byte lines in blocks of
  1M and of 32M: procexec and GNU parallel.

Prints Markdown tables of median wall seconds and ratios.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: The command users run: the console script beside this interpreter, else ``-m``.
_SCRIPT = Path(sys.executable).with_name("procexec")
PROCEXEC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "procexec"]
#: Python may cache bytecode, as on a user's machine (an environment that forbids it would
#: time the compiling of every module instead).
_ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
GNU = ["parallel", "--will-cite"]
WORKLOADS = {"storm": (["true"], 1000), "short": (["sleep", "0.01"], 200)}
MB = 1_000_000


def contenders() -> dict[str, list[str]]:
    """Name -> the command line before the template (missing tools left out)."""
    procexec = [*PROCEXEC, "-j", "2"]
    found = {
        "procexec -q": [*procexec, "-q"],
        "procexec": procexec,
        "procexec --shell": [*procexec, "--shell"],
    }
    if shutil.which("parallel"):
        found["GNU parallel"] = [*GNU, "-j", "2"]
    if shutil.which("xargs"):
        found["xargs -P"] = ["xargs", "-P", "2", "-n", "1"]
    return found


def command(prefix: list[str], workload: str) -> tuple[list[str], bytes]:
    """The argv and stdin of one batch."""
    argv, count = WORKLOADS[workload]
    if prefix[0] == "xargs":
        return [*prefix, *argv[:-1]], (argv[-1] + "\n").encode() * count
    if workload == "short":  # the last word is the argument: ``sleep {}`` with 0.01
        return [*prefix, argv[0], ":::", *[argv[1]] * count], b""
    return [*prefix, *argv, ":::", *map(str, range(count))], b""


def timed(argv: list[str], stdin: bytes | Path) -> float:
    """Wall seconds of one run (stdin: bytes, or a file to read it from)."""
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": _ENV}
    if isinstance(stdin, Path):
        with stdin.open("rb") as source:
            start = time.perf_counter()
            subprocess.run(argv, stdin=source, check=True, **quiet)  # type: ignore[call-overload]
    else:
        start = time.perf_counter()
        subprocess.run(argv, input=stdin, check=True, **quiet)  # type: ignore[call-overload]
    return time.perf_counter() - start


def alternate(runs: dict[str, Callable[[], float]], rounds: int) -> dict[str, float]:
    """Median seconds of each run, the runs taken in turn, round after round, after one
    untimed round (it writes Python's bytecode cache, warms the page cache)."""
    for run in runs.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(run())
    return {name: statistics.median(samples) for name, samples in times.items()}


def table(title: str, medians: dict[str, float], base: str) -> None:
    print(f"| {title} | median wall s | ratio to {base} |")
    print("|---|---|---|")
    for name, median in medians.items():
        print(f"| {name} | {median:.3f} | {median / medians[base]:.2f} |")
    print()


def shell_rule(workloads: list[str], rounds: int) -> None:
    """Each batch with each contender (the shell rule's cost)."""
    for workload in workloads:
        runs = {name: _batch(prefix, workload) for name, prefix in contenders().items()}
        table(f"{workload} (2 at a time)", alternate(runs, rounds), "procexec -q")


def _batch(prefix: list[str], workload: str) -> Callable[[], float]:
    return lambda: timed(*command(prefix, workload))


def startup(rounds: int) -> None:
    """One short job: what starting the tool costs."""
    runs = {"procexec": lambda: timed([*PROCEXEC, "true", ":::", "1"], b"")}
    if shutil.which("parallel"):
        runs["GNU parallel"] = lambda: timed([*GNU, "true", ":::", "1"], b"")
    if shutil.which("xargs"):
        runs["xargs"] = lambda: timed(["xargs", "true"], b"1\n")
    table("one short job (true 1)", alternate(runs, rounds), "procexec")


def pipe(rounds: int, quick: bool) -> None:
    """``--pipe`` throughput: long single records, and many lines in big blocks."""
    cases = [(1, "1M"), (32, "1M"), (128, "1M")] if not quick else [(1, "1M"), (8, "1M")]
    lines = [(64, "1M"), (64, "32M")] if not quick else [(8, "1M")]
    with tempfile.TemporaryDirectory() as directory:
        for size, block in cases:
            path = Path(directory) / f"record{size}"
            path.write_bytes(b"x" * (size * MB - 1) + b"\n")
            _pipe_table(f"one {size} MB record, --block {block}", path, block, rounds)
        for size, block in lines:
            path = Path(directory) / f"lines{size}"
            path.write_bytes((b"y" * 99 + b"\n") * (size * MB // 100))
            _pipe_table(f"{size} MB of 100-byte lines, --block {block}", path, block, rounds)


def _pipe_table(title: str, path: Path, block: str, rounds: int) -> None:
    argv = ["--pipe", "--block", block, "wc", "-c"]
    runs = {"procexec": lambda: timed([*PROCEXEC, *argv], path)}
    if shutil.which("parallel"):
        runs["GNU parallel"] = lambda: timed([*GNU, *argv], path)
    table(title, alternate(runs, rounds), "procexec")


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else (1 if quick else 7)
    only = argv[argv.index("--only") + 1].split(",") if "--only" in argv else None
    wanted = only or ["storm", "short", "startup", "pipe"]
    os.environ.pop("PARALLEL_SHELL", None)
    workloads = [workload for workload in WORKLOADS if workload in wanted]
    if workloads:
        shell_rule(workloads, rounds)
    if "startup" in wanted:
        startup(rounds)
    if "pipe" in wanted:
        pipe(rounds, quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
