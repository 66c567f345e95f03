"""The lanes' event wait (``procexec._core._poller.Poller``): fds to callbacks over ``poll()``."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import pytest

from procexec._core._poller import Poller


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):  # the test closed it
            os.close(fd)


def _fired(poller: Poller, timeout: float | None) -> list[str]:
    """What the callbacks of the ready fds return (each test's callbacks return a name)."""
    return [str(callback()) for callback in poller.wait(timeout)]


def test_a_readable_fd_gives_its_callback_and_a_quiet_one_does_not(
    pipe: tuple[int, int],
) -> None:
    read_end, write_end = pipe
    poller = Poller()
    poller.register(read_end, "read", lambda: "readable")
    assert _fired(poller, 0) == []
    os.write(write_end, b"x")
    assert _fired(poller, None) == ["readable"]


def test_a_writable_fd_gives_its_callback(pipe: tuple[int, int]) -> None:
    poller = Poller()
    poller.register(pipe[1], "write", lambda: "writable")
    assert _fired(poller, None) == ["writable"]


def test_end_of_file_and_a_closed_reader_count_as_ready(pipe: tuple[int, int]) -> None:
    # poll() reports these as POLLHUP / POLLERR, not POLLIN / POLLOUT: the callbacks must
    # still run, to read the end of the output or to stop writing.
    read_end, write_end = pipe
    poller = Poller()
    poller.register(read_end, "read", lambda: "eof")
    os.close(write_end)
    assert _fired(poller, None) == ["eof"]
    other_read, other_write = os.pipe()
    try:
        poller.register(other_write, "write", lambda: "reader gone")
        os.close(other_read)
        assert sorted(_fired(poller, None)) == ["eof", "reader gone"]
    finally:
        os.close(other_write)


def test_an_unregistered_fd_is_not_watched(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    poller = Poller()
    poller.register(read_end, "read", lambda: "readable")
    poller.unregister(read_end)
    os.write(write_end, b"x")
    assert _fired(poller, 0) == []
    with pytest.raises(KeyError):
        poller.unregister(read_end)


def test_a_pidfd_becomes_ready_when_its_child_exits() -> None:
    if not hasattr(os, "pidfd_open"):
        pytest.skip("this platform has no pidfd_open (Linux 5.3+ and Python 3.9+ only)")
    child = subprocess.Popen(["sleep", "0.2"])
    pidfd = os.pidfd_open(child.pid)
    try:
        poller = Poller()
        poller.register(pidfd, "read", lambda: "exited")
        assert child.poll() is None
        assert _fired(poller, None) == ["exited"]
        assert child.wait() == 0
    finally:
        os.close(pidfd)


def test_a_timeout_shorter_than_a_millisecond_still_waits(pipe: tuple[int, int]) -> None:
    # poll() counts whole milliseconds: rounding 0.2 ms down to 0 would make a lane waiting
    # for a deadline spin until it passes.
    poller = Poller()
    poller.register(pipe[0], "read", lambda: "readable")
    assert Poller.milliseconds(0.0002) == 1
    assert Poller.milliseconds(0) == 0
    assert Poller.milliseconds(None) is None
    assert Poller.milliseconds(1.5) == 1500
    assert _fired(poller, 0.0002) == []


def test_a_closed_fd_still_registered_is_dropped_not_reported_forever(
    pipe: tuple[int, int],
) -> None:
    # Closing before unregistering is a bug in the caller; epoll forgets such an fd, and so
    # does the poller (poll() would report POLLNVAL on every call, a busy loop).
    read_end, _ = pipe
    poller = Poller()
    poller.register(read_end, "read", lambda: "never")
    os.close(read_end)
    assert _fired(poller, 0) == []
    assert _fired(poller, 0) == []
    with pytest.raises(KeyError):
        poller.unregister(read_end)
