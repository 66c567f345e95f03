"""The guardian: when the parent dies by any means, SIGKILL included, its jobs die too.

Each test starts a real parent (a script, or the ``procexec`` command) whose jobs each
start a grandchild; every process of the tree carries a marker in its argv. The jobs write
their pids to files; once all have, the test kills the parent and scans /proc for the
marker. This test session is a subreaper (conftest.py), so the orphans become its children:
the test reaps them.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from procexec import ProcessExecutor
from procexec._core._resources._guardian import SLOTS, Guardian
from tests._helpers import is_running, reap_adopted_zombies

#: A job: start a grandchild, then record both pids (atomically) and sleep.
JOB = textwrap.dedent(
    """
    import os, subprocess, sys, time
    marker, ready = sys.argv[1], sys.argv[2]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", marker])
    tmp = f"{ready}/.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.rename(tmp, f"{ready}/{os.getpid()}")
    time.sleep(300)
    """
)

#: A parent: start ``n`` jobs in a with block (or not), then wait for ever.
PARENT = textwrap.dedent(
    """
    import os, sys, threading, time
    from procexec import ProcessExecutor
    job, marker, ready, n, mode, fork = sys.argv[1:7]
    options = {} if mode == "default" else {"guardian": mode == "on"}
    ex = ProcessExecutor(max_jobs=int(n), **options)
    if mode != "plain":
        ex.__enter__()
    for _ in range(int(n)):
        ex.submit([sys.executable, "-c", job, marker, ready])
    # Fork once every job has started: a fork while a lane is inside Popen would hand the
    # child Popen's error pipe, and that Popen would wait for the child (CPython's hazard).
    while fork == "fork" and len([f for f in os.listdir(ready) if f[0] != "."]) < int(n):
        time.sleep(0.01)
    if fork == "fork" and os.fork() == 0:  # a child that outlives the parent
        with open(f"{ready}/.forked", "w") as f:
            f.write(str(os.getpid()))
        os.rename(f"{ready}/.forked", f"{ready}/.fork")
        threading.Event().wait()
    threading.Event().wait()
    """
)


class Tree:
    """A parent process and the pids its jobs reported."""

    def __init__(self, tmp_path: Path, argv_of: str, n: int = 3) -> None:
        self.marker = f"procexec-guardian-test-{uuid.uuid4().hex}"
        self.ready = tmp_path / "ready"
        self.ready.mkdir()
        self.n = n
        self.argv_of = argv_of

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        self.parent: subprocess.Popen[bytes] = subprocess.Popen(argv, **kwargs)
        return self.parent

    def wait_ready(self, timeout: float = 60) -> list[int]:
        """The pids of every job and grandchild, once all jobs reported them."""
        end = time.monotonic() + timeout
        while len(files := [p for p in self.ready.iterdir() if p.name[0] != "."]) < self.n:
            assert self.parent.poll() is None, "the parent ended before its jobs started"
            assert time.monotonic() < end, f"only {len(files)} of {self.n} jobs started"
            time.sleep(0.01)
        return [int(pid) for path in files for pid in path.read_text().split()]

    def alive(self, ignore: frozenset[int] = frozenset()) -> list[int]:
        """Pids of live (not zombie) processes with the marker in their argv or their
        environment (the workers of calls carry it there), the parent (it has the marker
        too) left out."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in {self.parent.pid, *ignore}:
                continue
            with contextlib.suppress(OSError):
                pid = int(entry.name)
                marked = self.marker.encode() in (entry / "cmdline").read_bytes()
                marked = marked or self.marker.encode() in (entry / "environ").read_bytes()
                if marked and is_running(pid):
                    found.append(pid)
        return found

    def gone_within(self, seconds: float, ignore: frozenset[int] = frozenset()) -> list[int]:
        """Wait until no marked process is alive, or ``seconds``; what is still alive."""
        end = time.monotonic() + seconds
        while (alive := self.alive(ignore)) and time.monotonic() < end:
            time.sleep(0.01)
        return alive

    def cleanup(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        reap_adopted_zombies()  # the killed parent's orphans, the guardian too


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Tree]:
    t = Tree(tmp_path, "script")
    yield t
    if hasattr(t, "parent") and t.parent.poll() is None:
        t.parent.kill()
        t.parent.wait()
    t.cleanup(t.alive())


