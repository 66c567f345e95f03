"""A property test of Python calls (issue 30): random mixes of good, raising and crashing
calls, cancels of waiting and running calls, timeouts, ``max_jobs`` resizes, the
executor's ``terminate_jobs()``/``kill_jobs()`` and shutdowns, interleaved with commands.
Whatever the mix: every future resolves exactly once with the outcome its kind allows,
never more jobs run than the highest ``max_jobs`` set so far, nothing is logged as an
error, and once the executor is shut down no worker, zombie or file descriptor is left.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from procexec import CallFuture, CallLost, CallTimeout, ProcessExecutor
from tests import _call_targets as targets
from tests._helpers import ErrorRecords, assert_dies, my_children

pytestmark = pytest.mark.usefixtures("reaper_path")

#: A call's kind: how it is queued, and the exception types its future may end with
#: (besides cancellation); None: it returns ``2 * x``.
Submit = Callable[[ProcessExecutor, int, Path], "Future[Any]"]
CALLS: dict[str, tuple[Submit, tuple[type[BaseException], ...]]] = {
    "good": (lambda ex, x, _: ex.submit_call(targets.double, x), ()),
    "slow": (lambda ex, x, _: ex.submit_call(targets.sleep_then, 2 * x, 0.1), ()),
    "raise": (lambda ex, x, _: ex.submit_call(targets.raise_value_error, str(x)), (ValueError,)),
    "sigkill": (lambda ex, x, _: ex.submit_call(targets.kill_self), (CallLost,)),
    "os._exit": (lambda ex, x, _: ex.submit_call(targets.os_exit, 3), (CallLost,)),
    "unpicklable": (
        lambda ex, x, _: ex.submit_call(targets.keywords, threading.Lock()),
        (TypeError,),
    ),
    "timeout": (
        lambda ex, x, _: ex.run_call(targets.sleep_then, (None, 30), timeout=0.05),
        (CallTimeout,),
    ),
    "timeout with a child": (  # the call's own child goes with its worker's group
        lambda ex, x, tmp: ex.run_call(
            targets.heartbeat, (str(tmp / f"beats-{x}"), True), timeout=0.1
        ),
        (CallTimeout,),
    ),
    "quick with a timeout": (
        lambda ex, x, _: ex.run_call(targets.double, (x,), timeout=30),
        (),
    ),
}
#: A command's kind: its argv and the exit status it ends with.
COMMANDS: dict[str, tuple[list[str], int]] = {
    "true": (["true"], 0),
    "exit 3": (["sh", "-c", "exit 3"], 3),
    "sleep": (["sleep", "0.1"], 0),
}

OPERATIONS = st.one_of(
    st.tuples(st.just("call"), st.sampled_from(sorted(CALLS))),
    st.tuples(st.just("call"), st.sampled_from(sorted(CALLS))),
    st.tuples(st.just("command"), st.sampled_from(sorted(COMMANDS))),
    st.tuples(st.sampled_from(["cancel", "kill"]), st.integers(0, 40)),
    st.tuples(st.just("resize"), st.integers(1, 4)),
    st.tuples(st.sampled_from(["terminate_jobs", "kill_jobs"]), st.none()),
)
#: The operations of one example, and where a ``shutdown(wait=False, cancel_futures=...)``
#: comes among them, if it does.
MIXES = st.tuples(
    st.lists(OPERATIONS, min_size=4, max_size=25),
    st.none() | st.tuples(st.integers(0, 25), st.booleans()),
)


class Mix:
    """One example: the executor, the futures made and what each should end with."""

    def __init__(self, ex: ProcessExecutor, tmp: Path) -> None:
        self.ex = ex
        self.tmp = tmp
        self.futures: list[tuple[Future[Any], str, int]] = []  # future, kind, argument
        self.callbacks: Counter[int] = Counter()
        self.highest_limit = ex.max_jobs
        self.shut = False
        self.stopped_all = False

    def apply(self, op: str, arg: Any) -> None:
        """One operation of the example."""
        if op in ("call", "command"):
            self._submit(op, arg)
        elif op in ("cancel", "kill") and self.futures:
            future, kind, _ = self.futures[arg % len(self.futures)]
            if op == "cancel":
                future.cancel()  # a running call stops; a running command goes on
            elif kind in CALLS:
                cast(CallFuture[Any], future).kill()
        elif op == "resize":
            self.highest_limit = max(self.highest_limit, arg)  # first: the sampler reads it
            self.ex.max_jobs = arg
        elif op in ("terminate_jobs", "kill_jobs"):
            self.stopped_all = True  # running commands may end by the signal from now on
            getattr(self.ex, op)()
        elif op == "shutdown":
            self.ex.shutdown(wait=False, cancel_futures=arg)
            self.shut = True

    def _submit(self, op: str, kind: str) -> None:
        x = len(self.futures)
        try:
            if op == "call":
                future = CALLS[kind][0](self.ex, x, self.tmp)
            else:
                future = self.ex.submit(COMMANDS[kind][0])
        except RuntimeError:
            assert self.shut, "a submit was refused before shutdown"
            return
        future.add_done_callback(lambda f: self.callbacks.update([id(f)]))
        self.futures.append((future, kind, x))

    def check(self) -> None:
        """Every future resolved once, as its kind allows."""
        for future, kind, x in self.futures:
            assert self.callbacks[id(future)] == 1, f"{kind}: callbacks ran other than once"
            if future.cancelled():
                with pytest.raises(CancelledError):
                    future.result()
                continue
            error = future.exception()
            if kind in COMMANDS:
                stopped = {-signal.SIGTERM, -signal.SIGKILL} if self.stopped_all else set()
                assert error is None, (kind, error)
                assert future.result() in {COMMANDS[kind][1], *stopped}, (kind, future.result())
            elif error is None:
                assert not CALLS[kind][1] and future.result() == 2 * x, (kind, future.result())
            else:
                assert isinstance(error, CALLS[kind][1]), (kind, repr(error))


@contextmanager
def _sampling(mix: Mix) -> Iterator[list[tuple[int, int]]]:
    """Samples ``(running, highest max_jobs so far)`` on a thread while the body runs."""
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.002):
            samples.append((mix.ex.stats().running, mix.highest_limit))

    thread = threading.Thread(target=sample, name="sampler")
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join()


@settings(
    max_examples=int(os.environ.get("PROCEXEC_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mixed=MIXES)
def test_property_calls_and_commands_resolve_once_and_leave_nothing(
    mixed: tuple[list[tuple[str, Any]], tuple[int, bool] | None], tmp_path: Path
) -> None:
    ops, shutdown = mixed
    if shutdown is not None:
        ops = [*ops[: shutdown[0]], ("shutdown", shutdown[1]), *ops[shutdown[0] :]]
    fds_before = set(os.listdir("/proc/self/fd"))
    errors = ErrorRecords()
    logging.getLogger("procexec").addHandler(errors)
    mix = Mix(ProcessExecutor(2, workers={"idle_timeout": 0.5}), tmp_path)
    try:
        with _sampling(mix) as samples:
            for op, arg in ops:
                mix.apply(op, arg)
            mix.ex.shutdown(wait=True)
    finally:
        mix.ex.shutdown(wait=True)
        logging.getLogger("procexec").removeHandler(errors)
    mix.check()
    for future, kind, _ in mix.futures:
        event(f"{kind}: {_outcome(future)}")
    assert all(running <= limit for running, limit in samples), max(samples)
    assert not errors.records, [r.getMessage() for r in errors.records]
    for pid in my_children():  # a timed-out call's child, adopted (we are a subreaper)
        assert_dies(pid)
    assert my_children() == set(), "a worker or a zombie is left"
    leaked = set(os.listdir("/proc/self/fd")) - fds_before
    assert not leaked, {fd: _target(fd) for fd in leaked}


def _outcome(future: Future[Any]) -> str:
    if future.cancelled():
        started = isinstance(future, CallFuture) and future.pid is not None
        return "stopped while running" if started else "cancelled"
    error = future.exception()
    return "returned" if error is None else type(error).__name__


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"
