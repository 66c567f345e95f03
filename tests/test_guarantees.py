"""The promises of docs/guarantees.md under faults, load and misuse (issue 7).

Child interpreters are used where the test changes process-wide state: signals to the
parent, interpreter exit, rlimits, fork(). Each prints one JSON line the test checks.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import os
import resource
import signal
import subprocess
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procexec import JobResult, ProcessExecutor, ProcessFuture
from procexec._core._resources import _limits
from tests._helpers import (
    ErrorRecords,
    assert_dies,
    is_running,
    lane_threads,
    last_json,
    my_children,
    py_on_path,
    run_script,
    signal_other_thread,
)

pytestmark = pytest.mark.usefixtures("reaper_path")


# ------------------------------------------------------------- exactly once, whatever happens
COMMANDS: dict[str, tuple[list[str], dict[str, Any]]] = {
    "exit0": (["true"], {}),
    "exit3": (["sh", "-c", "exit 3"], {}),
    "crash": (["sh", "-c", "kill -SEGV $$"], {}),
    "missing": (["/nonexistent/procexec-test"], {}),
    "slow": (["sleep", "0.2"], {}),
    "timeout": (["sleep", "30"], {"timeout": 0.05}),
    "ignores-term": (["sh", "-c", "trap '' TERM; sleep 30"], {"timeout": 0.05}),
}

OPERATIONS = st.one_of(
    st.tuples(st.sampled_from(["submit", "run"]), st.sampled_from(sorted(COMMANDS))),
    st.tuples(st.sampled_from(["cancel", "terminate", "kill"]), st.integers(0, 50)),
    st.tuples(st.just("resize"), st.integers(1, 4)),
    st.tuples(st.sampled_from(["terminate_jobs", "kill_jobs"]), st.none()),
    st.tuples(st.just("shutdown"), st.booleans()),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(OPERATIONS, min_size=1, max_size=30))
def test_property_every_future_resolves_exactly_once(ops: list[tuple[str, Any]]) -> None:
    errors = ErrorRecords()
    logging.getLogger("procexec").addHandler(errors)
    calls: Counter[int] = Counter()
    futures: list[ProcessFuture[Any]] = []
    shut = False
    ex = ProcessExecutor(2, term_sequence=[(signal.SIGTERM, 0.1)])
    try:
        for op, arg in ops:
            shut = _apply(ex, op, arg, futures, calls, shut=shut)
    finally:
        ex.shutdown(wait=True)
        logging.getLogger("procexec").removeHandler(errors)
    for future in futures:
        assert future.done()
        _check_outcome(future)
    assert all(calls[id(f)] == 1 for f in futures), "a done-callback ran other than once"
    assert not errors.records, [r.getMessage() for r in errors.records]
    for pid in my_children():  # killed grandchildren we adopted as subreaper: dead, unreaped
        assert_dies(pid)


def _apply(
    ex: ProcessExecutor,
    op: str,
    arg: Any,
    futures: list[ProcessFuture[Any]],
    calls: Counter[int],
    *,
    shut: bool,
) -> bool:
    """Apply one operation; return whether the executor is now shut down."""
    if op in ("submit", "run"):
        argv, kwargs = COMMANDS[arg]
        call = ex.submit if op == "submit" else ex.run
        try:
            future: ProcessFuture[Any] = call(argv, **kwargs)
        except RuntimeError:
            assert shut, "a submit was refused before shutdown"
            return shut
        future.add_done_callback(lambda f: calls.update([id(f)]))
        futures.append(future)
    elif op in ("cancel", "terminate", "kill") and futures:
        getattr(futures[arg % len(futures)], op)()
    elif op == "resize":
        ex.max_jobs = arg
    elif op in ("terminate_jobs", "kill_jobs"):
        getattr(ex, op)()
    elif op == "shutdown":
        ex.shutdown(wait=False, cancel_futures=arg)
        return True
    return shut


def _check_outcome(future: ProcessFuture[Any]) -> None:
    if future.cancelled():
        with pytest.raises(CancelledError):
            future.result()
        return
    error = future.exception()
    if error is None:
        assert isinstance(future.result(), (int, JobResult))
    else:
        assert isinstance(error, (FileNotFoundError, subprocess.TimeoutExpired)), repr(error)


# ------------------------------------------------------------------ nothing left behind
def test_executor_dropped_without_shutdown_finishes_its_jobs_and_its_thread() -> None:
    ex = ProcessExecutor(2)
    futures = [ex.submit(["sh", "-c", "exit 7"]) for _ in range(6)]
    lanes = lane_threads(ex)
    del ex
    gc.collect()
    assert [f.result(timeout=30) for f in futures] == [7] * 6
    assert lanes
    for thread in lanes:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert not my_children()


INTERPRETER_EXIT = """
import json, os, sys
from procexec import ProcessExecutor
ex = ProcessExecutor(2, at_exit=sys.argv[1])
gate_r, gate_w = os.pipe()
futures = [ex.submit(["sh", "-c", "read x; echo finished >> " + sys.argv[2]], stdin=gate_r)
           for _ in range(3)]