def _parent_argv(tree: Tree, mode: str, fork: str = "") -> list[str]:
    return [
        sys.executable,
        "-W",
        "ignore::DeprecationWarning",  # fork() in a threaded process, on purpose
        "-c",
        PARENT,
        JOB,
        tree.marker,
        str(tree.ready),
        str(tree.n),
        mode,
        fork or "nofork",
    ]


@pytest.mark.parametrize("mode", ["default", "on"])
def test_sigkilled_parent_takes_its_jobs_and_grandchildren(tree: Tree, mode: str) -> None:
    parent = tree.start(_parent_argv(tree, mode))
    pids = tree.wait_ready()
    assert sorted(tree.alive()) == sorted(pids)  # the scan sees the whole tree
    parent.kill()
    parent.wait()
    assert tree.gone_within(2.0) == []
    tree.cleanup(pids)


def test_without_the_guardian_jobs_outlive_a_sigkilled_parent(tree: Tree) -> None:
    """What the guardian prevents (and proof that the scan would see it)."""
    parent = tree.start(_parent_argv(tree, "off"))
    pids = tree.wait_ready()
    parent.kill()
    parent.wait()
    assert sorted(tree.alive()) == sorted(pids)
    tree.cleanup(pids)


def test_plain_executor_outside_a_with_block_is_not_guarded_by_default(tree: Tree) -> None:
    parent = tree.start(_parent_argv(tree, "plain"))
    pids = tree.wait_ready()
    parent.kill()
    parent.wait()
    assert sorted(tree.alive()) == sorted(pids)
    tree.cleanup(pids)


def test_a_kill_of_the_parents_whole_group_does_not_reach_the_guardian(tree: Tree) -> None:
    """A CI runner's timeout kills the process group: the guardian has a session of its own."""
    parent = tree.start(_parent_argv(tree, "default"), start_new_session=True)
    pids = tree.wait_ready()
    os.killpg(parent.pid, signal.SIGKILL)
    parent.wait()
    assert tree.gone_within(2.0) == []
    tree.cleanup(pids)


def test_a_forked_child_does_not_keep_the_guardian_waiting(tree: Tree) -> None:
    """A child made by os.fork() closes its copy of the pipe, so the parent's death is seen
    while that child lives on."""
    parent = tree.start(_parent_argv(tree, "default", fork="fork"))
    pids = tree.wait_ready()
    end = time.monotonic() + 60
    while not (tree.ready / ".fork").exists():
        assert time.monotonic() < end, "the forked child did not start"
        time.sleep(0.01)
    forked = int((tree.ready / ".fork").read_text())
    parent.kill()
    parent.wait()
    try:
        assert tree.gone_within(2.0, ignore=frozenset({forked})) == []
        assert forked in tree.alive()  # it lives on, holding no pipe end
    finally:
        tree.cleanup([*pids, forked])


def test_the_cli_guards_its_jobs(tree: Tree) -> None:
    argv = [sys.executable, "-m", "procexec", "-j", str(tree.n), "-q", sys.executable, "-c", JOB]
    argv += [tree.marker, str(tree.ready), ":::", *map(str, range(tree.n))]
    # The CLI appends the input as the last argument: JOB ignores it.
    parent = tree.start(argv, stdin=subprocess.DEVNULL)
    pids = tree.wait_ready()
    parent.kill()
    parent.wait()
    assert tree.gone_within(2.0) == []
    tree.cleanup(pids)


def test_the_cli_without_the_guardian(tree: Tree) -> None:
    argv = [sys.executable, "-m", "procexec", "--no-guardian", "-j", str(tree.n), "-q"]
    argv += [sys.executable, "-c", JOB, tree.marker, str(tree.ready), ":::", "1", "2", "3"]
    parent = tree.start(argv, stdin=subprocess.DEVNULL)
    pids = tree.wait_ready()
    parent.kill()
    parent.wait()
    assert sorted(tree.alive()) == sorted(pids)
    tree.cleanup(pids)


