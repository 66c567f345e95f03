"""What the lane asks the kernel when a timeout passes: has the child exited, and would the
stop signal surely end it (``procexec._core._procstate``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from procexec._core._procstate import has_exited, signal_kills


def _ready_child(code: str) -> subprocess.Popen[bytes]:
    """A Python child that runs ``code``, says it is ready on stdout, then waits for stdin."""
    return subprocess.Popen(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def _finish(child: subprocess.Popen[bytes]) -> None:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.close()
    child.stdout.close()
    child.wait()


def test_has_exited_sees_the_exit_without_reaping() -> None:
    child = _ready_child("")
    assert child.stdout is not None
    child.stdout.readline()
    assert not has_exited(child.pid)
    assert child.stdin is not None
    child.stdin.close()  # it reads end of input and exits
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # block until it has exited
    assert has_exited(child.pid)
    assert has_exited(child.pid), "still a zombie: the first call did not reap it"
    child.stdout.close()
    child.wait()
    assert has_exited(child.pid)  # reaped by someone else: gone, so exited too


@pytest.mark.parametrize(
    ("code", "kills"),
    [
        ("", True),
        ("import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)", False),
        ("import signal; signal.signal(signal.SIGTERM, lambda *a: None)", False),
        ("import signal; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})", False),
    ],
    ids=["default", "ignored", "caught", "blocked"],
)
def test_signal_kills_reads_what_the_child_does_with_the_signal(code: str, kills: bool) -> None:
    child = _ready_child(code)
    try:
        assert child.stdout is not None
        child.stdout.readline()
        assert signal_kills(child.pid, signal.SIGTERM) is kills
        assert signal_kills(child.pid, signal.SIGKILL) is True  # cannot be caught
        assert signal_kills(child.pid, signal.SIGCHLD) is False  # ignored by default
    finally:
        _finish(child)


def test_signal_kills_is_false_when_it_cannot_tell() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    assert signal_kills(child.pid, signal.SIGTERM) is False  # gone: no /proc/PID/status
