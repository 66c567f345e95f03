"""CPython's own ``test_concurrent_futures`` run against ``ProcessExecutor(...).calls``.

The test module is the one installed by Debian's ``libpython3.X-testsuite`` (loaded by
``tests/_cpython_futures.py``; ``.ci/run`` installs the package): no line of it is copied
here. Its process-pool test classes run as they are, with an ``executor_type`` that builds
``ProcessExecutor(max_jobs=max_workers, workers=WorkerOptions(initializer=...,
initargs=..., max_tasks=max_tasks_per_child)).calls``, on both ways of watching a child's
exit; ``FutureTests`` runs against :class:`procexec.CallFuture`.

Every CPython test that is not run as written is in ``DIFFERENCES`` below, with the reason
and what runs instead. Three kinds:

- it reads a ``ProcessPoolExecutor`` internal (``_processes``, ``_max_workers``,
  ``_executor_manager_thread``, ``_broken``, ``_mp_context``): rewritten to check the same
  thing through procexec's own means (the calls' worker pids, ``stats()``, this process's
  children);
- procexec deliberately differs (issue 30): a crash fails only its own call and never
  breaks the executor, and nothing of ``multiprocessing`` (a ``Queue``, a ``Manager``'s
  proxies) can be sent to a worker that ``multiprocessing`` did not start;
- its child script or its expected text names CPython's class (``executor_type.__name__``,
  ``repr`` and ``max_workers`` in messages): the same check with procexec's names.

A test (``test_the_list_of_differences_is_exact``) checks that every entry names a test
CPython has and that is rewritten here, and that nothing else is.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import tempfile
import threading
import time
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from procexec import CallFuture, ProcessExecutor, WorkerOptions
from procexec._core import _platform
from procexec._core._calls import CallsExecutor
from tests import _call_targets as targets
from tests import _cpython_futures
from tests._helpers import my_children

if _cpython_futures.MISSING:
    pytest.skip(_cpython_futures.MISSING, allow_module_level=True)

cf: Any = _cpython_futures  # CPython's test module: its names are not known to mypy
ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

#: Every CPython test not run as written: ``"Class.test"`` -> why, and what runs instead.
DIFFERENCES: dict[str, str] = {
    # --- it reads a ProcessPoolExecutor internal: the same check by procexec's means
    "ExecutorTest.test_max_workers_negative": "the error names max_jobs, not max_workers",
    "ProcessPoolExecutorTest.test_saturation": "_processes, _max_workers and a "
    "multiprocessing Semaphore: max_jobs workers run, counted as this process's children",
    "ProcessPoolExecutorTest.test_idle_process_reuse_one": "_processes: the three calls' "
    "futures name one worker pid",
    "ProcessPoolExecutorTest.test_idle_process_reuse_multiple": "_processes: at most three "
    "worker pids",
    "ProcessPoolExecutorTest.test_max_tasks_per_child": "_processes: one worker left, the "
    "fourth call's pid a new one",
    "ProcessPoolExecutorTest.test_max_tasks_per_child_defaults_to_spawn_context": "skipped: "
    "_mp_context; every worker is a fresh interpreter (fork+exec), as spawn's are: "
    "test_calls_cpython.py::test_a_worker_is_a_fresh_interpreter",
    "ProcessPoolShutdownTest.test_processes_terminate": "_processes and a multiprocessing "
    "Semaphore: three workers for three calls, none after shutdown()",
    "ProcessPoolShutdownTest.test_context_manager_shutdown": "it builds "
    "futures.ProcessPoolExecutor itself: the same with ex.calls, no worker left",
    "ProcessPoolShutdownTest.test_del_shutdown": "_executor_manager_thread and _processes: "
    "the results are in and the workers exit once the executor is dropped",
    "ProcessPoolShutdownTest.test_shutdown_no_wait": "_executor_manager_thread and "
    "_processes: the results are in and the workers exit after shutdown(wait=False)",
    "ExecutorDeadlockTest.test_shutdown_deadlock_pickle": "_executor_manager_thread: no "
    "thread of the executor is left after it",
    "ExecutorDeadlockTest._fail_on_deadlock": "a helper reading _processes: it stops the "
    "executor's calls instead",
    "FailingInitializerMixin.test_initializer": "_broken: the calls fail with a "
    "BrokenExecutor and the executor never breaks (issue 30); the log comes back from the "
    "worker through a file, not a multiprocessing Queue",
    # --- procexec deliberately differs
    "ProcessPoolExecutorTest.test_killed_child": "a killed worker fails its own call only "
    "(CallLost, a BrokenProcessPool); submit() keeps working",
    "ProcessPoolExecutorTest.test_ressources_gced_in_workers": "a multiprocessing Manager's "
    "proxy cannot reach a worker multiprocessing did not start (no authkey): an object "
    "whose __del__ in the worker writes a file",
    "ExecutorShutdownTest.test_cancel_futures": "a call leaves the queue only as it starts, "
    "so all 50 may be cancelled; CPython's pool moves max_workers + 1 calls to its call queue "
    "at once, out of cancel()'s reach: the test waits until the first call runs",
    # --- its child script or expected text names CPython's class
    "ExecutorShutdownTest.test_interpreter_shutdown": "the child script uses ex.calls",
    "ExecutorShutdownTest.test_submit_after_interpreter_shutdown": "the child script uses ex.calls",
    "ExecutorShutdownTest.test_hang_gh83386": "the child script uses ex.calls (CPython skips "
    "it for its own pool, which hangs there)",
    "FutureTests.test_repr": "a CallFuture's repr names its function: <CallFuture "
    "(unbound) pending>",
    "FutureTests.test_multiple_set_result": "the message holds a CallFuture's repr",
    "FutureTests.test_multiple_set_exception": "the message holds a CallFuture's repr",
}


def procexec_pool(
    max_workers: int | None = None,
    mp_context: object = None,
    initializer: Callable[..., object] | None = None,
    initargs: tuple[Any, ...] = (),
    *,
    max_tasks_per_child: int | None = None,
) -> CallsExecutor:
    """``ProcessPoolExecutor(...)`` as CPython's tests call it, made as ``ex.calls``;
    ``mp_context`` is not used (a worker is always a fresh interpreter)."""
    options = WorkerOptions(
        initializer=initializer, initargs=initargs, max_tasks=max_tasks_per_child
    )
    return ProcessExecutor(max_jobs=max_workers, workers=options).calls


class PoolContext:
    """What the tests use of their ``mp_context``."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def get_start_method(self, allow_none: bool = False) -> str:
        """As spawn's: the workers are fresh interpreters, nothing inherited (not "fork",
        which the tests treat as pre-started workers)."""
        return "spawn"

    def Queue(self) -> targets.FileQueue:  # noqa: N802  # multiprocessing's name
        """A queue for log records that a worker can be sent (``FileQueue``)."""
        return targets.FileQueue(str(self._directory / f"queue-{time.monotonic_ns()}"))