futures[0].wait_started()
futures[1].wait_started()
print(json.dumps([f.pid for f in futures[:2]]), flush=True)
if sys.argv[1] == "wait":
    os.close(gate_w)   # the jobs can finish; the interpreter must wait for all three
"""


def test_interpreter_exit_waits_for_jobs_by_default(reaper_path: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = run_script(INTERPRETER_EXIT, reaper_path, "wait", str(log))
    assert proc.returncode == 0, proc.stderr
    assert log.read_text().splitlines() == ["finished"] * 3


def test_interpreter_exit_stops_jobs_with_at_exit_stop(reaper_path: str, tmp_path: Path) -> None:
    log = tmp_path / "log"
    proc = run_script(INTERPRETER_EXIT, reaper_path, "stop", str(log))
    assert proc.returncode == 0, proc.stderr
    pids = last_json(proc)
    # Stopped and reaped by the interpreter before it ended: not even a zombie is left.
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
    assert not log.exists()


ABANDONED_BLOCK = """
import json
from procexec import ProcessExecutor
ex = ProcessExecutor(1)
ex.__enter__()  # and no __exit__: as when an interrupt lands on its first instruction
future = ex.submit(["sleep", "300"])
future.wait_started()
print(json.dumps([future.pid]), flush=True)
"""


def test_a_with_block_left_without_its_exit_has_its_jobs_stopped_at_interpreter_exit(
    reaper_path: str,
) -> None:
    proc = run_script(ABANDONED_BLOCK, reaper_path)
    assert proc.returncode == 0, proc.stderr
    assert [pid for pid in last_json(proc) if Path(f"/proc/{pid}").exists()] == []


WAITING_AT_EXIT = """
import json, os, sys
from procexec import ProcessExecutor
from procexec._core._reaper import Reaper
ex = ProcessExecutor(1)
future = ex.submit(["sleep", "300"])
future.wait_started()
print(json.dumps([future.pid]), flush=True)

def tell_when_the_exit_hook_joins(frame, event, arg):
    if event == "call" and frame.f_code is Reaper.join.__code__:
        sys.setprofile(None)
        print("joining", flush=True)

sys.setprofile(tell_when_the_exit_hook_joins)
"""


def test_ctrl_c_while_the_interpreter_waits_for_jobs_at_exit_stops_and_reaps_them(
    reaper_path: str,
) -> None:
    with subprocess.Popen(
        py_on_path(textwrap.dedent(WAITING_AT_EXIT), reaper_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as parent:
        assert parent.stdout is not None
        pids = json.loads(parent.stdout.readline())
        assert parent.stdout.readline() == "joining\n"
        try:
            err = _interrupt_until_it_exits(parent)
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert "KeyboardInterrupt" in err
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == [], "not reaped"


def _interrupt_until_it_exits(process: subprocess.Popen[str], seconds: float = 60) -> str:
    """Send SIGINT, again every half second as a user would press Ctrl-C again, until
    ``process`` exits; return its stderr. A SIGINT whose handler runs just before the main
    thread blocks in a lock wait is acted on only when that wait ends: CPython's own
    behaviour (docs/guarantees.md), which a second Ctrl-C gets past."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        process.send_signal(signal.SIGINT)
        try:
            return process.communicate(timeout=0.5)[1]
        except subprocess.TimeoutExpired:
            continue
    process.kill()
    process.communicate()
    pytest.fail(f"still running {seconds}s after the first Ctrl-C")


def test_bad_at_exit_is_refused() -> None:
    with pytest.raises(ValueError, match="at_exit"):
        ProcessExecutor(1, at_exit="later")  # type: ignore[arg-type]


