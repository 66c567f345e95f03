"""Signals at unlucky moments, fork() and preexec_fn, and the timeout racing an exit (issue 17).

A KeyboardInterrupt can land on any bytecode of the main thread. The deterministic tests
raise it at the worst places (while ``submit()`` starts a lane's thread, in the middle of
``shutdown(cancel_futures=True)``, while the ``with`` block stops its jobs); the randomized
one fires an interval timer microseconds into each operation, hundreds of times, in a child
interpreter, and checks the promises after every trial.
"""

from __future__ import annotations

import concurrent.futures
import os
import random
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from procexec import ProcessExecutor, ProcessFuture
from procexec._core._reaper import Reaper
from tests._helpers import Gate, assert_lanes_end, last_json, my_children, run_script

pytestmark = pytest.mark.usefixtures("reaper_path")


# ------------------------------------------------------------- Ctrl-C at the worst places
@pytest.mark.parametrize("when", ["before-the-thread-runs", "after-the-thread-runs"])
def test_interrupt_while_submit_starts_a_lane_thread(
    monkeypatch: pytest.MonkeyPatch, no_fd_leak: None, when: str
) -> None:
    """``Thread.start()`` waits for the new thread to run; an interrupt there once left the
    thread polling a closed wake pipe for ever, and closed its fds twice."""
    real_start = threading.Thread.start
    armed = [True]

    def start(self: threading.Thread) -> None:
        if armed and self.name.startswith("procexec-reaper"):
            armed.clear()
            if when == "after-the-thread-runs":
                real_start(self)
            raise KeyboardInterrupt
        real_start(self)

    ex = ProcessExecutor(1)
    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(KeyboardInterrupt):
        ex.submit(["true"])
    assert not armed
    assert ex.submit(["sh", "-c", "exit 3"]).result(timeout=30) == 3
    ex.shutdown(wait=True)
    assert_lanes_end(ex)


def test_interrupt_in_the_middle_of_cancelling_loses_no_future(
    monkeypatch: pytest.MonkeyPatch, gate: Gate
) -> None:
    """The queue was emptied under the lock and cancelled outside it: an interrupt in between
    left thousands of futures pending for ever."""
    ex = ProcessExecutor(1)
    blocker = ex.submit(["cat"], stdin=gate.read_fd)
    queued = [ex.submit(["true"]) for _ in range(2000)]
    real_cancel = ProcessFuture.cancel
    calls = [0]

    def cancel(self: ProcessFuture[Any]) -> bool:
        calls[0] += 1
        if calls[0] == 10:
            raise KeyboardInterrupt
        return real_cancel(self)

    with monkeypatch.context() as patch:
        patch.setattr(ProcessFuture, "cancel", cancel)
        with pytest.raises(KeyboardInterrupt):
            ex.shutdown(wait=False, cancel_futures=True)
    gate.open()
    ex.shutdown(wait=True)
    _, not_done = concurrent.futures.wait(queued, timeout=30)
    assert not not_done, f"{len(not_done)} futures never resolved"
    assert all(f.cancelled() for f in queued)
    assert blocker.result() == 0
    assert_lanes_end(ex)