class _StderrNow(logging.Handler):
    """Writes records to the ``sys.stderr`` of the moment: where CPython's tests find the
    log lines (``support.captured_stderr``) when logging falls back to its last resort,
    which pytest's own log capture takes the place of."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


def _with_stderr_logging(case: unittest.TestCase) -> None:
    handler = _StderrNow(logging.WARNING)
    logging.getLogger().addHandler(handler)
    case.addCleanup(logging.getLogger().removeHandler, handler)


def _wait_until(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.005)


class ProcexecMixin(cf.ExecutorMixin):  # type: ignore[misc]
    """CPython's executor mixin for ``ex.calls``, on one way of watching a child's exit."""

    executor_type = staticmethod(procexec_pool)
    ctx = "procexec"  # CPython's mixins pass mp_context=self.get_context() when ctx is set
    reaper_path = "pidfd"

    def setUp(self) -> None:
        if self.reaper_path == "pidfd" and not _platform.pidfd_usable():
            self.skipTest("this kernel or sandbox refuses pidfd_open; the fallback covers it")
        previous = _platform._force_fallback
        _platform._force_fallback = self.reaper_path == "fallback"
        self.addCleanup(setattr, _platform, "_force_fallback", previous)
        _with_stderr_logging(self)
        super().setUp()

    def get_context(self) -> PoolContext:
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        return PoolContext(Path(directory.name))

    def _gate(self) -> Path:
        """A file the calls wait for (``targets.wait_for_file``); created to open it."""
        directory = tempfile.TemporaryDirectory()
        self.addCleanup(directory.cleanup)
        return Path(directory.name) / "gate"


def on_both_paths(cls: type[T]) -> type[T]:
    """Run the test class ``cls`` (pidfd) on the portable fallback too: a subclass of it,
    ``<name>Fallback``, in this module (where pytest and the workers find it)."""
    name = f"{cls.__name__}Fallback"
    fields = {"reaper_path": "fallback", "__module__": __name__, "__qualname__": name}
    globals()[name] = type(name, (cls,), fields)
    return cls


def _python_ok(code: str) -> tuple[bytes, bytes]:
    """CPython's ``assert_python_ok`` with this checkout on the child's path: its stdout
    and stderr."""
    _, out, err = cf.assert_python_ok("-c", code, PYTHONPATH=str(ROOT))
    return out, err


# --------------------------------------------------------------------------- ExecutorTest
@on_both_paths
class ExecutorTest(cf.ProcessPoolExecutorTest, ProcexecMixin, cf.BaseTestCase):  # type: ignore[misc]
    """CPython's ``ProcessPoolExecutorTest`` (its ``ExecutorTest`` included)."""

    def test_max_workers_negative(self) -> None:
        for number in (0, -1):
            with self.assertRaisesRegex(ValueError, "max_jobs must be at least 1"):
                self.executor_type(max_workers=number)

    def test_killed_child(self) -> None:
        future = self.executor.submit(time.sleep, 30)
        assert future.wait_started(60)
        os.kill(future.pid, 15)  # CPython: p.terminate()
        self.assertRaises(cf.BrokenProcessPool, future.result)
        self.assertEqual(self.executor.submit(pow, 2, 8).result(), 256)

    def test_saturation(self) -> None:
        gate = self._gate()
        job_count = 15 * self.worker_count
        futures = [self.executor.submit(targets.wait_for_file, str(gate)) for _ in range(job_count)]
        _wait_until(lambda: sum(f.running() for f in futures) == self.worker_count)
        self.assertEqual(len(my_children()), self.worker_count)
        gate.touch()
        for future in futures:
            future.result()

    def test_idle_process_reuse_one(self) -> None:
        pids = [self.executor.submit(os.getpid).result() for _ in range(3)]
        self.assertEqual(len(set(pids)), 1)

    def test_idle_process_reuse_multiple(self) -> None:
        executor = self.executor
        futures = [executor.submit(cf.mul, 12, 7)]
        futures[0].result()
        futures.append(executor.submit(cf.mul, 33, 25))
        futures.append(executor.submit(cf.mul, 25, 26))
        futures[-1].result()
        futures.append(executor.submit(cf.mul, 18, 29))
        futures.append(executor.submit(cf.mul, 1, 2))
        futures[-1].result()
        futures.append(executor.submit(cf.mul, 0, 9))
        executor.shutdown()
        self.assertLessEqual(len({future.pid for future in futures}), 3)

    def test_max_tasks_per_child(self) -> None:
        executor = self.executor_type(1, max_tasks_per_child=3)
        self.addCleanup(executor.shutdown)
        original_pid = executor.submit(os.getpid).result()
        self.assertEqual(executor.submit(os.getpid).result(), original_pid)
        self.assertEqual(my_children(), {original_pid})
        self.assertEqual(executor.submit(os.getpid).result(), original_pid)
        new_pid = executor.submit(os.getpid).result()
        self.assertNotEqual(original_pid, new_pid)
        _wait_until(lambda: my_children() == {new_pid})  # the old one retired and reaped
        executor.shutdown()

    @unittest.skip(DIFFERENCES["ProcessPoolExecutorTest.test_max_tasks_per_child_defaults"
                               "_to_spawn_context"])  # fmt: skip
    def test_max_tasks_per_child_defaults_to_spawn_context(self) -> None:
        raise AssertionError("skipped")

    def test_ressources_gced_in_workers(self) -> None:
        marker = Path(self._gate().parent, "deleted")
        self.executor.submit(id, targets.DelMarker(str(marker))).result()
        self.assertTrue(marker.exists(), "the worker kept the call's argument")


