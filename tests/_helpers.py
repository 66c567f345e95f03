"""Children for the tests (``sys.executable -c`` snippets) and process checks."""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import select
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

PR_SET_CHILD_SUBREAPER = 36


def py(code: str) -> list[str]:
    """argv that runs ``code`` in a fresh Python."""
    return [sys.executable, "-c", code]


def py_on_path(code: str, reaper_path: str) -> list[str]:
    """argv that runs ``code`` in a fresh Python whose executors use the given reaper path
    ("pidfd" or "fallback"); fork()'s DeprecationWarning in a threaded process is muted."""
    fallback = reaper_path == "fallback"
    prelude = f"import procexec._core._platform as _p\n_p._force_fallback = {fallback}\n"
    return [sys.executable, "-W", "ignore::DeprecationWarning", "-c", prelude + code]


def run_script(
    code: str, reaper_path: str, *args: str, timeout: float = 60, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``args`` in a fresh interpreter on the given reaper path."""
    argv = py_on_path(textwrap.dedent(code), reaper_path)
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )


def last_json(proc: subprocess.CompletedProcess[str]) -> Any:
    """The JSON report a script printed last."""
    assert proc.stdout.strip(), f"no report; stderr:\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: Records how many jobs run at once. It creates run-<pid>; waits (bounded) until argv[2]
#: jobs have created theirs; writes how many run-* files it then sees into seen-<pid>; waits
#: until argv[2] jobs have counted; optionally reads stdin to its end (a gate the test
#: opens); and removes run-<pid> as its last act. So the first argv[2] jobs all see each
#: other, and a job started while too many run would see more than the limit.
RECORDER = r"""
import os, sys, time
d, barrier, gated = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
pid = os.getpid()

def count(prefix):
    return sum(name.startswith(prefix) for name in os.listdir(d))

def wait_for(prefix):
    end = time.monotonic() + 30
    while count(prefix) < barrier and time.monotonic() < end:
        time.sleep(0.002)

me = os.path.join(d, f"run-{pid}")
open(me, "w").close()
open(os.path.join(d, f"started-{pid}"), "w").close()
wait_for("started-")
with open(os.path.join(d, f"seen-{pid}"), "w") as f:
    f.write(str(count("run-")))
open(os.path.join(d, f"counted-{pid}"), "w").close()
wait_for("counted-")
if gated:
    sys.stdin.read()
os.remove(me)
"""


def recorder(directory: Path, barrier: int = 0, gated: bool = False) -> list[str]:
    """argv of a RECORDER child."""
    return [*py(RECORDER), str(directory), str(barrier), "1" if gated else "0"]


def seen_counts(directory: Path) -> list[int]:
    """What each RECORDER child saw running when it started (itself included)."""
    return [int(p.read_text()) for p in directory.glob("seen-*")]


#: Spawns a grandchild (``sleep 300``) in its own process group, then writes
#: "<own pid> <grandchild pid>\n" to the fd given as argv[1] and sleeps.
SPAWNER = r"""
import os, subprocess, sys, time
grandchild = subprocess.Popen(["sleep", "300"])
os.write(int(sys.argv[1]), f"{os.getpid()} {grandchild.pid}\n".encode())
time.sleep(300)
"""


def spawner(fd: int) -> list[str]:
    """argv of a SPAWNER child reporting on ``fd``."""
    return [*py(SPAWNER), str(fd)]


def read_pid_lines(fd: int, count: int) -> list[tuple[int, int]]:
    """Block until ``count`` "<pid> <pid>" lines arrived on ``fd``; return them."""
    data = b""
    while data.count(b"\n") < count:
        chunk = os.read(fd, 4096)
        assert chunk, "the children closed the report pipe early"
        data += chunk
    return [tuple(int(x) for x in line.split()) for line in data.decode().splitlines()]  # type: ignore[misc]


def become_subreaper() -> None:
    """Make this process adopt orphaned grandchildren, so tests can reap and check them."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def assert_dies(pid: int, timeout: float = 15.0) -> None:
    """Wait (bounded) until ``pid`` has exited, reaping it if it became our child."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:
        _wait_proc_gone(pid, timeout)
        return
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        assert ready, f"process {pid} is still running after {timeout}s"
    finally:
        os.close(pidfd)
    with contextlib.suppress(ChildProcessError):  # not ours to reap: its parent does it
        os.waitpid(pid, os.WNOHANG)


def _wait_proc_gone(pid: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not is_running(pid):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} is still running after {timeout}s")


def wait_for_file(path: Path, timeout: float = 60) -> str:
    """Block (bounded) until ``path`` exists, as a child writes it; return its text."""
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.005)
    return path.read_text()


def is_running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def my_children() -> set[int]:
    """Pids whose parent is this process (zombies included), guardians and multiprocessing's
    resource tracker left out.

    A guardian is this process's own helper (procexec._core._resources._guardian), or one
    that a child made by os.fork() started and this subreaper adopted: an adopted one that
    has ended is reaped here."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):  # that thread ended while we looked
            pids.update(int(p) for p in (task / "children").read_text().split())
    return {pid for pid in pids if not _is_guardian(pid) and not _is_resource_tracker(pid)}


def reap_adopted_zombies() -> None:
    """Reap the zombies this session adopted as a subreaper: the grandchildren of a job that
    a CLI run stopped, a closed Dask cluster's workers. Once they have exited they are this
    process's to reap; left, they would be counted by the next test's ``my_children()``."""
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            for pid in (task / "children").read_text().split():
                with contextlib.suppress(FileNotFoundError, ChildProcessError):
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] == "Z":
                        os.waitpid(int(pid), 0)


