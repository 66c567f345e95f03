"""procexec.dask against the plainest Dask loop, in one run on one LocalCluster.

``python -m bench.dask [--rounds N] [--quick]``

The cluster: 2 worker processes on 127.0.0.1, 2 ``procexec-slots`` each. The plain loop is
``client.submit(subprocess.run, argv, pure=False, resources={"procexec-slots": 1})`` for
every job, then every result; procexec is ``DaskExecutor.submit`` on the same client. The
two alternate, round after round, each timed run starting once the scheduler holds no task
(the wait is not timed). Workloads: 1,000 x ``/bin/true``, 200 x ``sleep 0.01``, and the
round trip of one ``/bin/true`` job at a time (submit, wait, next).

Prints a Markdown table: median wall seconds of each and procexec's ratio.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from distributed import Client, LocalCluster

from procexec.dask import SLOTS, DaskExecutor


def plain_batch(client: Client, argv: list[str], count: int) -> None:
    futures = [
        client.submit(subprocess.run, argv, pure=False, resources={SLOTS: 1}) for _ in range(count)
    ]
    results = client.gather(futures)  # type: ignore[no-untyped-call]
    assert all(r.returncode == 0 for r in results)


def procexec_batch(ex: DaskExecutor, argv: list[str], count: int) -> None:
    futures = [ex.submit(argv) for _ in range(count)]
    assert all(f.result() == 0 for f in futures)


def plain_round_trip(client: Client, count: int) -> None:
    for _ in range(count):
        future = client.submit(subprocess.run, ["/bin/true"], pure=False, resources={SLOTS: 1})
        assert future.result().returncode == 0


def procexec_round_trip(ex: DaskExecutor, count: int) -> None:
    for _ in range(count):
        assert ex.submit(["/bin/true"]).result() == 0


def settle(client: Client) -> None:
    """Wait, outside the timing, until the scheduler holds no task: the plain loop frees its
    tasks only when its futures go, after its timing ends, and that work must not fall
    into the next contender's window."""
    while client.run_on_scheduler(_task_count):  # type: ignore[no-untyped-call]
        time.sleep(0.01)


def _task_count(dask_scheduler: Any = None) -> int:
    return len(dask_scheduler.tasks) if dask_scheduler is not None else 0


def timed(client: Client, run: Callable[[], None]) -> float:
    settle(client)
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else (1 if quick else 7)
    scale = 10 if quick else 1
    cases = [
        (f"{1000 // scale} x /bin/true", ["/bin/true"], 1000 // scale),
        (f"{200 // scale} x sleep 0.01", ["sleep", "0.01"], 200 // scale),
    ]
    trips = 100 // scale
    with LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", resources={SLOTS: 2},
    ) as cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]  # fmt: skip
        ex = DaskExecutor(client)
        for _, command, _ in cases:  # warm both paths up (imports, plugin)
            plain_batch(client, command, 4)
            procexec_batch(ex, command, 4)
        samples: dict[str, tuple[list[float], list[float]]] = {}
        for _ in range(rounds):
            for name, command, count in cases:
                plain, ours = samples.setdefault(name, ([], []))
                plain.append(timed(client, partial(plain_batch, client, command, count)))
                ours.append(timed(client, partial(procexec_batch, ex, command, count)))
            plain, ours = samples.setdefault(f"round trip of one job (x {trips})", ([], []))
            plain.append(timed(client, lambda: plain_round_trip(client, trips)) / trips)
            ours.append(timed(client, lambda: procexec_round_trip(ex, trips)) / trips)
        ex.shutdown()
    print(f"DaskExecutor vs client.submit(subprocess.run): medians of {rounds} rounds\n")
    print("| workload | plain Dask loop | procexec.dask | ratio |")
    print("|---|---|---|---|")
    for name, (plain, ours) in samples.items():
        a, b = statistics.median(plain), statistics.median(ours)
        unit = 1000 if name.startswith("round") else 1
        suffix = " ms" if unit == 1000 else " s"
        print(f"| {name} | {a * unit:.3f}{suffix} | {b * unit:.3f}{suffix} | **{b / a:.2f}x** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