# ------------------------------------------------------------------ wait, as_completed
@on_both_paths
class WaitTests(cf.WaitTests, ProcexecMixin, cf.BaseTestCase):  # type: ignore[misc]
    """CPython's ``WaitTests``."""


@on_both_paths
class AsCompletedTests(cf.AsCompletedTests, ProcexecMixin, cf.BaseTestCase):  # type: ignore[misc]
    """CPython's ``AsCompletedTests``."""


# ------------------------------------------------------------------------------ shutdown
@on_both_paths
class ShutdownTest(cf.ProcessPoolShutdownTest, ProcexecMixin, cf.BaseTestCase):  # type: ignore[misc]
    """CPython's ``ProcessPoolShutdownTest`` (its ``ExecutorShutdownTest`` included)."""

    def test_interpreter_shutdown(self) -> None:
        out, err = _python_ok(
            "from procexec import ProcessExecutor\n"
            "from tests._cpython_futures import sleep_and_print\n"
            "t = ProcessExecutor(5).calls\n"
            "t.submit(sleep_and_print, 1.0, 'apple')\n"
        )
        self.assertFalse(err)
        self.assertEqual(out.strip(), b"apple")

    def test_submit_after_interpreter_shutdown(self) -> None:
        out, err = _python_ok(
            "import atexit\n"
            "@atexit.register\n"
            "def run_last():\n"
            "    try:\n"
            "        t.submit(id, None)\n"
            "    except RuntimeError:\n"
            "        print('runtime-error')\n"
            "        raise\n"
            "from procexec import ProcessExecutor\n"
            "t = ProcessExecutor(5).calls\n"
            "t.submit(id, 42).result()\n"
        )
        self.assertIn("RuntimeError: cannot schedule new futures", err.decode())
        self.assertEqual(out.strip(), b"runtime-error")

    def test_hang_gh83386(self) -> None:
        out, err = _python_ok(
            "from procexec import ProcessExecutor\n"
            "from tests._cpython_futures import sleep_and_print\n"
            "t = ProcessExecutor(max_jobs=3).calls\n"
            "t.submit(sleep_and_print, 1.0, 'apple')\n"
            "t.shutdown(wait=False)\n"
        )
        self.assertFalse(err)
        self.assertEqual(out.strip(), b"apple")

    def test_cancel_futures(self) -> None:
        futures = [self.executor.submit(time.sleep, 0.1) for _ in range(50)]
        futures[0].wait_started(60)
        self.executor.shutdown(cancel_futures=True)
        cancelled = [future for future in futures if future.cancelled()]
        self.assertGreater(len(cancelled), 20)
        others = [future for future in futures if not future.cancelled()]
        for future in others:
            self.assertTrue(future.done(), msg=f"{future._state=}")
            self.assertIsNone(future.exception())
        self.assertGreater(len(others), 0)

    def test_processes_terminate(self) -> None:
        gate = self._gate()
        futures = [self.executor.submit(targets.wait_for_file, str(gate)) for _ in range(3)]
        _wait_until(lambda: all(f.running() for f in futures))
        self.assertEqual(len(my_children()), 3)  # started on demand: 3 of 5
        gate.touch()
        self.executor.shutdown()
        self.assertEqual(my_children(), set())

    def test_context_manager_shutdown(self) -> None:
        with self.executor_type(max_workers=5) as e:
            self.assertEqual(list(e.map(abs, range(-5, 5))), [5, 4, 3, 2, 1, 0, 1, 2, 3, 4])
        self.assertEqual(my_children(), set())

    def test_del_shutdown(self) -> None:
        executor = self.executor_type(max_workers=5)
        res = executor.map(abs, range(-5, 5))
        del executor
        cf.support.gc_collect()
        _wait_until(lambda: my_children() == set())  # the dropped executor's workers exit
        assert all(r == abs(v) for r, v in zip(res, range(-5, 5), strict=True))

    def test_shutdown_no_wait(self) -> None:
        executor = self.executor_type(max_workers=5)
        res = executor.map(abs, range(-5, 5))
        executor.shutdown(wait=False)
        _wait_until(lambda: my_children() == set())
        assert all(r == abs(v) for r, v in zip(res, range(-5, 5), strict=True))


