"""SIGTERM arming of with-blocks and the watch thread that reads the signal wakeup fd.

These run in pytest's main thread and leave SIGTERM, SIGUSR1 and the wakeup fd as they
found them. What a real SIGTERM does to a parent is in test_guarantees.py.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import pytest

from procexec import ProcessExecutor
from procexec._core._signals import SignalsAsExit, SignalWatch


@pytest.fixture(autouse=True)
def _signal_state_kept() -> Iterator[None]:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    previous_usr1 = signal.signal(signal.SIGUSR1, _note_usr1)
    yield
    signal.signal(signal.SIGUSR1, previous_usr1)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "SIGTERM left changed"
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL, "SIGHUP left changed"
    assert signal.set_wakeup_fd(-1) == -1, "wakeup fd left set"


def _note_usr1(signum: int, frame: FrameType | None) -> None:
    """A Python-level handler, so that SIGUSR1 is written to the wakeup fd."""


def _own_pipe() -> tuple[int, int]:
    read, write = os.pipe()
    os.set_blocking(write, False)
    return read, write


def test_a_block_arms_sigterm_and_the_last_one_out_restores_it() -> None:
    outer, inner = ProcessExecutor(1), ProcessExecutor(1)
    with outer:
        armed = signal.getsignal(signal.SIGTERM)
        assert callable(armed)
        with inner:
            assert signal.getsignal(signal.SIGTERM) is armed
        assert signal.getsignal(signal.SIGTERM) is armed  # the outer block still runs
        with pytest.raises(SystemExit) as raised:
            armed(signal.SIGTERM, None)
        assert raised.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_the_programs_own_sigterm_handler_is_left_alone() -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        """The program's own plan for SIGTERM (and, in the second part, SIGHUP)."""

    signal.signal(signal.SIGTERM, handler)
    try:
        stopped: list[str] = []
        block = SignalsAsExit(lambda: stopped.append("stopped"))
        block.arm()
        assert signal.getsignal(signal.SIGTERM) is handler
        assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL, "SIGHUP was free"
        block.disarm()
        assert signal.getsignal(signal.SIGTERM) is handler and stopped == []
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
        signal.signal(signal.SIGHUP, handler)  # neither is free: nothing is armed
        block.arm()
        assert signal.set_wakeup_fd(-1) == -1, "no watch is started for them"
        block.disarm()
        assert signal.getsignal(signal.SIGHUP) is handler
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_a_block_arms_sighup_too_and_it_exits_129() -> None:
    with ProcessExecutor(1):
        armed = signal.getsignal(signal.SIGHUP)
        assert callable(armed) and armed is signal.getsignal(signal.SIGTERM)
        with pytest.raises(SystemExit) as raised:
            armed(signal.SIGHUP, None)
        assert raised.value.code == 129
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


def test_a_signal_the_program_handles_is_neither_armed_nor_acted_on() -> None:
    """The program handles SIGHUP itself: the block arms SIGTERM only, and the watch does not
    stop the jobs when SIGHUP arrives (the program's handler decides)."""

    def handler(signum: int, frame: FrameType | None) -> None:
        """The program's own plan for SIGHUP."""

    signal.signal(signal.SIGHUP, handler)
    stopped: queue.SimpleQueue[str] = queue.SimpleQueue()
    block = SignalsAsExit(lambda: stopped.put("stopped"))
    try:
        block.arm()
        assert signal.getsignal(signal.SIGHUP) is handler
        wakeup = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(wakeup, warn_on_full_buffer=False)
        os.write(wakeup, bytes([signal.SIGHUP, signal.SIGTERM]))
        assert stopped.get(timeout=30) == "stopped"  # for the SIGTERM byte only
        block.disarm()
        assert stopped.empty()
        assert signal.getsignal(signal.SIGHUP) is handler
    finally:
        block.disarm()
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_stopping_the_watch_and_disarming_are_idempotent(no_fd_leak: None) -> None:
    """Both are retried when an interrupt cuts them short: running them again must finish
    the job and never close an fd twice."""
    watch = SignalWatch.start(lambda signum: None)
    assert watch is not None
    watch.stop()
    watch.stop()
    assert signal.set_wakeup_fd(-1) == -1
    block = SignalsAsExit(lambda: None)
    block.arm()
    block.disarm()
    block.disarm()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert not [t for t in threading.enumerate() if t.name == "procexec-signals"]


