"""procexec.dask on a LocalCluster of 2 worker processes on 127.0.0.1 (OS-chosen ports, no
dashboard), shut down by the tests. Each job's own process group is checked on the worker's
machine (this one): stops reach the grandchildren, a lost worker leaves no orphan."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, as_completed, wait
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("distributed", reason="procexec[dask] is not installed")

import dask
from distributed import Client, LocalCluster

from procexec import JobResult
from procexec.dask import (
    PLUGIN,
    SLOTS,
    DaskExecutor,
    DaskFuture,
    SchedulerLostError,
    WorkerLostError,
)
from tests._helpers import (
    is_running,
    log_rows,
    my_children,
    reap_adopted_zombies,
    run_cli,
    wait_for_file,
)

#: A job that records its pid and its grandchild's (both in its process group), then waits.
GROUP_JOB = 'sleep 300 & echo "$$ $!" > "$1.tmp" && mv "$1.tmp" "$1"; wait'


@pytest.fixture(scope="module")
def ex() -> Iterator[DaskExecutor]:
    before = my_children()
    with DaskExecutor.local(n_workers=2, slots_per_worker=2) as executor:
        yield executor
    assert not our_leftovers(before), "the cluster left processes behind"


def gone_within(pids: list[int], seconds: float) -> list[int]:
    """Wait until none of ``pids`` runs; what still runs after ``seconds``. The orphans this
    session adopts as a subreaper (conftest.py) are reaped."""
    end = time.monotonic() + seconds
    while (alive := [p for p in pids if is_running(p)]) and time.monotonic() < end:
        time.sleep(0.005)
    reap_adopted_zombies()
    return alive


def our_leftovers(before: set[int], timeout: float = 30) -> list[int]:
    """Live children that appeared since ``before`` and are still there after ``timeout``
    (what has exited is reaped)."""
    end = time.monotonic() + timeout
    while True:
        reap_adopted_zombies()
        left = sorted(my_children() - before)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def test_submit_run_map_and_the_futures_api(ex: DaskExecutor, tmp_path: Path) -> None:
    futures = [ex.submit(["sh", "-c", f"exit {i}"]) for i in range(6)]
    assert sorted(f.result(timeout=60) for f in as_completed(futures)) == list(range(6))
    assert all(
        isinstance(f, DaskFuture) and f.worker and f.worker.startswith("tcp://127.0.0.1:")
        for f in futures
    )
    done, _ = wait([ex.submit(["true"])], return_when=FIRST_COMPLETED, timeout=60)
    assert [f.result() for f in done] == [0]
    env = {"FOO": "bar", "PATH": os.environ["PATH"]}
    script = "echo $FOO; pwd; echo err >&2"
    command = ex.run(["sh", "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    result = command.result(timeout=60)
    assert isinstance(result, JobResult) and result.stdout.split() == ["bar", str(tmp_path)]
    assert result.stderr == "err\n" and result.returncode == 0 and result.pid > 0
    assert result.worker.startswith("tcp://127.0.0.1:")  # type: ignore[attr-defined]
    assert ex.run(["cat"], input=b"fed", capture_output=True).result(timeout=60).stdout == b"fed"
    assert list(ex.map([["true"], ["false"], ["sh", "-c", "exit 7"]])) == [0, 1, 7]


def test_asyncio_wrap_future(ex: DaskExecutor) -> None:
    async def main() -> int:
        return await asyncio.wrap_future(ex.submit(["sh", "-c", "exit 5"]))

    assert asyncio.run(main()) == 5


def test_ordinary_failures_are_values_raised_in_the_caller(ex: DaskExecutor) -> None:
    with pytest.raises(FileNotFoundError):
        ex.run(["/nonexistent/program"]).result(timeout=60)
    with pytest.raises(subprocess.TimeoutExpired):
        ex.run(["sleep", "30"], timeout=0.2).result(timeout=60)
    with pytest.raises(subprocess.CalledProcessError) as raised:
        ex.run(["sh", "-c", "exit 3"], check=True, capture_output=True).result(timeout=60)
    assert raised.value.returncode == 3
    assert ex.submit(["sh", "-c", "exit 9"]).result(timeout=60) == 9
    # One bad byte: the job's UnicodeDecodeError arrives whole (distributed's tblib
    # pickling would leave it without a message).
    with pytest.raises(UnicodeDecodeError, match="can't decode byte 0xff in position 2") as bad:
        ex.run(["printf", "ok\\377\\n"], capture_output=True, text=True).result(timeout=60)
    assert bad.value.object == b"ok\xff\n" and bad.value.start == 2
    logs = ex.client.get_worker_logs()  # type: ignore[no-untyped-call]
    errors = [
        msg for lines in logs.values() for level, msg in lines if level in ("ERROR", "CRITICAL")
    ]
    assert errors == []


def test_terminate_and_kill_stop_the_remote_process_group(ex: DaskExecutor, tmp_path: Path) -> None:
    for how in ("terminate", "kill"):
        mark = tmp_path / how
        future = ex.submit(["sh", "-c", GROUP_JOB, "job", str(mark)])
        pids = [int(p) for p in wait_for_file(mark).split()]
        start = time.monotonic()
        getattr(future, how)()
        assert gone_within(pids, 0.5) == [], f"{how}: the group outlived 0.5 s"
        status = future.result(timeout=60)
        assert status == (-signal.SIGTERM if how == "terminate" else -signal.SIGKILL)
        assert time.monotonic() - start < 30
    # the slots were given back: four more jobs run at once
    assert [f.result(timeout=60) for f in [ex.submit(["true"]) for _ in range(4)]] == [0] * 4


def test_a_timeout_stops_the_group(ex: DaskExecutor, tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    future = ex.run(["sh", "-c", GROUP_JOB, "job", str(mark)], timeout=1.0)
    pids = [int(p) for p in wait_for_file(mark).split()]
    with pytest.raises(subprocess.TimeoutExpired):
        future.result(timeout=60)
    assert gone_within(pids, 0.5) == []


def test_cancel_of_a_queued_job_never_runs_it(ex: DaskExecutor, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    hold = f'touch "$1"; while [ ! -e "{gate}" ]; do sleep 0.01; done'
    marks = [tmp_path / f"blocker{i}" for i in range(4)]
    blockers = [ex.submit(["sh", "-c", hold, "job", str(m)]) for m in marks]  # every slot
    for mark in marks:
        wait_for_file(mark)
    never = tmp_path / "never"
    queued = ex.submit(["touch", str(never)])
    assert queued.cancel() and queued.cancelled()
    gate.touch()
    assert [f.result(timeout=60) for f in blockers] == [0] * 4
    after = ex.submit(["true"])  # queued behind the cancelled one, which held no slot
    assert after.result(timeout=60) == 0
    assert not never.exists()


def test_cancel_of_a_running_job_kills_its_group(ex: DaskExecutor, tmp_path: Path) -> None:
    mark = tmp_path / "mark"
    future = ex.submit(["sh", "-c", GROUP_JOB, "job", str(mark)])
    pids = [int(p) for p in wait_for_file(mark).split()]
    assert future.cancel() and future.cancelled()
    assert gone_within(pids, 0.5) == []
    assert not future.cancel() or future.cancelled()


def test_fifty_mebibytes_of_output_arrive_intact(ex: DaskExecutor) -> None:
    code = "import sys\nsys.stdout.buffer.write(bytes(range(256)) * (50 * 4096))"
    result = ex.run([sys.executable, "-c", code], capture_output=True).result(timeout=120)
    expected = bytes(range(256)) * (50 * 4096)
    assert len(result.stdout) == 50 << 20
    assert hashlib.sha256(result.stdout).digest() == hashlib.sha256(expected).digest()


def test_caps_hold_per_worker_and_in_total(ex: DaskExecutor, tmp_path: Path) -> None:
    """Each job marks itself running as run-<worker pid>-<pid>, counts the marks, and
    leaves: at most 2 per worker (its slots) and 4 in all."""
    record = (
        "import os, sys, time\n"
        "d = sys.argv[1]; me = f'run-{os.getppid()}-{os.getpid()}'\n"
        "open(os.path.join(d, me), 'w').close()\n"
        "time.sleep(0.2)\n"
        "names = [n for n in os.listdir(d) if n.startswith('run-')]\n"
        "mine = [n for n in names if n.split('-')[1] == str(os.getppid())]\n"
        "open(os.path.join(d, f'seen-{os.getpid()}'), 'w').write(f'{len(names)} {len(mine)}')\n"
        "os.remove(os.path.join(d, me))\n"
    )
    futures = [ex.submit([sys.executable, "-c", record, str(tmp_path)]) for _ in range(12)]
    assert [f.result(timeout=120) for f in futures] == [0] * 12
    seen = [tuple(map(int, p.read_text().split())) for p in tmp_path.glob("seen-*")]
    assert len(seen) == 12
    assert max(total for total, _ in seen) <= 4
    assert max(mine for _, mine in seen) <= 2


def test_bad_arguments(ex: DaskExecutor) -> None:
    with pytest.raises(ValueError, match="does not take stdout=PIPE"):
        ex.submit(["true"], stdout=subprocess.PIPE)
    with pytest.raises(ValueError, match="argv is empty"):
        ex.submit([])
    with pytest.raises(ValueError, match="retries must be a non-negative integer"):
        DaskExecutor(ex.client, retries=-1)
    with pytest.raises(ValueError, match="slots_per_worker must be a positive integer"):
        DaskExecutor(ex.client, slots_per_worker=0)


@pytest.mark.parametrize("escape", [SystemExit, KeyboardInterrupt, ValueError])
def test_a_raising_done_callback_stays_with_its_job(
    ex: DaskExecutor, escape: type[BaseException]
) -> None:
    """Callbacks run on the executor's collector thread, which resolves every job: what
    one raises is logged there, the callbacks after it run, and later jobs resolve."""
    calls: list[str] = []

    def explode(_: object) -> None:
        raise escape("from a callback")

    future = ex.submit(["true"])
    future.add_done_callback(explode)
    future.add_done_callback(lambda _: calls.append("after"))
    assert future.result(timeout=60) == 0
    assert [f.result(timeout=60) for f in [ex.submit(["true"]) for _ in range(3)]] == [0] * 3
    assert calls == ["after"]


def test_cancel_runs_every_callback_then_raises_what_escaped(ex: DaskExecutor) -> None:
    """On the caller's thread (cancel()), a SystemExit from a callback is raised to the
    caller once every callback has run, as for a local job."""
    gate_future = ex.submit(["sleep", "30"])
    calls: list[str] = []

    def leave(_: object) -> None:
        raise SystemExit(3)

    gate_future.add_done_callback(leave)
    gate_future.add_done_callback(lambda _: calls.append("after"))
    with pytest.raises(SystemExit):
        gate_future.cancel()
    assert gate_future.cancelled() and calls == ["after"]
    assert ex.submit(["true"]).result(timeout=60) == 0


def test_a_failed_batch_fetch_falls_back_to_each_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """Large outcomes are fetched in one request per batch; if that request fails, even
    with asyncio's CancelledError (a BaseException), each is fetched on its own and the
    collector thread lives on."""
    with DaskExecutor.local(n_workers=1, slots_per_worker=1) as executor:
        client = executor.client
        real_gather = client.gather
        calls: list[int] = []

        def gather_failing_once(futures: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(len(futures))
            if len(calls) == 1:
                raise asyncio.CancelledError("injected")
            return real_gather(futures, *args, **kwargs)  # type: ignore[no-untyped-call]

        monkeypatch.setattr(client, "gather", gather_failing_once)
        big = ["sh", "-c", "head -c 100000 /dev/zero"]
        first = executor.run(big, capture_output=True).result(timeout=60)
        second = executor.run(big, capture_output=True).result(timeout=60)
        assert first.stdout == second.stdout == bytes(100_000)
        assert calls[0] == 1 and len(calls) >= 2


def test_an_outcome_this_side_cannot_read_fails_that_job_only(
    ex: DaskExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version skew between the client and a worker: an outcome that does not unpickle
    here fails its own job with an error that says so; the next job is read as usual."""
    real_loads = pickle.loads
    reads: list[int] = []

    def loads_failing_once(payload: bytes) -> Any:
        reads.append(1)
        if len(reads) == 1:
            raise ModuleNotFoundError("No module named 'procexec_of_the_future'")
        return real_loads(payload)

    monkeypatch.setattr("procexec.dask._wire.pickle", SimpleNamespace(loads=loads_failing_once))
    with pytest.raises(RuntimeError, match="cannot read the outcome the worker sent"):
        ex.submit(["true"]).result(timeout=60)
    assert ex.submit(["sh", "-c", "exit 4"]).result(timeout=60) == 4