#: A parent that logs, for each job its lanes start, whether the guardian ran before the
#: start (``start <ran>``) and the job once it is registered (``registered <pid>``), then
#: starts ``n`` jobs as fast as it can. Its test kills it at a random moment. (It wraps the
#: lane's one call to Popen and the guardian's registration: the two moments compared.)
RACING_PARENT = textwrap.dedent(
    """
    import os, sys, threading
    import procexec._core._lane as lane
    from procexec import ProcessExecutor
    from procexec._core._resources._guardian import GUARDIAN
    marker, ready, n, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    log = os.open(os.path.join(ready, ".log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    popen, watch = lane._popen, GUARDIAN.watch
    def logged_popen(job):
        os.write(log, f"start {GUARDIAN.pid is not None}\\n".encode())
        return popen(job)
    def logged_watch(pid, *, group):
        slot = watch(pid, group=group)
        os.write(log, f"registered {pid}\\n".encode())
        return slot
    lane._popen, GUARDIAN.watch = logged_popen, logged_watch
    job = 'echo $$ > "$1/.$$" && mv "$1/.$$" "$1/$$"; read never'  # stdin: nothing comes
    os.write(log, b"go\\n")
    ex = ProcessExecutor(n, guardian=True) if mode == "on" else ProcessExecutor(n).__enter__()
    for _ in range(n):
        ex.submit(["sh", "-c", job, "sh", ready, marker])
    threading.Event().wait()
    """
)


# ------------------------------------------------------- the workers of Python calls
#: A parent with one busy call (which started a child with the marker in its argv) and one
#: idle worker, both workers with the marker in their environment; then it waits for ever.
CALLS_PARENT = textwrap.dedent(
    """
    import sys, threading
    import procexec._core._platform as platform
    from procexec import ProcessExecutor
    from tests._call_targets import busy_with_a_child, report_pid
    marker, ready, mode, path = sys.argv[1:5]
    platform._force_fallback = path == "fallback"
    options = {"guardian": False} if mode == "guardian=False" else {}
    workers = {"env": {"PROCEXEC_TEST_MARKER": marker}, "idle_timeout": None}
    ex = ProcessExecutor(max_jobs=2, workers=workers, **options)
    if mode == "in a with block":
        ex.__enter__()
    ex.submit_call(busy_with_a_child, marker, ready)
    ex.submit_call(report_pid, ready).result()
    threading.Event().wait()
    """
)


@pytest.mark.parametrize("mode", ["default", "on"])
def test_a_parent_sigkilled_at_random_during_its_first_submits(tmp_path: Path, mode: str) -> None:
    """A parent is killed at a random moment while its first jobs start. Every job starts
    with the guardian already running (the first ones used to start first, then wait
    unregistered while it started, for milliseconds), and no registered job outlives the
    parent by 2 s. A job whose start (fork, exec, the registering store) was under way
    when the parent died is the one gap left (docs/resources.md): killed here."""
    spread = 0.05  # the kill lands within this long of "go"; then fitted to the starts
    for trial in range(12):
        (tmp_path / str(trial)).mkdir()
        tree = Tree(tmp_path / str(trial), "script", n=4)
        log = tree.ready / ".log"
        argv = [sys.executable, "-c", RACING_PARENT, tree.marker, str(tree.ready), "4", mode]
        parent = tree.start(argv, stdin=subprocess.PIPE)
        while "go" not in (log.read_text() if log.exists() else ""):
            assert parent.poll() is None, "the parent ended early"
            time.sleep(0.001)
        go = time.monotonic()
        time.sleep(random.uniform(0, spread))
        parent.kill()
        parent.wait()
        killed_after = time.monotonic() - go
        lines = [line.split() for line in log.read_text().splitlines()[1:]]
        registered = {int(pid) for what, pid in lines if what == "registered"}
        try:
            assert ["start", "False"] not in lines, f"trial {trial}: a job started unguarded"
            left = tree.gone_within(2.0)
            assert not registered & set(left), (
                f"trial {trial}: jobs {sorted(registered & set(left))} outlived their parent,"
                f" killed {killed_after * 1000:.1f} ms after go"
            )
        finally:
            tree.cleanup(tree.alive())
            assert parent.stdin is not None
            parent.stdin.close()
        if len(registered) == 4:  # all started before the kill: aim earlier next time
            spread = max(0.005, killed_after)


