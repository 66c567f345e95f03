"""The anchorscad-utils ``ProcessManager`` / ``ProcessManagerEntry`` API, on ProcessExecutor.

Existing code keeps working with no change but an install::

    from anchorscad_lib.utils.process_manager import ProcessManager, ProcessManagerEntry
    # or: from procexec.compat import ProcessManager, ProcessManagerEntry

What differs from the original, and why, is in ``docs/migrating.md``. In short: completion
is event driven (``poll_time`` is accepted but unused); piped output is drained while the
child runs, so a chatty child cannot deadlock; a command that cannot be started is reported
through ``ended()`` instead of raising out of ``run_proc``. ``started()`` and ``ended()``
still run only in the thread that calls the manager's methods.
"""

from __future__ import annotations

import inspect
import subprocess
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from procexec import ProcessExecutor, ProcessFuture, default_max_jobs
from procexec._result import JobResult
from procexec._status import CANNOT_EXECUTE_STATUS, NOT_FOUND_STATUS, start_error_status
from procexec._validate import check_popen_kwargs

__all__ = (
    "CANNOT_EXECUTE_STATUS",
    "DEFAULT_MAX_JOBS",  # noqa: F822  # provided by the module __getattr__ below
    "NOT_FOUND_STATUS",
    "ProcessManager",
    "ProcessManagerEntry",
)

_POPEN_SIGNATURE = inspect.signature(subprocess.Popen)


def __getattr__(name: str) -> int:
    # DEFAULT_MAX_JOBS is computed on first use, not at import (it asks loky for the CPUs).
    if name == "DEFAULT_MAX_JOBS":
        return default_max_jobs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class ProcessManagerEntry:
    """One process run by a :class:`ProcessManager`; subclass it to be told of its end.

    Attributes:
        popen_obj: the ``subprocess.Popen`` once started, else None.
        start_error: the exception if the command could not be started, else None.
    """

    popen_obj: subprocess.Popen[Any] | None = None

    #: Set by the manager when the command could not be started.
    start_error: Exception | None = field(default=None, init=False, repr=False, compare=False)

    def started(self) -> None:
        """Called in the caller's thread just before the process is created."""

    def set_popen_obj(self, popen_obj: subprocess.Popen[Any]) -> None:
        """Called with the Popen object once the process exists; sets ``popen_obj``."""
        self.popen_obj = popen_obj

    def ended(self, status: int) -> None:
        """Called in the caller's thread once the process has ended, with its exit status."""

    def _ended(self, status: int) -> None:
        self.collect_io()
        self.ended(status)

    def collect_io(self) -> None:
        """Kept for compatibility: output is now collected continuously while the child runs."""

    def communicate(self) -> tuple[Any, Any]:
        """Wait for the process and return its ``(stdout, stderr)``.

        Each is None unless that stream was ``subprocess.PIPE`` (bytes, or str in text mode).
        For a command that could not be started (``start_error`` is set), each piped
        stream is empty: the start error is ``ended()``'s status and ``start_error``, not
        an exception out of here.
        """
        no_output: tuple[Any, Any] | None = getattr(self, "_procexec_no_output", None)
        if no_output is not None:
            return no_output
        future = _future_of(self)
        if future is None:
            return (None, None)
        result = future.result()
        return (result.stdout, result.stderr)