# ------------------------------------------------------------- signals to the parent
SIGNALLED_PARENT = """
import concurrent.futures, json, os, sys
from procexec import ProcessExecutor
r, w = os.pipe()
job = f"trap '' TERM; sleep 300 & echo $! >&{w}; wait"
with ProcessExecutor(2, term_sequence=[(15, 0.2)]) as ex:
    futures = [ex.submit(["sh", "-c", job], pass_fds=(w,)) for _ in range(2)]
    futures.append(ex.submit(["sleep", "300"]))  # waits for a slot: cancelled
    report = os.fdopen(r)
    grandchildren = [int(report.readline()) for _ in range(2)]
    assert all(f.wait_started(30) for f in futures[:2])  # their pids are set
    print(json.dumps([f.pid for f in futures[:2]] + grandchildren), flush=True)
    if sys.argv[1] == "block":
        for f in futures:
            f.result()
    else:
        while not all(f.done() for f in futures):
            concurrent.futures.wait(futures, timeout=0.5)
"""


def _signal_parent(argv: list[str], send: Callable[[int], None]) -> tuple[int, str, list[int]]:
    """Start ``argv``, read the pids it reports on its first line, call ``send`` with its
    pid, and return its exit status, its stderr and those pids once it has ended. If it has
    not ended within a minute, kill it and the pids and fail."""
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        pids: list[int] = json.loads(parent.stdout.readline())
        send(parent.pid)
        try:
            _, err = parent.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for pid in [parent.pid, *pids]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            parent.communicate()
            pytest.fail("the parent was still running a minute after the signal")
    return parent.returncode, err, pids


@pytest.mark.parametrize(
    ("signum", "status", "wait"),
    [
        (signal.SIGTERM, 143, "block"),
        (signal.SIGHUP, 129, "block"),  # the terminal closing: treated like SIGTERM
        (signal.SIGINT, -2, "bounded"),
    ],
)
def test_signalled_parent_stops_and_reaps_its_jobs_and_their_groups(
    reaper_path: str, signum: int, status: int, wait: str
) -> None:
    """The parent is signalled as soon as it reports, so the signal may land just before its
    main thread blocks in a lock wait; CPython then runs the Python handler only when that
    wait ends. procexec covers SIGTERM (its watch thread stops the jobs, the wait ends, the
    handler raises), so the SIGTERM case waits without a timeout. SIGINT is Python's own
    KeyboardInterrupt and has no such cover, so that case waits in bounded steps. SIGHUP is
    treated as SIGTERM is."""
    returncode, err, pids = _signal_parent(
        [*py_on_path(textwrap.dedent(SIGNALLED_PARENT), reaper_path), wait],
        lambda pid: os.kill(pid, signum),
    )
    assert returncode == status, err
    jobs, grandchildren = pids[:2], pids[2:]
    assert [pid for pid in jobs if Path(f"/proc/{pid}").exists()] == [], "jobs not reaped"
    for pid in grandchildren:  # they ignore SIGTERM: only the SIGKILL after grace ends them
        assert_dies(pid)


#: Two executors' blocks, one inside the other; the main thread then blocks on the inner
#: one's job with no timeout.
SIGTERM_ON_ANOTHER_THREAD = """
import json
from procexec import ProcessExecutor
with ProcessExecutor(1) as outer, ProcessExecutor(1) as inner:
    futures = [outer.submit(["sleep", "300"]), inner.submit(["sleep", "300"])]
    assert all(f.wait_started(30) for f in futures)
    print(json.dumps([f.pid for f in futures]), flush=True)
    futures[1].result()
"""


def test_sigterm_taken_by_another_thread_still_stops_every_block(reaper_path: str) -> None:
    """The kernel may hand a process-directed signal to any thread. Taken on a thread other
    than the main one, it does not interrupt the main thread's lock wait; without the watch
    thread the parent would wait for ``sleep 300``."""
    returncode, err, jobs = _signal_parent(
        py_on_path(textwrap.dedent(SIGTERM_ON_ANOTHER_THREAD), reaper_path),
        lambda pid: signal_other_thread(pid, signal.SIGTERM),
    )
    assert returncode == 143, err
    assert [pid for pid in jobs if Path(f"/proc/{pid}").exists()] == [], "jobs not reaped"