@pytest.mark.parametrize("mode", ["outside a with block", "guardian=False", "in a with block"])
def test_a_sigkilled_parent_leaves_no_worker_nor_a_child_of_a_call(
    tmp_path: Path, reaper_path: str, mode: str
) -> None:
    """Each worker holds a lifeline that only the parent writes to: at its end the worker
    kills its own process group, the busy call's child with it, whatever the guardian."""
    tree = Tree(tmp_path, "script", n=2)
    argv = [sys.executable, "-c", CALLS_PARENT, tree.marker, str(tree.ready), mode, reaper_path]
    root = str(Path(__file__).resolve().parent.parent)
    parent = tree.start(argv, env={**os.environ, "PYTHONPATH": root})
    try:
        pids = tree.wait_ready()
        assert sorted(tree.alive()) == sorted(pids)  # 2 workers and the call's child
        assert len(pids) == 3
        parent.kill()
        parent.wait()
        assert tree.gone_within(2.0) == []
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        tree.cleanup(tree.alive())


# ------------------------------------------------------------ in this process
class Recorder:
    """Stands in for the guardian: records what the lanes register and forget."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, bool]] = []
        self._slots: dict[int, int] = {}

    def watch(self, pid: int, *, group: bool) -> int:
        self.calls.append(("watch", pid, group))
        self._slots[pid + 1] = pid
        return pid + 1  # a slot of its own per job

    def forget(self, slot: int) -> None:
        self.calls.append(("forget", self._slots.pop(slot), False))


def test_jobs_are_registered_while_they_run_and_forgotten_when_reaped(
    reaper_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    monkeypatch.setattr("procexec._core._lane.GUARDIAN", recorder)
    with ProcessExecutor(max_jobs=2) as ex:
        grouped = ex.submit(["true"])
        plain = ex.submit(["true"], new_process_group=False)
        captured = ex.run(["true"], capture_output=True)
        failed = ex.run(["true"], capture_output=True, on_stdout_line=lambda line: None)
    with ProcessExecutor(max_jobs=2, guardian=False) as unguarded:
        unguarded.submit(["true"]).result()
    pids = [grouped.pid, plain.pid, captured.result().pid, failed.result().pid]
    watched = [(pid, group) for what, pid, group in recorder.calls if what == "watch"]
    assert sorted(watched) == sorted(
        [(pids[0], True), (pids[1], False), (pids[2], True), (pids[3], True)]
    )
    forgotten = [pid for what, pid, _ in recorder.calls if what == "forget"]
    assert sorted(forgotten) == sorted(pids)  # each exactly once
    for pid in pids:  # registered before it is forgotten
        assert recorder.calls.index(("forget", pid, False)) > next(
            i for i, call in enumerate(recorder.calls) if call[:2] == ("watch", pid)
        )


def test_a_failing_registration_fails_that_job_alone(
    reaper_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What registering a job with the guardian raises (here SystemExit) is that job's
    outcome: its child is killed and reaped, the other jobs run."""
    recorder = Recorder()
    calls = iter([SystemExit(3)])
    register = recorder.watch

    def watch(pid: int, *, group: bool) -> int:
        error = next(calls, None)
        if error is not None:
            raise error
        return register(pid, group=group)

    monkeypatch.setattr(recorder, "watch", watch)
    monkeypatch.setattr("procexec._core._lane.GUARDIAN", recorder)
    with ProcessExecutor(max_jobs=1) as ex:
        first = ex.submit(["sleep", "300"])
        rest = [ex.submit(["true"]) for _ in range(3)]
    error = first.exception()
    assert isinstance(error, RuntimeError) and "raised SystemExit(3)" in str(error)
    assert first.popen is not None and first.popen.returncode == -signal.SIGKILL
    assert [f.result() for f in rest] == [0, 0, 0]


def test_executor_outside_with_is_guarded_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr("procexec._core._lane.GUARDIAN", recorder)
    ex = ProcessExecutor(max_jobs=1, guardian=True)
    future = ex.submit(["true"])
    ex.shutdown()
    assert recorder.calls == [("watch", future.pid, True), ("forget", future.pid, False)]


