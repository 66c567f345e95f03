"""ProcessExecutor: the public face. It checks arguments and hands jobs to its reaper."""

from __future__ import annotations

import itertools
import logging
import subprocess
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from procexec._core._callfuture import CallFuture
from procexec._core._calls import (
    CallQueue,
    CallsExecutor,
    batched,
    check_buffersize,
    map_in_order,
)
from procexec._core._future import ProcessFuture
from procexec._core._job import checked_limits, command_job
from procexec._core._lifecycle import Block, abort
from procexec._core._options import (
    DEFAULT_TERM_SEQUENCE,
    RunOptions,
    default_max_jobs,
    run_options,
)
from procexec._core._progress import ExecutorBar
from procexec._core._reaper import Reaper
from procexec._core._resources._guardian import GUARDIAN
from procexec._core._streams import LineCallback
from procexec._validate import (
    check_max_jobs,
    check_term_sequence,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from procexec._core._resources._admission import Admission
    from procexec._core._stats import ExecutorStats
    from procexec._core._types import Command, RunKwargs, SubmitKwargs
    from procexec._core._workeroptions import WorkerOptions
    from procexec._core._workerspec import WorkerSpec
    from procexec._result import JobResult

logger = logging.getLogger("procexec")

T = TypeVar("T")
P = ParamSpec("P")

_STREAMS = ("stdin", "stdout", "stderr")
_counter = itertools.count(1)


class ProcessExecutor(Executor):
    """Runs external commands as child processes, and Python calls in worker processes
    (:meth:`submit_call`), at most ``max_jobs`` of them at once.

    Args:
        max_jobs: the most jobs (commands and calls) running at once; None means
            :func:`default_max_jobs`.
        term_sequence: how a job is stopped (``terminate()``, a timeout, leaving the ``with``
            block by an exception): ``(signal, grace seconds)`` steps; SIGKILL is appended
            if the sequence does not end with it.
        new_process_group: start each child in a process group of its own (the default),
            so stopping a job also stops its grandchildren; a job can override it.
        at_exit: what happens to jobs still queued or running when the interpreter exits
            without having shut the executor down: ``"wait"`` (the default, like
            ThreadPoolExecutor) runs them to the end; ``"stop"`` cancels the queued ones and
            stops and reaps the running ones.
        sigterm: while a ``with`` block of the main thread runs, turn SIGTERM and SIGHUP
            into ``SystemExit(143)`` and ``SystemExit(129)`` so the block stops and reaps
            the jobs (True, the default; each only when it has its default action, or an
            outer block armed it). A watch thread also starts stopping the jobs when one
            arrives, so that a main thread blocked in a wait is released. False leaves
            both alone.
        progress: True, or a dict of ``tqdm`` options: a progress bar (``tqdm.auto``) of
            the jobs queued and finished, with the failures counted; closed by
            ``shutdown(wait=True)`` (the end of the ``with`` block).
        memfree: start a job only while at least this much memory is available (bytes,
            or a size like ``"2G"``; MemAvailable, and the room under this process's
            cgroup memory limit). Under half of it, the youngest of two or more running
            jobs is stopped with the termination sequence and queued again (GNU
            parallel's ``--memfree``); its future stays running.
        load: start a job only while fewer than this many processes are running or
            runnable on the machine (GNU parallel's ``--load``).
        pressure: start a job only while Linux pressure stall information ("some
            avg10", a percentage) is under the given limit for each resource:
            ``{"memory": 10, "cpu": 50, "io": 20}``.
        delay: at least this many seconds between two starts (GNU parallel's ``--delay``).
        on_held: called on procexec's own thread with the reason (``"memfree"``,
            ``"load"``, ``"pressure:memory"``, ``"delay"``) when jobs begin to be held back
            by the settings above, and with None when they no longer are.
        guardian: whether a helper process stops the running jobs if this process dies
            in a way no code of its own can act on (SIGKILL, the OOM killer): None (the
            default) guards the jobs of ``with`` and ``async with`` blocks, True every
            job, False none; its helper starts here (True) or when the ``with`` block
            begins (None). See docs/guarantees.md for what it costs.
        workers: how the worker processes of Python calls (:meth:`submit_call`) are
            started: a :class:`~procexec.WorkerOptions` or a dict of its fields.

    Leaving ``with ProcessExecutor() as ex:`` normally waits for every job. Leaving it by an
    exception (KeyboardInterrupt, or SystemExit from SIGTERM or SIGHUP, too) cancels the
    jobs not started, stops the running ones with the termination sequence, reaps them all,
    then lets the exception propagate. Another interrupt meanwhile skips the grace periods
    (SIGKILL) but still reaps every child first.

    An executor is unusable in a child process made by ``os.fork()``: there ``submit``
    raises RuntimeError and the inherited futures fail (docs/guarantees.md).
    """

    def __init__(
        self,
        max_jobs: int | None = None,
        *,
        term_sequence: Sequence[tuple[int, float]] = DEFAULT_TERM_SEQUENCE,
        new_process_group: bool = True,
        at_exit: Literal["wait", "stop"] = "wait",
        sigterm: bool = True,
        progress: bool | Mapping[str, Any] = False,
        memfree: int | str | None = None,
        load: float | None = None,
        pressure: Mapping[str, float] | None = None,
        delay: float | None = None,
        on_held: Callable[[str | None], object] | None = None,
        guardian: bool | None = None,
        workers: WorkerOptions | Mapping[str, Any] | None = None,
    ) -> None:
        if guardian not in (None, True, False):
            raise TypeError(f"guardian must be None, True or False, got {guardian!r}")
        self._guardian = guardian
        self._guarded = bool(guardian)
        if guardian:
            GUARDIAN.start()  # before a job can start: none waits unregistered for it
        if at_exit not in ("wait", "stop"):
            raise ValueError(f'at_exit must be "wait" or "stop", got {at_exit!r}')
        limit = default_max_jobs() if max_jobs is None else check_max_jobs(max_jobs)
        self._new_process_group = bool(new_process_group)
        self._reaper = Reaper(
            limit,
            check_term_sequence(term_sequence),
            name=f"procexec-reaper-{next(_counter)}",
            admission=_admission(memfree, load, pressure, delay),
            on_held=on_held,
            worker_spec=_worker_spec(workers),
        )
        self._block = Block(self._reaper, at_exit, sigterm=sigterm)
        self._bar = _progress_bar(progress)
        self._calls = CallsExecutor(self)
        # Dropped without shutdown(), it takes no more work (as CPython's pools): what is
        # queued still runs, and then its idle workers retire instead of idling on.
        weakref.finalize(self, self._reaper.close, cancel_pending=False).atexit = False
        self._call_queue = CallQueue(self._reaper, self._bar)
        if self._reaper.worker_spec.prestart:
            self._reaper.prestart(self._reaper.worker_spec.prestart, guarded=self._guarded)

    @property
    def max_jobs(self) -> int:
        """The most jobs (commands and calls) running at once. Settable while jobs run,
        without waiting for them: raising it starts waiting jobs at once; lowering it lets
        running jobs finish and starts no new one until fewer than the new limit run, and
        idle workers beyond it exit."""
        return self._reaper.max_jobs

    @max_jobs.setter
    def max_jobs(self, value: int) -> None:
        self._reaper.set_max_jobs(check_max_jobs(value))

    def submit(  # type: ignore[override]  # takes a command, not a callable
        self,
        argv: Command,
        /,
        *,
        timeout: float | None = None,
        new_process_group: bool | None = None,
        **popen_kwargs: Unpack[SubmitKwargs],
    ) -> ProcessFuture[int]:
        """Queue a command; the future resolves to its exit status.

        Args:
            argv: the program and its arguments (a str only with ``shell=True``).
            timeout: seconds from the job's start after which it is stopped with the
                termination sequence; the future then resolves to the negative signal
                number and ``future.timed_out`` is True.
            new_process_group: override the executor's choice for this job.
            **popen_kwargs: passed to ``subprocess.Popen`` (cwd, env, stdin/stdout/stderr
                files or DEVNULL, ...). PIPE is refused here: use :meth:`run` to capture.

        The status is ``Popen.returncode``: negative N means killed by signal N. A command
        that cannot be started resolves to that exception (FileNotFoundError, ...).

        Raises:
            TypeError, ValueError: bad argv or keywords, at this call.
            RuntimeError: after shutdown.
        """
        for stream in _STREAMS:
            if popen_kwargs.get(stream) == subprocess.PIPE:
                raise ValueError(f"submit() does not take {stream}=PIPE: use run() to capture")
        return self._queue(argv, dict(popen_kwargs), timeout, new_process_group, None)

    @overload
    def run(
        self,
        argv: Command,
        /,
        *,
        input: str | None = None,
        capture_output: bool = False,
        timeout: float | None = None,
        check: bool = False,
        text: Literal[True],
        encoding: str | None = None,
        errors: str | None = None,
        on_stdout_line: Callable[[str], object] | None = None,
        on_stderr_line: Callable[[str], object] | None = None,
        universal_newlines: bool | None = None,
        new_process_group: bool | None = None,
        **popen_kwargs: Unpack[RunKwargs],
    ) -> ProcessFuture[JobResult[str]]: ...

    @overload
    def run(
        self,
        argv: Command,
        /,
        *,
        input: str | None = None,
        capture_output: bool = False,
        timeout: float | None = None,
        check: bool = False,
        text: bool = False,
        encoding: str,
        errors: str | None = None,
        on_stdout_line: Callable[[str], object] | None = None,
        on_stderr_line: Callable[[str], object] | None = None,
        universal_newlines: bool | None = None,
        new_process_group: bool | None = None,
        **popen_kwargs: Unpack[RunKwargs],
    ) -> ProcessFuture[JobResult[str]]: ...

    @overload
    def run(
        self,
        argv: Command,
        /,
        *,
        input: str | None = None,
        capture_output: bool = False,
        timeout: float | None = None,
        check: bool = False,
        text: bool = False,
        encoding: str | None = None,
        errors: str,
        on_stdout_line: Callable[[str], object] | None = None,
        on_stderr_line: Callable[[str], object] | None = None,
        universal_newlines: bool | None = None,
        new_process_group: bool | None = None,
        **popen_kwargs: Unpack[RunKwargs],
    ) -> ProcessFuture[JobResult[str]]: ...

    @overload
    def run(
        self,
        argv: Command,
        /,
        *,
        input: str | None = None,
        capture_output: bool = False,
        timeout: float | None = None,
        check: bool = False,
        text: bool = False,
        encoding: str | None = None,
        errors: str | None = None,
        on_stdout_line: Callable[[str], object] | None = None,
        on_stderr_line: Callable[[str], object] | None = None,
        universal_newlines: Literal[True],
        new_process_group: bool | None = None,
        **popen_kwargs: Unpack[RunKwargs],
    ) -> ProcessFuture[JobResult[str]]: ...

    @overload
    def run(
        self,
        argv: Command,
        /,
        *,
        input: bytes | None = None,
        capture_output: bool = False,
        timeout: float | None = None,
        check: bool = False,
        text: Literal[False] = False,
        encoding: None = None,
        errors: None = None,
        on_stdout_line: Callable[[bytes], object] | None = None,
        on_stderr_line: Callable[[bytes], object] | None = None,
        universal_newlines: Literal[False] | None = None,
        new_process_group: bool | None = None,
        **popen_kwargs: Unpack[RunKwargs],
    ) -> ProcessFuture[JobResult[bytes]]: ...

    @overload
    def run(
        self,
        argv: Command,
        /,
        *,
        input: bytes | str | None = None,
        capture_output: bool = False,
        timeout: float | None = None,
        check: bool = False,
        text: bool = False,
        encoding: str | None = None,
        errors: str | None = None,
        on_stdout_line: LineCallback | None = None,
        on_stderr_line: LineCallback | None = None,
        universal_newlines: bool | None = None,
        new_process_group: bool | None = None,
        **popen_kwargs: Unpack[RunKwargs],
    ) -> ProcessFuture[JobResult[Any]]: ...

    def run(
        self,
        argv: Command,
        /,
        *,
        input: bytes | str | None = None,
        capture_output: bool = False,
        timeout: float | None = None,
        check: bool = False,
        text: bool = False,
        encoding: str | None = None,
        errors: str | None = None,
        on_stdout_line: LineCallback | None = None,
        on_stderr_line: LineCallback | None = None,
        new_process_group: bool | None = None,
        **popen_kwargs: Any,
    ) -> ProcessFuture[JobResult[Any]]:
        """Queue a command the way ``subprocess.run`` runs one; the future gives a JobResult.

        The arguments mean what they mean for ``subprocess.run``, except:

        - ``timeout`` counts from the job's start, not from this call. When it expires the
          job's process group gets the termination sequence, the child is reaped, and
          ``result()`` raises ``subprocess.TimeoutExpired`` with the output so far.
        - ``on_stdout_line`` / ``on_stderr_line`` are called with each complete line (and a
          last line without newline) as it arrives, on one of the executor's reaper threads; bytes,
          or str in text mode. An exception they raise is logged and the job goes on.
          Giving one pipes that stream; its output is kept only if it is also captured.

        Output is read by the executor's reaper threads, never a thread per pipe. When
        the child exits, what it wrote is collected and the pipes are closed, even if a
        grandchild still holds them open.
        """
        options = run_options(
            popen_kwargs,
            input=input,
            capture_output=capture_output,
            check=check,
            text=text,
            encoding=encoding,
            errors=errors,
            on_stdout_line=on_stdout_line,
            on_stderr_line=on_stderr_line,
        )
        return self._queue(argv, popen_kwargs, timeout, new_process_group, options)

    def map(  # type: ignore[override]  # maps commands, not a callable over iterables
        self,
        argvs: Iterable[Command],
        *,
        timeout: float | None = None,
        buffersize: int | None = None,
        **popen_kwargs: Any,
    ) -> Iterator[int]:
        """Run every command of ``argvs``; yield their exit statuses in input order.

        Args:
            argvs: commands, each as :meth:`submit` takes it.
            timeout: seconds, from this call, that the iterator may wait for a result;
                past it ``next()`` raises ``concurrent.futures.TimeoutError``.
            buffersize: at most this many commands are queued ahead of the one being
                yielded; the next command is taken from ``argvs`` only as results are
                consumed, so a huge or endless iterable is not read all at once (as in
                Python 3.14's ``Executor.map``). None queues every command at once.
            **popen_kwargs: as for :meth:`submit`, the same for every command.

        Commands not yet finished when the iterator is closed early are cancelled.
        """
        submits = (self.submit(argv, **popen_kwargs) for argv in argvs)
        return map_in_order(submits, timeout=timeout, buffersize=check_buffersize(buffersize))

    def submit_call(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> CallFuture[T]:
        """Queue the Python call ``fn(*args, **kwargs)``, run in a worker process in one
        of the same ``max_jobs`` slots as the commands; ``Executor.submit``'s contract.

        ``fn`` and its arguments are pickled here with cloudpickle (lambdas, closures and
        functions of ``__main__`` too); one that cannot be pickled fails the future. The
        result and an exception come back as ``concurrent.futures``' process pool gives
        them. ``cancel()`` of the future stops a running call (:class:`CallFuture`).

        Raises:
            RuntimeError: after shutdown, or after interpreter shutdown.
        """
        return self._call_queue.submit(fn, args, kwargs, None, None, guarded=self._guarded)

    def run_call(
        self,
        fn: Callable[..., T],
        /,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        limits: Any = None,
    ) -> CallFuture[T]:
        """:meth:`submit_call` with options, as :meth:`run` is to :meth:`submit`.

        Args:
            fn: the callable; ``args`` and ``kwargs`` its arguments.
            timeout: seconds from the call's start (not its queueing, nor the start-up
                and initializer of a worker started for it); past them the worker's
                process group gets the termination sequence, the worker is replaced and
                ``result()`` raises :class:`~procexec.CallTimeout`.
            limits: resource limits (``Limits`` or a dict, as for commands): the call runs
                in a worker started for it and retired after it.
        """
        checked = checked_limits(limits)
        arguments, keywords = tuple(args), dict(kwargs or {})
        return self._call_queue.submit(
            fn, arguments, keywords, timeout, checked, guarded=self._guarded
        )

    def map_calls(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """``Executor.map`` of Python calls: ``fn`` over the iterables, results in order.

        Args:
            timeout: seconds, from this call, that the iterator may wait for a result.
            chunksize: items sent to a worker in one message (fewer round trips).
            buffersize: at most this many calls (chunks) queued ahead of the one being
                yielded, the input read only as results are taken (3.14's ``buffersize``).

        An exception is raised when its item is reached. Closing the iterator early, or
        its timeout, cancels the calls not done, which stops the running ones.
        """
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        buffered = check_buffersize(buffersize)
        items = zip(*iterables, strict=False)  # as map(): the shortest ends it
        if chunksize == 1:
            submits: Iterator[CallFuture[Any]] = (self.submit_call(fn, *args) for args in items)
        else:
            submits = (
                self._call_queue.submit_chunk(fn, chunk, guarded=self._guarded)
                for chunk in batched(items, chunksize)
            )
        return map_in_order(submits, timeout=timeout, buffersize=buffered, flatten=chunksize > 1)

    @property
    def calls(self) -> CallsExecutor:
        """This executor's Python calls as a ``concurrent.futures.Executor`` (``submit`` is
        :meth:`submit_call`, ``map`` :meth:`map_calls`), for code that takes any Executor:
        ``loop.run_in_executor(ex.calls, fn, x)``, libraries, test suites."""
        return self._calls

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new jobs; optionally cancel the waiting ones; optionally wait for the rest.

        The ``concurrent.futures.Executor.shutdown`` contract. If it is interrupted
        (KeyboardInterrupt) while it waits, the jobs are stopped and reaped before the
        exception propagates. Interrupted while it cancels, it loses no future: the jobs
        it did not get to are cancelled by the reaper.
        """
        try:
            self._reaper.close(cancel_pending=cancel_futures)
            if wait:
                self._reaper.join()
                if self._bar is not None:
                    self._bar.close()
        except BaseException:
            if wait:
                abort(self._reaper)
            raise

    def stats(self) -> ExecutorStats:
        """How many jobs run and wait now (and how many of them are calls), why the waiting
        ones wait, and how many workers are idle."""
        return self._reaper.stats()

    def __repr__(self) -> str:
        """``<ProcessExecutor max_jobs=4 running=2 queued=10>``, ``shut down`` at the end
        once it refuses new jobs."""
        stats = self.stats()
        state = " shut down" if self._reaper.closed else ""
        return (
            f"<ProcessExecutor max_jobs={self.max_jobs} running={stats.running} "
            f"queued={stats.queued}{state}>"
        )

    def terminate_jobs(self) -> None:
        """Stop every running job (its process group) with the termination sequence.

        Waiting jobs are not affected: they start as slots free up. A running call's worker
        is stopped too, and its future fails with :class:`~procexec.CallLost`.
        """
        self._reaper.stop_all(kill=False)

    def kill_jobs(self) -> None:
        """Send SIGKILL to every running job's process group at once."""
        self._reaper.stop_all(kill=True)

    def __enter__(self) -> ProcessExecutor:
        if self._guardian is None:
            GUARDIAN.start()  # as in __init__ with guardian=True
            self._guarded = True
        self._block.enter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        try:
            self._block.exit(exc_type, self.shutdown)
        except (KeyboardInterrupt, SystemExit):
            # Also an interrupt that landed on the first instruction of Block.exit, before
            # its own guard (CPython checks for signals as a function starts): abort, as
            # exit() would have (every step is idempotent), then let it propagate.
            self._block.exit(SystemExit, self.shutdown)
            raise

    async def __aenter__(self) -> ProcessExecutor:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        """``async with``: as ``with``, but the wait for the jobs does not block the event
        loop, and a cancellation of it stops and reaps them (:mod:`procexec.aio`)."""
        await self._block.exit_async(exc_type, self.shutdown)

    def _queue(
        self,
        argv: object,
        popen_kwargs: dict[str, Any],
        timeout: object,
        new_process_group: bool | None,
        options: RunOptions | None,
    ) -> ProcessFuture[Any]:
        new_group = self._new_process_group if new_process_group is None else new_process_group
        future: ProcessFuture[Any] = ProcessFuture()
        job = command_job(
            argv, popen_kwargs, future, timeout, new_group=new_group, options=options,
            guarded=self._guarded,
        )  # fmt: skip
        future._bind(job, self._reaper)
        if self._bar is not None:
            self._bar.queued(future)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("procexec: queued %r", job.argv)
        self._reaper.enqueue(job)
        return future


def _progress_bar(progress: bool | Mapping[str, Any]) -> ExecutorBar | None:
    if not progress:
        return None
    return ExecutorBar(**(progress if isinstance(progress, Mapping) else {}))


def _admission(
    memfree: int | str | None,
    load: float | None,
    pressure: Mapping[str, float] | None,
    delay: float | None,
) -> Admission | None:
    """The admission settings checked, or None when none is given (its module, the probes
    and their ``pathlib``, are loaded only for one)."""
    if memfree is None and load is None and not pressure and delay is None:
        return None
    from procexec._core._resources._admission import make_admission  # noqa: PLC0415

    return make_admission(memfree, load, pressure, delay)


def _worker_spec(workers: WorkerOptions | Mapping[str, Any] | None) -> WorkerSpec | None:
    """``workers=`` checked, as the lanes start workers with it; None for the defaults
    (the reaper's), without loading ``WorkerOptions`` (a dataclass)."""
    if workers is None:
        return None
    from procexec._core._workeroptions import worker_options  # noqa: PLC0415

    return worker_options(workers).spec()