# ------------------------------------------------------------------ jobs that misbehave
def _others_complete(ex: ProcessExecutor) -> None:
    """Jobs submitted next to a misbehaving one still run to the end."""
    assert [
        f.result(timeout=30) for f in [ex.submit(["sh", "-c", "exit 5"]) for _ in range(4)]
    ] == [5] * 4


def test_job_closing_its_stdout_early() -> None:
    with ProcessExecutor(2) as ex:
        future = ex.run(["sh", "-c", "exec >&-; echo still here >&2"], capture_output=True)
        _others_complete(ex)
        result = future.result(timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"still here\n")


def test_job_flooding_stderr() -> None:
    with ProcessExecutor(2) as ex:
        future = ex.run(
            ["sh", "-c", "head -c 8388608 /dev/zero >&2; echo out"],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        _others_complete(ex)
        result = future.result(timeout=60)
    assert (result.stdout, len(result.stderr)) == (b"out\n", 8 << 20)


def test_job_reading_stdin_forever() -> None:
    with ProcessExecutor(2) as ex, open("/dev/zero", "rb") as endless:
        future = ex.submit(["cat"], stdin=endless, stdout=subprocess.DEVNULL)
        _others_complete(ex)
        assert not future.done()
        future.terminate()
        assert future.result(timeout=30) == -signal.SIGTERM


def test_job_forking_a_daemon_that_keeps_the_pipe_open() -> None:
    with ProcessExecutor(2) as ex:
        future = ex.run(["sh", "-c", "setsid sleep 300 & echo $!"], capture_output=True)
        _others_complete(ex)
        result = future.result(timeout=30)
    daemon = int(result.stdout)
    try:
        assert result.returncode == 0
        assert is_running(daemon), "the result came only after the daemon was gone"
    finally:
        os.kill(daemon, signal.SIGKILL)
        assert_dies(daemon)


def test_job_exiting_before_its_input_was_written() -> None:
    with ProcessExecutor(2) as ex:
        future = ex.run(["true"], input=b"x" * (8 << 20))
        _others_complete(ex)
        assert future.result(timeout=30).returncode == 0


# ------------------------------------------------------------------ resource exhaustion
OPEN_FILE_LIMIT = """
import errno, json, os, resource, sys
from procexec import ProcessExecutor
gate_r, gate_w = os.pipe()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
low = len(os.listdir("/proc/self/fd")) + 24  # lanes, signal watch, a few jobs
resource.setrlimit(resource.RLIMIT_NOFILE, (low, low if sys.argv[1] == "fixed" else hard))
with ProcessExecutor(8) as ex:
    futures = [ex.run(["sh", "-c", "read x; echo ok"], stdin=gate_r, capture_output=True)
               for _ in range(8)]
    for f in futures:
        f.wait_started()  # started, or failed to start
    os.close(gate_w)
    outcomes = []
    for f in futures:
        error = f.exception()
        outcomes.append(f.result().stdout.decode() if error is None
                        else [error.errno, str(error)])
print(json.dumps({"outcomes": outcomes, "low": low,
                  "soft": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}))
"""


def test_too_many_open_files_fails_those_jobs_and_names_the_limit(reaper_path: str) -> None:
    report = last_json(run_script(OPEN_FILE_LIMIT, reaper_path, "fixed"))
    outcomes = report["outcomes"]
    failed = [o for o in outcomes if o != "ok\n"]
    assert failed, "the lowered limit should have stopped some starts"
    assert len(failed) < len(outcomes), "the jobs that could start should have run"
    for errno_, message in failed:
        assert errno_ == errno.EMFILE
        assert (
            f"at most {report['low']} open (RLIMIT_NOFILE soft limit, hard limit {report['low']})"
            in message
        ), message


def test_soft_open_file_limit_is_raised_to_the_hard_limit(reaper_path: str) -> None:
    report = last_json(run_script(OPEN_FILE_LIMIT, reaper_path, "raisable"))
    assert report["outcomes"] == ["ok\n"] * 8
    assert report["soft"] > report["low"]


def test_a_start_failing_while_another_lane_raised_the_limit_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two lanes hit EMFILE at once; the first raises the soft limit to the hard one, so the
    second cannot raise it again but must still retry (a full test run once failed a job
    this way)."""
    limits = {"soft": 100, "hard": 200}
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (limits["soft"], limits["hard"]))
    monkeypatch.setattr(resource, "setrlimit", lambda _which, new: limits.update(soft=new[0]))
    attempts: list[int] = []

    def start() -> str:
        attempts.append(limits["soft"])
        if len(attempts) == 1:
            assert _limits.raise_open_file_limit()  # the other lane, meanwhile
            raise OSError(errno.EMFILE, "Too many open files")
        return "started"

    assert _limits.with_more_files(start) == "started"
    assert attempts == [100, 200]


PROCESS_LIMIT = """
import json, os, resource
from pathlib import Path
from procexec import ProcessExecutor

def tasks_of(uid):
    count = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines())
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) == uid:
            count += int(fields["Threads"])
    return count

