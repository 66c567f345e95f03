"""Shared fixtures: every reaper test runs on both exit-watching paths."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from tests._helpers import Gate, become_subreaper, reap_adopted_zombies

from procexec._core import _platform
from procexec._core._resources._guardian import GUARDIAN


@pytest.fixture(params=["pidfd", "fallback"])
def reaper_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test once with pidfds and once with the portable waiter threads."""
    if request.param == "pidfd" and not _platform.pidfd_usable():
        pytest.skip("this kernel or sandbox refuses pidfd_open; the fallback run covers it")
    monkeypatch.setattr(_platform, "_force_fallback", request.param == "fallback")
    yield request.param


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    """Fail the test if it leaves more file descriptors open than it found."""
    before = set(os.listdir("/proc/self/fd"))
    yield
    after = set(os.listdir("/proc/self/fd"))
    leaked = {fd: _target(fd) for fd in after - before}
    assert not leaked, f"file descriptors leaked: {leaked}"


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


@pytest.fixture(scope="session", autouse=True)
def _guardian_started() -> None:
    """Start this process's guardian first: the two fds it holds for good (its pipe and its
    registry) then count as there before every test that checks for leaked fds."""
    GUARDIAN.start()


@pytest.fixture(autouse=True)
def _reap_adopted() -> Iterator[None]:
    """After each test, reap the orphans this subreaper adopted and that have exited, so
    that one test's leftovers are not counted against the next."""
    yield
    reap_adopted_zombies()


@pytest.fixture(scope="session", autouse=True)
def _subreaper() -> None:
    """Adopt orphaned grandchildren so tests can prove they died (PID 1 may not reap)."""
    become_subreaper()


@pytest.fixture(scope="session", autouse=True)
def _default_sighup() -> Iterator[None]:
    """Run the tests, and the children they start, with SIGHUP's default action.

    Under ``nohup`` (or a CI runner that ignores SIGHUP) the ignored disposition is
    inherited by every child, and procexec rightly leaves an ignored SIGHUP alone: the tests
    of what SIGHUP does would then fail, and their jobs outlive them.
    """
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    signal.signal(signal.SIGHUP, previous)


@pytest.fixture
def gate() -> Iterator[Gate]:
    """A stdin pipe that blocks children until the test opens it."""
    g = Gate()
    yield g
    g.close()
