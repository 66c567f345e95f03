"""Python calls on a Dask cluster (``DaskExecutor.submit_call``, ``run_call``,
``map_calls``): run by each Dask worker's own ProcessExecutor in the slots it shares with
commands. A LocalCluster of 2 worker processes on 127.0.0.1 (OS-chosen ports), shut down by
the tests."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed", reason="procexec[dask] is not installed")

from procexec import CallTimeout
from procexec.dask import DaskExecutor, DaskFuture, WorkerLostError
from tests import _call_targets as targets
from tests._helpers import assert_dies, my_children
from tests.test_dask import our_leftovers


@pytest.fixture(scope="module")
def ex() -> Iterator[DaskExecutor]:
    before = my_children()
    with DaskExecutor.local(n_workers=2, slots_per_worker=2) as executor:
        yield executor
    assert not our_leftovers(before), "the cluster left processes behind"


def _line(path: Path, prefix: str) -> int:
    end = time.monotonic() + 60
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        found = [int(line.split()[1]) for line in lines if line.startswith(prefix)]
        if found:
            return found[0]
        assert time.monotonic() < end, f"no {prefix!r} line in {path}"
        time.sleep(0.01)


def test_submit_call_run_call_and_map_calls(ex: DaskExecutor) -> None:
    future = ex.submit_call(targets.add, 2, b=3)
    assert isinstance(future, DaskFuture)
    assert future.result(timeout=60) == 5
    assert future.worker is not None and future.worker.startswith("tcp://127.0.0.1:")
    assert future.pid is not None and future.args == "add"
    assert ex.run_call(targets.keywords, (1,), {"fn": 2}).result(timeout=60) == ((1,), {"fn": 2})
    assert list(ex.map_calls(targets.double, range(7))) == [2 * i for i in range(7)]
    assert list(ex.map_calls(targets.add, range(9), range(9), chunksize=4)) == [
        2 * i for i in range(9)
    ]
    assert ex.submit_call(lambda x: x + 1, 1).result(timeout=60) == 2


def test_an_exception_is_raised_in_the_caller(ex: DaskExecutor) -> None:
    with pytest.raises(ValueError, match="far away"):
        ex.submit_call(targets.raise_value_error, "far away").result(timeout=60)


def test_cancel_of_a_running_call_stops_it_on_its_worker(ex: DaskExecutor, tmp_path: Path) -> None:
    beats = tmp_path / "beats"
    future = ex.submit_call(targets.heartbeat, str(beats), True)
    child, worker = _line(beats, "child"), _line(beats, "worker")
    assert future.cancel() is True
    assert_dies(worker)
    assert_dies(child)
    assert future.cancelled()


@pytest.mark.parametrize("stop", ["terminate", "kill"])
def test_terminate_and_kill_cancel_a_call(ex: DaskExecutor, tmp_path: Path, stop: str) -> None:
    beats = tmp_path / "beats"
    future = ex.submit_call(targets.heartbeat, str(beats))
    worker = _line(beats, "worker")
    getattr(future, stop)()
    assert_dies(worker)
    with pytest.raises(Exception) as caught:  # CancelledError, by Python version
        future.result(timeout=60)
    assert future.cancelled(), caught.value


def test_run_call_timeout_stops_it(ex: DaskExecutor, tmp_path: Path) -> None:
    beats = tmp_path / "beats"
    future = ex.run_call(targets.heartbeat, (str(beats),), timeout=0.5)
    worker = _line(beats, "worker")
    with pytest.raises(CallTimeout):
        future.result(timeout=60)
    assert_dies(worker)


def test_a_lost_worker_fails_its_call_or_runs_it_again(tmp_path: Path) -> None:
    before = my_children()
    for retries in (0, 1):
        beats = tmp_path / f"beats{retries}"
        with DaskExecutor.local(n_workers=2, slots_per_worker=1, retries=retries) as executor:
            future = executor.submit_call(targets.heartbeat, str(beats))
            call_worker = _line(beats, "worker")
            dask_worker = _parent(call_worker)
            os.kill(dask_worker, signal.SIGKILL)
            assert_dies(call_worker)  # its procexec worker went with the Dask worker
            if retries:
                assert executor.submit_call(targets.double, 2).result(timeout=120) == 4
                future.cancel()  # it runs again, for ever: stop it
            else:
                with pytest.raises(WorkerLostError):
                    future.result(timeout=120)
    assert not our_leftovers(before)


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