if os.getuid() == 0:  # root ignores RLIMIT_NPROC: become nobody first
    os.setgid(65534)
    os.setuid(65534)
from procexec._core._reaper import MAX_LANES, _cores
lanes = min(_cores(), MAX_LANES, 6)  # the reaper's threads for max_jobs=6
# Room for a few children (and their waiter threads on the fallback path), but not six.
# Three, not two: two lanes may start children at once, and on the fallback path the
# second child could take the room of the first one's waiter thread, failing both.
gate_r, gate_w = os.pipe()
with ProcessExecutor(6) as ex:  # its signal watch thread runs from here on: counted below
    limit = tasks_of(os.getuid()) + lanes + 3
    resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))
    futures = [ex.submit(["sh", "-c", "read x; exit 4"], stdin=gate_r) for _ in range(6)]
    for f in futures:
        f.wait_started()
    os.close(gate_w)
    outcomes = [f.result() if f.exception() is None
                else [type(f.exception()).__name__, str(f.exception())] for f in futures]
print(json.dumps(outcomes))
"""


def test_process_creation_failure_fails_those_jobs_and_names_the_limit(reaper_path: str) -> None:
    outcomes = last_json(run_script(PROCESS_LIMIT, reaper_path))
    failed = [o for o in outcomes if o != 4]
    assert 4 in outcomes, "the job that could start should have run"
    assert failed, "the process limit should have stopped some starts"
    for kind, message in failed:
        assert kind == "BlockingIOError"
        assert "RLIMIT_NPROC" in message, message


def test_thread_that_cannot_start_fails_the_submit_and_queues_nothing(
    monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with ProcessExecutor(1) as ex:
        with monkeypatch.context() as patch:
            patch.setattr(threading.Thread, "start", refuse)
            with pytest.raises(RuntimeError, match="can't start new thread"):
                ex.submit(["sh", "-c", "exit 1"])
        assert ex.submit(["sh", "-c", "exit 2"]).result(timeout=30) == 2


# ------------------------------------------------------------------------------ fork()
FORK = """
import json, os, sys
from procexec import ProcessExecutor
ex = ProcessExecutor(2)
gate_r, gate_w = os.pipe()
hold_r, hold_w = os.pipe()
reader = "import os, sys; os.read(int(sys.argv[1]), 1); sys.stdin.buffer.read(); print('eof')"
# More input than a pipe holds: the executor keeps the stdin pipe open until the job reads.
future = ex.run([sys.executable, "-c", reader, str(gate_r)], input=b"x" * (1 << 20),
                capture_output=True, pass_fds=(gate_r,))
future.wait_started()
child = os.fork()
if child == 0:
    os.close(hold_w)
    checks = []
    try:
        ex.submit(["true"])
    except RuntimeError as e:
        checks.append("fork()" in str(e))
    checks.append(isinstance(future.exception(timeout=5), RuntimeError))
    os.read(hold_r, 1)  # stay alive, holding whatever fds were not closed, until told
    os._exit(0 if checks == [True, True] else 1)
os.write(gate_w, b"g")  # the job now reads its stdin: it ends only if the fork closed its copy
result = future.result(timeout=30)
os.close(hold_w)
_, status = os.waitpid(child, 0)
with ex:
    after = ex.submit(["sh", "-c", "exit 9"]).result()
print(json.dumps([result.stdout.decode(), os.waitstatus_to_exitcode(status), after]))
"""


def test_fork_in_the_parent_disarms_the_copy_and_leaves_the_parent_working(
    reaper_path: str,
) -> None:
    proc = run_script(FORK, reaper_path)
    assert last_json(proc) == ["eof\n", 0, 9], proc.stderr
