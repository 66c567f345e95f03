"""Long runs under the ``slow`` marker (``.ci/run`` runs them too): a thread storm and a soak."""

from __future__ import annotations

import gc
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import CancelledError, wait
from pathlib import Path
from typing import Any

import pytest

from procexec import ProcessExecutor, ProcessFuture

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


SOAK_JOBS = 20_000
WARM_UP_JOBS = 2_000


def test_soak_20000_jobs_memory_and_fds_stay_flat() -> None:
    with ProcessExecutor(2) as ex:
        assert _run_all(ex, WARM_UP_JOBS) == WARM_UP_JOBS
        gc.collect()
        rss_before, fds_before = _rss_bytes(), sorted(os.listdir("/proc/self/fd"))
        assert _run_all(ex, SOAK_JOBS) == SOAK_JOBS
        gc.collect()
        rss_after, fds_after = _rss_bytes(), sorted(os.listdir("/proc/self/fd"))
    assert rss_after - rss_before < 10 * 1024 * 1024, (rss_before, rss_after)
    assert fds_after == fds_before


def _run_all(ex: ProcessExecutor, count: int) -> int:
    """Run ``count`` jobs, keeping no future; return how many exited with 0."""
    return sum(status == 0 for status in ex.map((["true"] for _ in range(count)), buffersize=64))


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")
