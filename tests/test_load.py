"""Long runs under the ``slow`` marker (``.ci/run`` runs them too): a thread storm and a soak."""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import CancelledError, wait
from pathlib import Path
from typing import Any

import pytest

from procexec import ProcessExecutor, ProcessFuture
from tests._helpers import py_on_path

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("reaper_path")]

STORM_SECONDS = 10.0
LIMITS = (1, 2, 3, 4)


def test_thread_storm_submit_cancel_resize_terminate(tmp_path: Path) -> None:
    """8 threads submit, cancel, terminate and resize for 10 s: every future resolves once,
    and no more jobs than the largest limit ever set run at once."""
    log = tmp_path / "log"
    # Each job logs "+ pid" as it starts and "- pid" as it ends, terminated ones too.
    end_line = f'echo "- $$" >> {log}'
    job = [
        "sh",
        "-c",
        f"trap '{end_line}; exit 143' TERM; echo \"+ $$\" >> {log}; sleep 0.01; {end_line}",
    ]
    calls: Counter[int] = Counter()
    futures: list[ProcessFuture[Any]] = []
    lock = threading.Lock()
    end = time.monotonic() + STORM_SECONDS
    with ProcessExecutor(max(LIMITS)) as ex:

        def storm(seed: int) -> None:
            rng = random.Random(seed)
            mine: list[ProcessFuture[Any]] = []
            seen: list[ProcessFuture[Any]] = []
            while time.monotonic() < end:
                roll = rng.random()
                if roll < 0.7 or not mine:
                    future = ex.submit(job)
                    future.add_done_callback(lambda f: calls.update([id(f)]))
                    mine.append(future)
                elif roll < 0.85:
                    rng.choice(mine).cancel()
                elif roll < 0.95:
                    ex.max_jobs = rng.choice(LIMITS)
                else:
                    rng.choice(mine).terminate()
                if len(mine) > 50:  # keep the queue short so jobs keep starting
                    assert wait(mine[:1], timeout=60).done
                    seen.append(mine.pop(0))
            with lock:
                futures.extend(seen + mine)

        threads = [threading.Thread(target=storm, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert futures
    for future in futures:
        assert future.done()
        if not future.cancelled():
            assert isinstance(future.result(), int)
        else:
            with pytest.raises(CancelledError):
                future.result()
    assert set(calls.values()) == {1} and len(calls) == len(futures)
    assert _most_at_once(log.read_text().splitlines()) <= max(LIMITS)


def _most_at_once(events: list[str]) -> int:
    """The most jobs between their "+" and "-" lines at any point of the log."""
    running: set[str] = set()
    most = 0
    for event in events:
        sign, pid = event.split()
        if sign == "+":
            running.add(pid)
            most = max(most, len(running))
        else:
            running.discard(pid)
    return most


SOAK = """
import gc, json, os, sys
from pathlib import Path
from procexec import ProcessExecutor

def rss():
    line = next(l for l in Path("/proc/self/status").read_text().splitlines()
                if l.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024

def run_all(ex, count):  # keeps no future
    return sum(s == 0 for s in ex.map((["true"] for _ in range(count)), buffersize=64))

soak, warm_up = int(sys.argv[1]), int(sys.argv[2])
with ProcessExecutor(2) as ex:
    ok = run_all(ex, warm_up)
    ex._reaper.join()  # idle: its loop has closed its fds (it reopens them on the next job)
    gc.collect()
    rss_before, fds_before = rss(), sorted(os.listdir("/proc/self/fd"))
    ok += run_all(ex, soak)
    ex._reaper.join()
    gc.collect()
    rss_after, fds_after = rss(), sorted(os.listdir("/proc/self/fd"))
print(json.dumps([ok, rss_after - rss_before, fds_before == fds_after]))
"""
SOAK_JOBS = 20_000
WARM_UP_JOBS = 2_000


def test_soak_20000_jobs_memory_and_fds_stay_flat(reaper_path: str) -> None:
    """In a fresh interpreter that coverage does not trace: a tracer per thread (the
    portable path starts a waiter thread per job) would be the tracer's memory, not ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_PROCESS_")}
    proc = subprocess.run(
        [*py_on_path(SOAK, reaper_path), str(SOAK_JOBS), str(WARM_UP_JOBS)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    ok, growth, same_fds = json.loads(proc.stdout)
    assert ok == SOAK_JOBS + WARM_UP_JOBS
    assert growth < 10 * 1024 * 1024, f"RSS grew by {growth} bytes"
    assert same_fds
