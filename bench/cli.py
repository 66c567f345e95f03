"""The command line's shell rule, measured: what a plain template costs now that the words
go to a shell unless they hold no shell syntax.

``python -m bench.cli [--rounds N] [--quick]``

Each contender runs the same batch as a real process, 2 jobs at a time, round after round
in turn: ``storm`` 1,000 x ``true N``, ``short`` 200 x ``sleep 0.01``. Contenders:

- ``procexec`` — the default: the template holds no shell syntax, so it runs directly;
- ``procexec -q`` — the words as the argv, no shell (the default before issue 18);
- ``procexec --shell`` — a shell per job, what the default would cost without its shortcut;
- GNU parallel and ``xargs -P 2 -n 1`` where installed.

Prints a Markdown table of median wall seconds and each one's ratio to ``procexec -q``.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

WORKLOADS = {"storm": (["true"], 1000), "short": (["sleep", "0.01"], 200)}


def contenders() -> dict[str, list[str]]:
    """Name -> the command line before the template (None-free: missing tools left out)."""
    procexec = [sys.executable, "-m", "procexec", "-j", "2"]
    found = {
        "procexec -q": [*procexec, "-q"],
        "procexec": procexec,
        "procexec --shell": [*procexec, "--shell"],
    }
    if shutil.which("parallel"):
        found["GNU parallel"] = ["parallel", "--will-cite", "-j", "2"]
    return found


def command(prefix: list[str], workload: str) -> tuple[list[str], bytes]:
    """The argv and stdin of one batch."""
    argv, count = WORKLOADS[workload]
    if prefix[0] == "xargs":
        return [*prefix, *argv[:-1]], (argv[-1] + "\n").encode() * count
    if workload == "short":  # the last word is the argument: ``sleep {}`` with 0.01
        return [*prefix, argv[0], ":::", *[argv[1]] * count], b""
    return [*prefix, *argv, ":::", *map(str, range(count))], b""


def timed(argv: list[str], stdin: bytes) -> float:
    start = time.perf_counter()
    subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else (1 if quick else 7)
    who = contenders()
    if shutil.which("xargs"):
        who["xargs -P"] = ["xargs", "-P", "2", "-n", "1"]
    print("| workload | contender | median wall s | ratio to procexec -q |")
    print("|---|---|---|---|")
    for workload in WORKLOADS:
        times: dict[str, list[float]] = {name: [] for name in who}
        for _ in range(rounds):
            for name, prefix in who.items():
                times[name].append(timed(*command(prefix, workload)))
        base = statistics.median(times["procexec -q"])
        for name, samples in times.items():
            median = statistics.median(samples)
            print(f"| {workload} | {name} | {median:.3f} | {median / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