def test_second_interrupt_while_the_block_stops_its_jobs_still_stops_and_reaps_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first Ctrl-C leaves the block; a second one lands while it cancels the waiting
    jobs. The jobs ignore SIGTERM and the grace period is long, so only the SIGKILL that a
    second interrupt calls for ends them soon; either way all are reaped before it leaves."""
    real_cancel = ProcessFuture.cancel
    armed = [False]

    def cancel(self: ProcessFuture[Any]) -> bool:
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt("second")
        return real_cancel(self)

    monkeypatch.setattr(ProcessFuture, "cancel", cancel)
    futures: list[ProcessFuture[int]] = []
    with (
        pytest.raises(KeyboardInterrupt),
        ProcessExecutor(2, term_sequence=[(signal.SIGTERM, 300)]) as ex,
    ):
        futures += [_ignoring_sigterm(ex) for _ in range(2)]
        futures += [ex.submit(["true"]) for _ in range(50)]
        armed[0] = True
        raise KeyboardInterrupt("first")
    assert not armed[0], "the second interrupt was not raised"
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures[:2]] == [-signal.SIGKILL] * 2
    assert all(f.cancelled() for f in futures[2:])
    assert not my_children()


def test_interrupt_while_the_abort_joins_kills_and_reaps(monkeypatch: pytest.MonkeyPatch) -> None:
    real_join = Reaper.join
    armed = [True]

    def join(self: Reaper) -> None:
        if armed[0]:
            armed[0] = False
            raise KeyboardInterrupt("second")
        real_join(self)

    monkeypatch.setattr(Reaper, "join", join)
    with pytest.raises(KeyboardInterrupt), ProcessExecutor(1, term_sequence=[(15, 300)]) as ex:
        future = _ignoring_sigterm(ex)
        raise KeyboardInterrupt("first")
    assert future.result(timeout=0) == -signal.SIGKILL
    assert not my_children()


def test_ctrl_c_in_the_wait_of_shutdown_still_reaps_before_it_propagates() -> None:
    """A real interrupt of a blocked wait. In CPython 3.11 an interrupted ``Thread.join()``
    marks the thread, still running, as stopped, and every later ``join()`` returns at once:
    the stopping and reaping that follows must not rely on it."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    ex = ProcessExecutor(1, term_sequence=[(signal.SIGTERM, 0.5)])
    future = _ignoring_sigterm(ex)  # stopped only by the SIGKILL after the grace period
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)  # the job runs 300 s: shutdown still waits
        with pytest.raises(KeyboardInterrupt):
            ex.shutdown(wait=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert future.done(), "shutdown let the interrupt out before the job was reaped"
    assert future.result() == -signal.SIGKILL
    assert not my_children()


def _ignoring_sigterm(ex: ProcessExecutor) -> ProcessFuture[int]:
    """Submit ``sleep 300`` ignoring SIGTERM; return once it ignores it."""
    ready_r, ready_w = os.pipe()
    try:
        script = f"trap '' TERM; echo > /dev/fd/{ready_w}; exec sleep 300"
        future = ex.submit(["sh", "-c", script], pass_fds=(ready_w,))
        assert future.wait_started(30)  # spawned: it has its copy of the write end
    finally:
        os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"\n"
    finally:
        os.close(ready_r)
    return future


#: Hundreds of trials; in each an interval timer raises KeyboardInterrupt a random few
#: microseconds into one operation. After each: every future resolved, the lanes' threads
#: gone, no child left; after all: the same fds open as before.
INTERRUPTED_TRIALS = r"""
import json, os, random, signal, sys, threading, time
from procexec import ProcessExecutor
from procexec._core._resources._guardian import GUARDIAN

window, trials, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
fired = [0]
armed = [False]

at_exit_entry = [0]

def interrupt(signum, frame):
    # The signal may be taken by another thread and handled here a little after the timer
    # was disarmed: only interrupt while the window is open.
    if armed[0]:
        armed[0] = False
        fired[0] += 1
        if frame.f_code.co_qualname == "ProcessExecutor.__exit__" and frame.f_lasti == 0:
            at_exit_entry[0] += 1  # on __exit__'s first instruction: see docs/guarantees.md
        raise KeyboardInterrupt

def arm(delay):
    armed[0] = True
    signal.setitimer(signal.ITIMER_REAL, delay)

def children():  # the guardian (this process's own helper: _core._resources._guardian) left out
    pids = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                pids.update(f.read().split())
        except FileNotFoundError:  # that thread ended meanwhile
            pass
    return {pid for pid in pids if pid != str(GUARDIAN.pid)}

signal.signal(signal.SIGALRM, interrupt)
GUARDIAN.start()  # its pipe and registry are held for good: not a leak
fds_before = sorted(os.listdir("/proc/self/fd"))
problems = []
entries = 0
# The timer fires at a random moment within about how long the operation takes when it is
# not interrupted (re-measured as trials go).
longest = {"submit": 300e-6, "cancel": 3e-3, "exit": 3e-3}[window]
for trial in range(trials):
    interrupted = False
    # The stuck jobs ignore SIGTERM: only the SIGKILL that a second interrupt calls for, or
    # the end of this grace period, stops them.
    ex = ProcessExecutor(2, term_sequence=[(signal.SIGTERM, 0.5)])
    gate_r, gate_w = os.pipe()
    futures = []
    stuck = ["sh", "-c", "trap '' TERM; exec cat"]
    try:
        try:
            if window == "cancel":
                futures += [ex.submit(stuck, stdin=gate_r) for _ in range(2)]
                futures += [ex.submit(["true"]) for _ in range(300)]
            began = time.perf_counter()
            if window != "exit":
                arm(rng.uniform(1e-6, longest))
            if window == "submit":
                for _ in range(3):
                    futures.append(ex.submit(["true"]))
            elif window == "cancel":
                ex.shutdown(wait=False, cancel_futures=True)
            else:
                with ex:
                    futures += [ex.submit(stuck, stdin=gate_r) for _ in range(2)]
                    futures += [ex.submit(["true"]) for _ in range(300)]
                    arm(rng.uniform(20e-6, longest))
                    raise KeyboardInterrupt  # the first Ctrl-C; the timer is the second
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            armed[0] = False
    except KeyboardInterrupt:
        interrupted = True
    if not interrupted and window != "exit":
        longest = max(20e-6, 1.2 * (time.perf_counter() - began))
    if at_exit_entry[0]:
        # The one point left (docs/guarantees.md): __exit__ did not start. Do what it would
        # have done, and check the rest as in every other trial.
        entries += 1
        ex._block.leave()
    elif window == "exit" and not all(f.done() for f in futures):
        problems.append(f"trial {trial}: the block exited with jobs not done")
    at_exit_entry[0] = 0
    os.close(gate_w)
    ex.shutdown(wait=True)
    os.close(gate_r)
    if not all(f.done() for f in futures):
        problems.append(f"trial {trial}: {sum(not f.done() for f in futures)} futures unresolved")
    name = ex._reaper._name
    for thread in threading.enumerate():
        # A Thread whose start() was interrupted stays listed, never alive: not ours to join.
        if thread.name.split("-lane")[0] == name and thread.is_alive():
            thread.join(30)
            if thread.is_alive():
                problems.append(f"trial {trial}: {thread.name} still runs")
    if children():
        problems.append(f"trial {trial}: children left {children()}")
fds_after = sorted(os.listdir("/proc/self/fd"))
if fds_after != fds_before:
    problems.append(f"fds before {fds_before}, after {fds_after}")
print(json.dumps({"fired": fired[0], "entries": entries, "problems": problems[:10]}))
"""


@pytest.mark.parametrize("window", ["submit", "cancel", "exit"])
def test_interrupts_at_random_moments_break_no_promise(reaper_path: str, window: str) -> None:
    trials = 300
    # Not measured by coverage: the interrupts would land in its tracer's Python code too,
    # which is not interrupt-safe (a lane then blocks in it for ever, holding our lock).
    # Every other test measures the same code.
    unmeasured = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    seed = str(random.randrange(1 << 30))
    proc = run_script(
        INTERRUPTED_TRIALS, reaper_path, window, str(trials), seed, timeout=100, env=unmeasured
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = last_json(proc)
    assert report["problems"] == []
    assert report["fired"] >= trials // 4, "the timer should interrupt many operations"
    assert report["entries"] <= trials // 20, "landing on __exit__'s entry should be rare"


# ------------------------------------------------------------------------------ SIGHUP
def test_sighup_left_alone_when_the_program_ignores_it() -> None:
    """``nohup`` sets SIGHUP to SIG_IGN: the block must keep that."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with ProcessExecutor(1) as ex:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert ex.submit(["true"]).result(timeout=30) == 0
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


# ------------------------------------------------------------------- fork(), preexec_fn
def test_preexec_fn_does_not_run_the_fork_handler_in_the_child(tmp_path: Path, gate: Gate) -> None:
    """A ``preexec_fn`` makes subprocess run the at-fork child handlers in the child before
    exec. The handler once failed every running job's future there, running their
    done-callbacks a second time in that child."""
    log = tmp_path / "callbacks"

    def record(_: object) -> None:
        with open(log, "a") as file:
            file.write(f"{os.getpid()}\n")

    with ProcessExecutor(3) as ex:
        running = [ex.submit(["cat"], stdin=gate.read_fd) for _ in range(2)]
        for future in running:
            future.add_done_callback(record)
        assert all(f.wait_started(30) for f in running)
        assert ex.submit(["true"], preexec_fn=os.getpid).result(timeout=30) == 0
        assert subprocess.run(["true"], preexec_fn=os.getpid, check=False).returncode == 0
        gate.open()
        assert [f.result(timeout=30) for f in running] == [0, 0]
    assert log.read_text().splitlines() == [str(os.getpid())] * 2


FORK_WHILE_STARTING = """
import json, os, sys
from procexec import ProcessExecutor
ex = ProcessExecutor(2)
ready_r, ready_w = os.pipe()
gate_r, gate_w = os.pipe()

def hold_the_start():  # runs in the new child before exec: the lane waits in Popen meanwhile
    os.write(ready_w, b"r")
    os.read(gate_r, 1)

future = ex.submit(["sh", "-c", "exit 6"], preexec_fn=hold_the_start)
os.read(ready_r, 1)  # the lane is now inside Popen for this job
child = os.fork()
if child == 0:
    try:
        error = future.exception(timeout=10)
        os._exit(0 if isinstance(error, RuntimeError) and "fork" in str(error) else 1)
    except BaseException:
        os._exit(2)
os.write(gate_w, b"g")
_, status = os.waitpid(child, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), future.result(timeout=30)]))
ex.shutdown()
"""


def test_fork_while_a_lane_starts_a_job_fails_that_jobs_future_in_the_child(
    reaper_path: str,
) -> None:
    proc = run_script(FORK_WHILE_STARTING, reaper_path)
    assert proc.returncode == 0, proc.stderr
    assert last_json(proc) == [0, 6]


# ------------------------------------------------------------ a timeout racing the exit
def test_timed_out_only_when_the_stop_signal_reached_a_live_child() -> None:
    """Tiny timeouts on ``true`` race its own exit. ``true`` does not catch SIGTERM, so a
    stop signal that reached it alive shows as -SIGTERM; an exit status of 0 means the
    signal came too late, and the job did not time out."""
    rng = random.Random(17)
    with ProcessExecutor(2) as ex:
        submitted = [ex.submit(["true"], timeout=rng.uniform(0, 0.002)) for _ in range(1000)]
        ran = [ex.run(["true"], timeout=rng.uniform(0, 0.002)) for _ in range(1000)]
        statuses = [(f.result(timeout=60), f.timed_out) for f in submitted]
        runs = [(f.exception(timeout=60), f.popen, f.timed_out) for f in ran]
    wrong = [s for s in statuses if s[1] != (s[0] == -signal.SIGTERM)]
    assert not wrong, f"{len(wrong)} of {len(statuses)} wrong, e.g. {wrong[:3]}"
    for error, popen, timed_out in runs:
        assert popen is not None
        assert timed_out == isinstance(error, subprocess.TimeoutExpired)
        assert timed_out == (popen.returncode == -signal.SIGTERM), (error, popen.returncode)
    outcomes = {timed_out for _, timed_out in statuses}
    assert outcomes == {True, False}, "the timeouts should both win and lose the race"