# ------------------------------------------------------------------------------ deadlocks
@on_both_paths
class DeadlockTest(cf.ExecutorDeadlockTest, ProcexecMixin, cf.BaseTestCase):  # type: ignore[misc]
    """CPython's ``ExecutorDeadlockTest``: a crash or an exit at every step of a call ends
    its future with CPython's exception type within ``TIMEOUT`` (30 s)."""

    def _fail_on_deadlock(self, executor: CallsExecutor) -> None:
        with tempfile.TemporaryFile(mode="w+") as file:
            faulthandler.dump_traceback(file=file)
            file.seek(0)
            stacks = file.read()
        executor.shutdown(wait=False, cancel_futures=True)
        self.fail(f"Executor deadlock:\n\n{stacks}")

    def test_shutdown_deadlock_pickle(self) -> None:
        self.executor.shutdown(wait=True)
        before = set(threading.enumerate())
        with self.executor_type(max_workers=2) as executor:
            self.executor: CallsExecutor = executor  # stopped by _fail_on_deadlock
            executor.submit(id, 42).result()
            future = executor.submit(id, cf.ErrorAtPickle())
            executor.shutdown(wait=False)
            with self.assertRaises(cf.PicklingError):
                future.result()
        _wait_until(lambda: not set(threading.enumerate()) - before)


