"""How long the HTML report takes for a big batch: ``python -m bench.report [--jobs N]``.

Writes a GNU parallel job log and a ``--joblog-json`` sidecar of N jobs (default 100,000;
16 slots kept busy, runtimes log-normal, 5 % failures) to a temporary directory, then times,
best of three in this interpreter:

- ``log``: reading the job log alone (slots inferred) and writing the page;
- ``log+json``: reading both (slots, pids, CPU and memory from the sidecar) and writing it.

Prints one JSON object: seconds for each, and the page's size in bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from procexec.report import JobRecord, read_records, write_html

HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"
SLOTS = 16


def make_logs(directory: Path, jobs: int, seed: int = 1) -> tuple[Path, Path]:
    """A job log and its sidecar for ``jobs`` jobs."""
    rnd = random.Random(seed)
    free = [1_800_000_000.0] * SLOTS
    rows, objects = [HEADER], []
    for seq in range(1, jobs + 1):
        slot = min(range(SLOTS), key=free.__getitem__)
        start = round(free[slot] + 0.002, 3)
        runtime = round(rnd.lognormvariate(-1.5, 1), 3)
        exitval = rnd.choice([1, 2]) if rnd.random() < 0.05 else 0
        command = f"gzip -9k /data/logs/2026-12-{seq % 28 + 1:02d}/part-{seq:06d}.log"
        rows.append(f"{seq}\t:\t{start:.3f}\t{runtime:10.3f}\t0\t0\t{exitval}\t0\t{command}\n")
        record = JobRecord(
            seq=seq, command=command, start=start, end=start + runtime, exit=exitval,
            slot=slot + 1, host="bench", pid=10_000 + seq, cpu=runtime * 0.9, max_rss=2**24,
        )  # fmt: skip
        objects.append(json.dumps(record.to_json()) + "\n")
        free[slot] = start + runtime
    log, sidecar = directory / "run.log", directory / "run.jsonl"
    log.write_text("".join(rows))
    sidecar.write_text("".join(objects))
    return log, sidecar


def best_of(rounds: int, paths: list[Path], out: Path) -> float:
    """The fastest of ``rounds`` runs of read + write (seconds)."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        write_html(read_records(*map(str, paths)), out)
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    """Parse the options, time both cases, print the JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        log, sidecar = make_logs(directory, options.jobs)
        out = directory / "report.html"
        figures = {
            "jobs": options.jobs,
            "log": round(best_of(options.rounds, [log], out), 3),
            "log+json": round(best_of(options.rounds, [log, sidecar], out), 3),
            "bytes": out.stat().st_size,
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