def _is_resource_tracker(pid: int) -> bool:
    """multiprocessing's resource tracker: started once for the session by the first Dask
    LocalCluster (tests/test_dask.py), it serves every later one."""
    try:
        return b"multiprocessing.resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def _is_guardian(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True  # gone already
    if stat.split(" (", 1)[1].rsplit(")", 1)[0] != "procexec-guard":
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return True


def lane_threads(executor: Any) -> list[threading.Thread]:
    """The threads alive of an executor's lanes (named after its reaper, "-laneN" added)."""
    name = executor._reaper._name
    return [t for t in threading.enumerate() if t.name.split("-lane")[0] == name]


def assert_lanes_end(executor: Any) -> None:
    """Every lane thread of ``executor`` ends (``shutdown()`` returns once each has done its
    last act; the thread itself may still be on its way out then)."""
    for thread in lane_threads(executor):
        thread.join(timeout=30)
        assert not thread.is_alive(), f"{thread.name} still runs after shutdown"


class Gate:
    """A pipe given to children as stdin: they block reading it until ``open()``."""

    def __init__(self) -> None:
        self.read_fd, self._write_fd = os.pipe()

    def open(self) -> None:
        if self._write_fd >= 0:
            os.close(self._write_fd)
            self._write_fd = -1

    def close(self) -> None:
        self.open()
        os.close(self.read_fd)


def signal_other_thread(pid: int, signum: int) -> None:
    """Send ``signum`` to one thread of process ``pid`` other than its main thread (tgkill),
    as the kernel may do with a signal sent to the process."""
    libc = ctypes.CDLL(None, use_errno=True)
    tgkill = getattr(libc, "tgkill", None)
    if tgkill is None:
        pytest.skip("this C library has no tgkill() (glibc 2.30 added it)")
    for name in sorted(os.listdir(f"/proc/{pid}/task")):
        if int(name) != pid and tgkill(pid, int(name), signum) == 0:
            return  # a thread may have ended since the listing: then try the next one
    raise AssertionError(f"process {pid} has no thread but its main one to signal")


# ------------------------------------------------------------------ the command line
PARALLEL = shutil.which("parallel")
needs_parallel = pytest.mark.skipif(
    PARALLEL is None, reason="GNU parallel is not installed (.ci/run installs it with apt-get)"
)


def run_cli(
    *args: str, input: str = "", cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m procexec`` as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "procexec", *args],
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def log_rows(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == [
        "Seq",
        "Host",
        "Starttime",
        "JobRuntime",
        "Send",
        "Receive",
        "Exitval",
        "Signal",
        "Command",
    ]
    return [line.split("\t") for line in lines[1:]]


class ErrorRecords(logging.Handler):
    """Collects the records logged at ERROR (by procexec: a failed reaper loop, a raising
    callback)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