def test_an_error_of_dasks_own_reaches_the_future() -> None:
    """A task that fails in Dask rather than in the job (here the worker plugin is gone)
    pushes no outcome: the collector's sweep finds the task's error all the same."""
    with DaskExecutor.local(n_workers=1, slots_per_worker=1) as executor:
        executor.client.unregister_worker_plugin(PLUGIN)  # type: ignore[no-untyped-call]
        with pytest.raises(RuntimeError, match="plugin is not on the Dask worker"):
            executor.submit(["true"]).result(timeout=60)


# ------------------------------------------------------------------- worker loss
def _worker_pids(executor: DaskExecutor) -> dict[str, int]:
    return dict(executor.client.run(os.getpid))


def _ancestor(ancestor: int, pid: int) -> bool:
    """Whether ``ancestor`` is ``pid``'s parent (a worker and the job it started)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1]) == ancestor


@pytest.mark.parametrize("retries", [0, 1])
def test_a_lost_worker_leaves_no_orphan(retries: int, tmp_path: Path) -> None:
    """kill -9 of the worker process that runs a job: the job's group is gone within 2 s
    (the worker's guardian), and the job fails naming the worker, or with retries runs
    again on a worker (here it then succeeds: the second run sees the first's mark)."""
    first = tmp_path / "first"
    job = f'if [ -e "{first}" ]; then exit 0; fi; {GROUP_JOB}'
    before = my_children()
    with DaskExecutor.local(n_workers=2, slots_per_worker=1, retries=retries) as executor:
        future = executor.submit(["sh", "-c", job, "job", str(first)])
        pids = [int(p) for p in wait_for_file(first).split()]
        workers = _worker_pids(executor)
        lost = next(address for address, pid in workers.items() if _ancestor(pid, pids[0]))
        os.kill(workers[lost], signal.SIGKILL)
        assert gone_within(pids, 2.0) == [], "the job outlived its worker by 2 s"
        if retries:
            assert future.result(timeout=120) == 0 and future.attempts == 2
        else:
            with pytest.raises(WorkerLostError, match=lost):
                future.result(timeout=120)
    assert not our_leftovers(before)


def test_a_retired_worker_stops_its_job_and_dask_runs_it_elsewhere(tmp_path: Path) -> None:
    """A worker closed gracefully hands its running task back to Dask, which runs it on
    the other worker (here it then succeeds: it sees the first run's mark); the first
    run's process group is stopped on the closing worker, grandchild included."""
    first = tmp_path / "first"
    job = f'if [ -e "{first}" ]; then exit 0; fi; {GROUP_JOB}'
    before = my_children()
    with DaskExecutor.local(n_workers=2, slots_per_worker=1) as executor:
        future = executor.submit(["sh", "-c", job, "job", str(first)])
        pids = [int(p) for p in wait_for_file(first).split()]
        workers = _worker_pids(executor)
        closing = next(address for address, pid in workers.items() if _ancestor(pid, pids[0]))
        executor.client.retire_workers([closing], close_workers=True)
        assert future.result(timeout=60) == 0
        assert future.worker not in (None, closing)
        assert gone_within(pids, 2.0) == [], "the job outlived its worker's close by 2 s"
    assert not our_leftovers(before)


def test_finished_jobs_never_run_again_after_a_worker_is_lost(tmp_path: Path) -> None:
    count = tmp_path / "count"
    with DaskExecutor.local(n_workers=2, slots_per_worker=1) as executor:
        futures = [executor.submit(["sh", "-c", f'echo x >> "{count}"']) for _ in range(4)]
        assert [f.result(timeout=60) for f in futures] == [0] * 4
        pids = _worker_pids(executor)
        for pid in pids.values():
            os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 60
        while True:  # until the scheduler has replaced both (the nannies restart them)
            workers = set(executor.client.scheduler_info()["workers"])
            if len(workers) == 2 and workers.isdisjoint(pids):
                break
            assert time.monotonic() < end, "the workers were not replaced"
            time.sleep(0.05)
        assert executor.submit(["true"]).result(timeout=60) == 0  # the cluster works again
    assert count.read_text().count("x") == 4


def test_a_lost_scheduler_fails_the_job_naming_it(tmp_path: Path) -> None:
    """The scheduler closes while a job runs: its future fails with SchedulerLostError
    naming the scheduler (it carried a bare CancelledError while cancelled() was False)."""
    mark = tmp_path / "mark"
    before = my_children()
    cluster = LocalCluster(  # type: ignore[no-untyped-call]
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        scheduler_port=0,
        dashboard_address="127.0.0.1:0",
        resources={SLOTS: 1},
    )
    try:
        with Client(cluster) as client:  # type: ignore[no-untyped-call]
            executor = DaskExecutor(client)
            future = executor.submit(["sh", "-c", GROUP_JOB, "job", str(mark)])
            wait_for_file(mark)
            address, scheduler = cluster.scheduler_address, cluster.scheduler
            assert scheduler is not None  # a LocalCluster's scheduler runs in this process
            cluster.sync(scheduler.close)  # type: ignore[no-untyped-call]
            with pytest.raises(SchedulerLostError, match=f"scheduler {address} was lost") as lost:
                future.result(timeout=60)
            assert lost.value.scheduler == address and not future.cancelled()
            executor.shutdown()
    finally:
        # Closing the workers asks the lost scheduler first: not for the default 30 s.
        with dask.config.set({"distributed.comm.timeouts.connect": "5s"}):
            cluster.close()
    assert not our_leftovers(before)


# -------------------------------------------------------------------- the command line
def test_cli_runs_the_batch_on_the_cluster(tmp_path: Path) -> None:
    log = tmp_path / "log"
    result = run_cli(
        "--dask", "local:2", "-j", "4", "-k", "--tag", "--joblog", str(log), "--retries", "2",
        "--timeout", "5", "-q", "sh", "-c", 'echo "job $1"; exit $1', "sh", ":::", "0", "1", "0",
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == ["0\tjob 0", "1\tjob 1", "0\tjob 0"]
    rows = log_rows(log)
    assert sorted(int(r[0]) for r in rows) == [1, 2, 3]
    assert all(r[1].startswith("tcp://127.0.0.1:") for r in rows)  # Host: the worker
    assert {int(r[0]): int(r[6]) for r in rows} == {1: 0, 2: 1, 3: 0}
    again = run_cli(
        "--dask", "local:1", "--resume-failed", "--joblog", str(log),
        "-q", "sh", "-c", 'echo "job $1"; exit $1', "sh", ":::", "0", "1", "0", timeout=120,
    )  # fmt: skip
    assert again.stdout == "job 1\n"  # only the failed job ran again


def test_cli_timeout_and_halt_on_the_cluster(tmp_path: Path) -> None:
    log = tmp_path / "log"
    result = run_cli(
        "--dask", "local:2", "-j", "2", "--timeout", "0.5", "--joblog", str(log),
        "sleep", ":::", "30", timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert log_rows(log)[0][6] == "-1"  # timed out: Exitval -1, as GNU parallel logs it
    halted = run_cli(
        "--dask", "local:2", "-j", "2", "--halt", "now,fail=1",
        "-q", "sh", "-c", 'if [ "$1" = x ]; then exit 3; fi; sleep 30', "sh", ":::", "x", "y", "z",
        timeout=120,
    )  # fmt: skip
    assert halted.returncode == 3, halted.stderr  # the failed job's own status, as GNU's
    assert "This job failed" in halted.stderr


def test_cli_replacement_strings_and_bar_on_the_cluster() -> None:
    result = run_cli(
        "--dask", "local:1", "-j", "2", "-k", "--bar", "echo", "{#}", "{}", "{.}",
        ":::", "a.txt", "b.txt", "c.txt", timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1 a.txt a", "2 b.txt b", "3 c.txt c"]
    assert "3/3" in result.stderr  # the bar reached the end


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dask", "nowhere"], "--dask takes a scheduler address (tcp://host:8786) or local:N"),
        (["--dask", "local:0"], "--dask local:N needs a number of workers"),
        (["--dask", "local:2", "--memfree", "1G"], "--memfree watch this machine, not the cluster"),
        (["--dask", "local:2", "-u"], "-u prints from this machine's pipes"),
        (["--dask", "local:2", "--line-buffer"], "--line-buffer prints from this machine's pipes"),
    ],
)
def test_cli_dask_usage_errors(args: list[str], message: str) -> None:
    result = run_cli(*args, "echo", ":::", "1")
    assert result.returncode == 255 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