class _Finished:
    """The futures that have finished since the manager last looked, filled by their
    done-callbacks on the reaper's threads: the manager checks its entries only when one has
    finished, and waits on this one condition instead of on every running future."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._futures: set[Future[JobResult[Any]]] = set()

    def add(self, future: Future[JobResult[Any]]) -> None:
        """Done-callback: record ``future`` and wake a waiting manager."""
        with self._changed:
            self._futures.add(future)
            self._changed.notify()

    def take(self) -> set[Future[JobResult[Any]]]:
        """The futures recorded since the last call."""
        with self._changed:
            futures, self._futures = self._futures, set()
        return futures

    def put_back(self, futures: set[Future[JobResult[Any]]]) -> None:
        """Record again futures that were taken but not handled."""
        if futures:
            with self._changed:
                self._futures |= futures

    def wait(self) -> None:
        """Wait until a future has been recorded that was not taken yet."""
        with self._changed:
            self._changed.wait_for(lambda: bool(self._futures))


@dataclass
class ProcessManager:
    """Runs processes in the background, at most ``max_jobs`` at once.

    ``run_proc()`` blocks while ``max_jobs`` processes run (None: the default, as for the
    executor). ``poll_time`` is accepted for compatibility and no longer used: the manager
    is woken when a process ends.

    An exception raised by an entry's ``ended()`` propagates out of the call that ran it
    (``run_proc``, ``count_procs``, ``wait_for_completions`` or ``finished_status``), as
    with the original manager; that entry counts as finished, and the other finished
    entries get their ``ended()`` from the next call.
    """

    current_entries: list[Any] = field(default_factory=list)
    finished_entries: list[Any] = field(default_factory=list)
    max_jobs: int | None = field(default_factory=default_max_jobs)
    poll_time: float = 0.2
    _executor: ProcessExecutor | None = field(default=None, init=False, repr=False, compare=False)
    # Made with the executor on first use, so that a fresh manager holds no locks (it can
    # still be deep-copied, as the original can).
    _finished: _Finished | None = field(default=None, init=False, repr=False, compare=False)

    def run_proc(self, proc_entry: ProcessManagerEntry, *args: Any, **kwargs: Any) -> None:
        """Start a process once fewer than ``max_jobs`` run; ``args``/``kwargs`` go to Popen.

        A command that cannot be started does not raise: ``proc_entry.start_error`` is set,
        the entry joins ``finished_entries`` and ``ended()`` is called with
        ``NOT_FOUND_STATUS`` (127) or ``CANNOT_EXECUTE_STATUS`` (126).
        """
        executor = self._executor_for_limit()
        argv, bound = _popen_arguments(args, kwargs)
        self.wait_for_completions()
        proc_entry.started()
        future = executor.run(argv, new_process_group=False, **bound)
        proc_entry._procexec_future = future  # type: ignore[attr-defined]
        future.add_done_callback(self._finished_for_run().add)
        future.wait_started()
        popen = future.popen
        if popen is None:
            proc_entry._procexec_no_output = _no_output(bound)  # type: ignore[attr-defined]
            self._start_failed(proc_entry, future)
            return
        proc_entry.set_popen_obj(popen)
        self.current_entries.append(proc_entry)

    def __post_init__(self) -> None:
        if self.max_jobs is None:
            self.max_jobs = default_max_jobs()

    def count_procs(self) -> int:
        """Call ``ended()`` for every process that has ended; return how many still run."""
        finished = self._finished.take() if self._finished is not None else set()
        if not finished:
            return len(self.current_entries)
        ended = [e for e in self.current_entries if _future_of(e) in finished]
        self.current_entries = [e for e in self.current_entries if _future_of(e) not in finished]
        for position, entry in enumerate(ended):
            future = _future_of(entry)
            assert future is not None
            self.finished_entries.append(entry)
            try:
                entry._ended(_status_of(entry, future))
            except BaseException:
                # As the original: out of this call. The entries not told yet are the next
                # call's, so none is lost and none ends twice.
                rest = ended[position + 1 :]
                self.current_entries.extend(rest)
                self._finished_for_run().put_back({f for e in rest if (f := _future_of(e))})
                raise
        return len(self.current_entries)

    def wait_for_completions(self, max_count: int | None = None) -> int:
        """Wait until at most ``max_count`` processes run (default ``max_jobs - 1``).

        Returns the number running when it returns.
        """
        if max_count is None:
            max_count = self._limit() - 1
        while True:
            count = self.count_procs()
            if count <= max_count:
                return count
            self._finished_for_run().wait()

    def finished_status(self) -> tuple[int, int]:
        """Wait for every process; return ``(succeeded, failed)`` over all finished entries."""
        self.wait_for_completions(0)
        failed = sum(1 for entry in self.finished_entries if _final_status(entry))
        return len(self.finished_entries) - failed, failed

    def _limit(self) -> int:
        """``max_jobs``, or the default if it was set to None after construction."""
        return default_max_jobs() if self.max_jobs is None else self.max_jobs

    def _executor_for_limit(self) -> ProcessExecutor:
        limit = self._limit()
        if self._executor is None:
            self._executor = ProcessExecutor(limit)
        elif self._executor.max_jobs != limit:  # changed since the last run_proc()
            self._executor.max_jobs = limit
        return self._executor

    def _finished_for_run(self) -> _Finished:
        if self._finished is None:
            self._finished = _Finished()
        return self._finished

    def _start_failed(
        self, entry: ProcessManagerEntry, future: ProcessFuture[JobResult[Any]]
    ) -> None:
        error = future.exception()
        entry.start_error = error if isinstance(error, Exception) else None
        self.finished_entries.append(entry)
        entry._ended(_status_of(entry, future))


def _popen_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Popen's ``args`` and its other arguments by name; TypeError as Popen would raise it.

    The usual call, the command and then keywords, is taken apart by hand: binding to
    Popen's signature costs ~40 µs, a tenth of a start, on the caller's side of every job.
    """
    if len(args) == 1 and "args" not in kwargs:
        check_popen_kwargs(kwargs)
        return args[0], dict(kwargs)
    bound = _POPEN_SIGNATURE.bind(*args, **kwargs).arguments
    return bound.pop("args"), bound


def _no_output(popen_kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """What ``communicate()`` returns for a command that never started: an empty bytes
    (or str, in text mode) for each stream that was a pipe, None for the others."""
    text_keys = ("text", "universal_newlines", "encoding", "errors")
    empty = "" if any(popen_kwargs.get(key) for key in text_keys) else b""
    stdout = empty if popen_kwargs.get("stdout") == subprocess.PIPE else None
    stderr = empty if popen_kwargs.get("stderr") == subprocess.PIPE else None
    return stdout, stderr


def _future_of(entry: object) -> ProcessFuture[JobResult[Any]] | None:
    future: ProcessFuture[JobResult[Any]] | None = getattr(entry, "_procexec_future", None)
    return future


def _status_of(entry: object, future: ProcessFuture[JobResult[Any]]) -> int:
    """The exit status of a finished future, remembered on the entry for finished_status()."""
    error = future.exception()
    status = future.result().returncode if error is None else start_error_status(error)
    entry._procexec_status = status  # type: ignore[attr-defined]
    return status


def _final_status(entry: object) -> int:
    status: int = getattr(entry, "_procexec_status", 1)
    return status