# ---------------------------------------------------------------------------- initializer
@on_both_paths
class InitializerTest(cf.InitializerMixin, ProcexecMixin, cf.BaseTestCase):  # type: ignore[misc]
    """CPython's ``InitializerMixin`` tests."""


@on_both_paths
class FailingInitializerTest(cf.FailingInitializerMixin, ProcexecMixin, cf.BaseTestCase):  # type: ignore[misc]
    """CPython's ``FailingInitializerMixin`` tests."""

    def test_initializer(self) -> None:
        with self._assert_logged("ValueError: error in initializer"):
            future = self.executor.submit(cf.get_init_status)
            with self.assertRaises(cf.BrokenExecutor):
                future.result()
        # The executor is not broken: a later call tries a new worker (which fails again).
        with self.assertRaises(cf.BrokenExecutor):
            self.executor.submit(cf.get_init_status).result()


# ---------------------------------------------------------------------------- FutureTests
_call_futures: Any = _cpython_futures.with_future_type(CallFuture)


class FutureTests(_call_futures.FutureTests):  # type: ignore[misc]
    """CPython's ``FutureTests``, each ``Future()`` of it a :class:`CallFuture`."""

    def setUp(self) -> None:
        _with_stderr_logging(self)
        super().setUp()

    def test_repr(self) -> None:
        for future, text in [
            (_call_futures.PENDING_FUTURE, "pending"),
            (_call_futures.RUNNING_FUTURE, "running"),
            (_call_futures.CANCELLED_FUTURE, "cancelled"),
            (_call_futures.CANCELLED_AND_NOTIFIED_FUTURE, "cancelled"),
            (_call_futures.EXCEPTION_FUTURE, "finished raised OSError"),
            (_call_futures.SUCCESSFUL_FUTURE, "finished returned"),
        ]:
            self.assertEqual(repr(future), f"<CallFuture (unbound) {text}>")

    def test_multiple_set_result(self) -> None:
        f = _call_futures.create_future(state=cf.PENDING)
        f.set_result(1)
        with self.assertRaisesRegex(
            cf.futures.InvalidStateError,
            r"FINISHED: <CallFuture \(unbound\) finished returned>",
        ):
            f.set_result(2)
        self.assertTrue(f.done())
        self.assertEqual(f.result(), 1)

    def test_multiple_set_exception(self) -> None:
        f = _call_futures.create_future(state=cf.PENDING)
        e = ValueError()
        f.set_exception(e)
        with self.assertRaisesRegex(
            cf.futures.InvalidStateError,
            r"FINISHED: <CallFuture \(unbound\) finished raised ValueError>",
        ):
            f.set_exception(Exception())
        self.assertEqual(f.exception(), e)


# --------------------------------------------------------------- procexec's equivalents
def test_a_worker_is_a_fresh_interpreter() -> None:
    """As spawn's workers (CPython's max_tasks_per_child default): nothing of this
    process is inherited, neither its imports nor its globals."""
    with ProcessExecutor(1) as ex:
        assert "pytest" in sys.modules
        assert ex.submit_call(targets.imported, "pytest").result(timeout=60) is False
        cf.init("changed here")
        try:
            assert ex.submit_call(cf.get_init_status).result(timeout=60) == "uninitialized"
        finally:
            cf.init("uninitialized")


def _ours(cls: type) -> Iterator[tuple[str, str]]:
    """``(CPython's class name, test name)`` of each test ``cls`` defines over CPython's."""
    cpython = {vars(cf)[name] for name in vars(cf) if isinstance(vars(cf)[name], type)}
    for name, value in vars(cls).items():
        if not (name.startswith("test_") or name == "_fail_on_deadlock"):
            continue
        del value
        owners = [
            base
            for base in cls.__mro__[1:]
            if name in vars(base) and (base in cpython or base is _call_futures.FutureTests)
        ]
        assert owners, f"{cls.__name__}.{name} overrides no CPython test"
        yield owners[0].__name__, name


def test_the_list_of_differences_is_exact() -> None:
    """Every entry of DIFFERENCES is a CPython test rewritten or skipped here, and every
    CPython test rewritten here has an entry."""
    rewritten: set[str] = set()
    for cls in list(globals().values()):
        if isinstance(cls, type) and issubclass(cls, unittest.TestCase):
            rewritten.update(f"{owner}.{name}" for owner, name in _ours(cls))
    assert rewritten == set(DIFFERENCES)