def test_the_guardian_runs_before_the_first_guarded_job_can_start() -> None:
    """In a fresh interpreter: ``guardian=True`` starts it at construction, the default
    when a ``with`` block begins, ``guardian=False`` never; no job has been submitted."""
    script = textwrap.dedent(
        """
        from procexec import ProcessExecutor
        from procexec._core._resources._guardian import GUARDIAN
        seen = [GUARDIAN.pid is not None]
        ProcessExecutor(1, guardian=False).__enter__()
        seen.append(GUARDIAN.pid is not None)
        default = ProcessExecutor(1)
        seen.append(GUARDIAN.pid is not None)
        default.__enter__()
        seen.append(GUARDIAN.pid is not None)
        print(seen, end=" ")
        """
    )
    on = "from procexec import ProcessExecutor as P\nfrom procexec._core._resources._guardian"
    on += " import GUARDIAN\nP(1, guardian=True)\nprint(GUARDIAN.pid is not None)"
    found = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        for code in (script, on)
    ]
    assert found == ["[False, False, False, True] ", "True\n"]


def test_guardian_option_is_checked() -> None:
    with pytest.raises(TypeError, match="guardian must be None, True or False"):
        ProcessExecutor(guardian="yes")  # type: ignore[arg-type]


def test_a_guardian_that_cannot_start_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    guardian = Guardian()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    assert guardian.watch(1, group=True) == 0
    assert guardian.watch(1, group=True) == 0
    guardian.forget(0)
    assert caplog.text.count("cannot start the guardian") == 1


def test_a_full_registry_leaves_the_rest_unguarded_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    guardian = Guardian()
    first = guardian.watch(os.getpid(), group=False)  # starts it
    monkeypatch.setattr(guardian, "_fresh", iter([SLOTS + 1, SLOTS + 2]))
    assert guardian.watch(os.getpid(), group=False) == 0
    assert guardian.watch(os.getpid(), group=False) == 0
    assert caplog.text.count("unguarded") == 1
    guardian.forget(first)
    _stop_helper(guardian)


def _stop_helper(guardian: Guardian) -> None:
    """End a test's own guardian: close its pipe (it then stops what is registered)."""
    assert guardian._pipe is not None and guardian.pid is not None
    os.close(guardian._pipe)
    os.waitpid(guardian.pid, 0)


def test_the_helper_stops_registered_jobs_when_the_pipe_ends() -> None:
    """SIGTERM first; SIGKILL for a job that ignores it; a forgotten job is left alone."""
    ignore_term = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    stubborn = subprocess.Popen(
        [sys.executable, "-c", ignore_term + "print(flush=True)\ntime.sleep(300)"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    polite = subprocess.Popen(["sleep", "300"])
    forgotten = subprocess.Popen(["sleep", "300"])
    assert stubborn.stdout is not None
    stubborn.stdout.readline()  # its handler is in place
    guardian = Guardian()
    guardian.watch(stubborn.pid, group=True)
    guardian.watch(polite.pid, group=False)
    guardian.forget(guardian.watch(forgotten.pid, group=False))
    _stop_helper(guardian)
    assert stubborn.wait(5) == -signal.SIGKILL
    assert polite.wait(5) == -signal.SIGTERM
    assert forgotten.poll() is None
    forgotten.kill()
    forgotten.wait()
    stubborn.stdout.close()


def test_the_helper_is_named_for_ps() -> None:
    guardian = Guardian()
    guardian.forget(guardian.watch(os.getpid(), group=False))
    assert guardian.pid is not None
    comm = Path(f"/proc/{guardian.pid}/comm")
    end = time.monotonic() + 30
    while comm.read_text().strip() != "procexec-guard":
        assert time.monotonic() < end
        time.sleep(0.01)
    _stop_helper(guardian)


def test_after_fork_a_child_starts_afresh() -> None:
    """In a forked child the guardian forgets the parent's helper and registry and closes
    its copy of the pipe (here, in this process, that is the last copy: the helper then
    stops what is registered, as at the parent's death)."""
    sleeper = subprocess.Popen(["sleep", "300"])
    guardian = Guardian()
    assert guardian.watch(sleeper.pid, group=False) > 0
    helper = guardian.pid
    assert helper is not None
    guardian.after_fork_in_child()
    assert guardian._slots is None and guardian.pid is None and guardian._pipe is None
    assert sleeper.wait(30) == -signal.SIGTERM
    os.waitpid(helper, 0)