def test_sigterm_false_and_other_threads_do_not_arm() -> None:
    with ProcessExecutor(1, sigterm=False):
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    seen: list[object] = []

    def in_a_thread() -> None:
        with ProcessExecutor(1):
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=in_a_thread)
    thread.start()
    thread.join()
    assert seen == [signal.SIG_DFL]


def test_the_watch_stops_every_armed_block_on_sigterm_only() -> None:
    stopped: queue.SimpleQueue[str] = queue.SimpleQueue()
    outer = SignalsAsExit(lambda: stopped.put("outer"))
    inner = SignalsAsExit(lambda: stopped.put("inner"))
    outer.arm()
    inner.arm()
    try:
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # not SIGTERM: ignored
        # The Python handler for SIGTERM would raise here; the byte the C handler writes
        # is what the watch acts on, so write that byte the same way.
        wakeup = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(wakeup, warn_on_full_buffer=False)
        os.write(wakeup, bytes([signal.SIGTERM]))
        assert sorted([stopped.get(timeout=30), stopped.get(timeout=30)]) == ["inner", "outer"]
        assert stopped.empty()
    finally:
        inner.disarm()
        outer.disarm()


def test_the_watch_relays_signals_and_gives_the_fd_back() -> None:
    seen: queue.SimpleQueue[int] = queue.SimpleQueue()
    watch = SignalWatch.start(seen.put)
    assert watch is not None
    signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
    assert seen.get(timeout=30) == signal.SIGUSR1
    watch.stop()
    assert not [t for t in threading.enumerate() if t.name == "procexec-signals"]


def test_a_wakeup_fd_in_use_is_not_taken() -> None:
    read, write = _own_pipe()
    signal.set_wakeup_fd(write)
    try:
        assert SignalWatch.start(lambda signum: None) is None
        assert signal.set_wakeup_fd(-1) == write
    finally:
        os.close(read)
        os.close(write)


def test_a_wakeup_fd_taken_over_meanwhile_stays_with_its_new_owner() -> None:
    watch = SignalWatch.start(lambda signum: None)
    assert watch is not None
    read, write = _own_pipe()
    signal.set_wakeup_fd(write)  # asyncio, say, started a loop inside the block
    try:
        watch.stop()
        assert signal.set_wakeup_fd(-1) == write
    finally:
        os.close(read)
        os.close(write)


def test_a_failing_reaction_is_logged_and_the_watch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: queue.SimpleQueue[int] = queue.SimpleQueue()
    calls = iter([RuntimeError("bug"), None])

    def react(signum: int) -> None:
        error = next(calls)
        if error is not None:
            raise error
        seen.put(signum)

    watch = SignalWatch.start(react)
    assert watch is not None
    try:
        with caplog.at_level(logging.ERROR, logger="procexec"):
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
            assert seen.get(timeout=30) == signal.SIGUSR1
    finally:
        watch.stop()
    assert [r.getMessage() for r in caplog.records] == [
        f"procexec: reacting to signal {int(signal.SIGUSR1)} failed"
    ]


def _no_fd() -> tuple[int, int]:
    raise OSError(24, "Too many open files")


def _no_thread(self: threading.Thread) -> None:
    raise RuntimeError("can't start new thread")


@pytest.mark.parametrize(
    ("target", "name", "refusal"), [(os, "pipe", _no_fd), (threading.Thread, "start", _no_thread)]
)
def test_without_a_pipe_or_a_thread_no_watch_starts_and_nothing_is_left(
    monkeypatch: pytest.MonkeyPatch, target: object, name: str, refusal: object
) -> None:
    fds_before = sorted(os.listdir("/proc/self/fd"))
    with monkeypatch.context() as patch:
        patch.setattr(target, name, refusal)
        assert SignalWatch.start(lambda signum: None) is None
    assert signal.set_wakeup_fd(-1) == -1
    assert sorted(os.listdir("/proc/self/fd")) == fds_before
