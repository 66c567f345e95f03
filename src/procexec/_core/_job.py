"""One job: what to run, how to stop it, what it produced, and how its future resolves.

A Job is created by the caller's thread and, once taken from the queue, touched only by the
thread of the lane that took it.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from procexec._core._options import RunOptions, process_group_kwargs
from procexec._core._streams import InputPipe, OutputPipe
from procexec._result import JobResult
from procexec._status import ParentPeak, UsageFigures, exceeds_parent_peak
from procexec._validate import check_argv, check_popen_kwargs, check_timeout

if TYPE_CHECKING:
    from procexec._core._resources._rlimits import Limits

logger = logging.getLogger("procexec")


class JobFuture(Protocol):
    """What the engine calls on a job's future (:class:`~procexec.ProcessFuture`
    implements it). The caller's side of the future is ``concurrent.futures.Future``'s."""

    def cancel(self) -> bool:
        """Cancel the job if it waits (``shutdown(cancel_futures=True)``)."""

    def cancelled(self) -> bool:
        """Whether it was cancelled (a cancelled job waiting is dropped, not admitted)."""

    def set_running_or_notify_cancel(self) -> bool:
        """The job is about to start; False if it was cancelled while it waited."""

    def set_result(self, result: Any) -> None:
        """The job's outcome: its exit status or ``JobResult``."""

    def set_exception(self, exception: BaseException | None) -> None:
        """The job's outcome: what ``result()`` raises."""

    def _fail(self, error: BaseException) -> None:
        """Resolve with ``error`` from any state but done (a job that cannot go on)."""

    def _release_if_held_here(self) -> None:
        """Give back the future's lock if the calling thread holds it (``Reaper.join``)."""

    def _fail_after_fork(self, error: BaseException) -> None:
        """In a child made by ``os.fork()``: resolve the inherited future with ``error``."""


class _Settled:
    """What a job refers to, in place of its future, once its outcome is in that future
    (:meth:`Job.let_go`): every call of the engine's on it does nothing."""

    def cancel(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def set_running_or_notify_cancel(self) -> bool:
        return False

    def set_result(self, result: Any) -> None:
        pass

    def set_exception(self, exception: BaseException | None) -> None:
        pass

    def _fail(self, error: BaseException) -> None:
        pass

    def _release_if_held_here(self) -> None:
        pass

    def _fail_after_fork(self, error: BaseException) -> None:
        pass


#: The one stand-in for the futures of settled jobs.
SETTLED: JobFuture = _Settled()


class Job:
    """A queued or running command and everything the reaper knows about it."""

    #: A command counts against its lane's share of ``max_jobs`` (``_reaper.py``).
    counts_in_share = True

    __slots__ = (
        "argv",
        "deadline",
        "ended_mono",
        "future",
        "guard_slot",
        "guarded",
        "launch",
        "limits",
        "options",
        "own_group",
        "popen",
        "popen_kwargs",
        "requeue",
        "requeues",
        "started_mono",
        "started_wall",
        "stderr",
        "stdin",
        "stdout",
        "stop_is_fatal",
        "stop_steps",
        "timed_out",
        "timeout",
        "usage",
    )

    def __init__(
        self,
        argv: Sequence[Any] | str | bytes,
        popen_kwargs: dict[str, Any],
        future: JobFuture,
        *,
        timeout: float | None,
        own_group: bool,
        options: RunOptions | None,
        guarded: bool = False,
        limits: Limits | None = None,
        launch: Sequence[Any] | str | bytes | None = None,
    ) -> None:
        self.argv = argv
        #: Registered with the guardian while it runs (``_guardian.py``).
        self.guarded = guarded
        #: Its slot in the guardian's registry while it runs, else 0.
        self.guard_slot = 0
        #: The job's resource limits (``_rlimits.py``), or None.
        self.limits = limits
        #: What Popen starts: ``argv``, or ``argv`` under ``prlimit`` for limits.
        self.launch = argv if launch is None else launch
        self.popen_kwargs = popen_kwargs
        self.future = future
        self.timeout = timeout
        self.own_group = own_group
        self.options = options
        self.popen: subprocess.Popen[bytes] | None = None
        self.started_wall = 0.0
        self.started_mono = 0.0
        #: Monotonic instant the child was reaped, and its usage then; None before.
        self.ended_mono: float | None = None
        self.usage: UsageFigures | None = None
        self.stdout: OutputPipe | None = None
        self.stderr: OutputPipe | None = None
        self.stdin: InputPipe | None = None
        #: Monotonic instant of the next timeout or termination step, or None.
        self.deadline: float | None = None
        #: Termination steps still to take; None while the job is not being stopped.
        self.stop_steps: deque[tuple[int, float]] | None = None
        self.timed_out = False
        #: The signal sent at the timeout kills this child unless it has exited already.
        self.stop_is_fatal = False
        #: Being stopped to free memory (``memfree``): queue it again once it has exited.
        self.requeue = False
        #: How many times it was stopped and queued again.
        self.requeues = 0

    def log_end(self, returncode: int, ended: float) -> None:
        """The DEBUG line of a job that ended (called only when DEBUG is on)."""
        assert self.popen is not None
        logger.debug(
            "procexec: ended pid %d with status %d after %.3f s%s: %r",
            self.popen.pid,
            returncode,
            ended - self.started_mono,
            " (timed out)" if self.timed_out else "",
            self.argv,
        )

    def let_go(self) -> None:
        """Its outcome is in its future: drop the reference to it. The future refers to
        its job (for its figures), and a job still referring to its future would make a
        cycle that keeps the result (captured output too) alive, after the caller drops
        the future, until the collector's next full pass."""
        self.future = SETTLED

    def reset_for_requeue(self) -> None:
        """Forget the run that was stopped to free memory, so that the job can start again
        (its future stays running)."""
        self.popen = None
        self.stdout = self.stderr = None
        self.stdin = None
        self.deadline = None
        self.stop_steps = None
        self.timed_out = self.stop_is_fatal = False
        self.usage = None
        self.requeue = False
        self.requeues += 1

    def started(self, popen: subprocess.Popen[bytes]) -> None:
        """Record the started child, its start time and its timeout deadline (cannot fail)."""
        self.started_mono = time.monotonic()
        self.started_wall = time.time()
        if self.timeout is not None:
            self.deadline = self.started_mono + self.timeout
        self.popen = popen

    def failed_now(self) -> None:
        """Record this instant as the job's end, unless its end is known: a job that failed
        (before or after its start) ends when it fails. Never raises."""
        if self.ended_mono is None:
            self.ended_mono = time.monotonic()
            if self.popen is None:  # never started: it started and ended now
                self.started_mono = self.ended_mono
                self.started_wall = time.time()

    def take_pipes(self) -> None:
        """Take over the pipes Popen opened for the started child."""
        popen = self.popen
        assert popen is not None
        options = self.options
        if options is None:  # submit(): it refuses PIPE, so there is no pipe to take
            return
        decode = options.decode if options.text else None
        if popen.stdout is not None:
            self.stdout = OutputPipe(
                popen.stdout,
                keep=options.keep_stdout,
                on_line=options.on_stdout_line,
                decode=decode,
            )
        if popen.stderr is not None:
            self.stderr = OutputPipe(
                popen.stderr,
                keep=options.keep_stderr,
                on_line=options.on_stderr_line,
                decode=decode,
            )
        if popen.stdin is not None:
            self.stdin = InputPipe(popen.stdin, options.input or b"")

    def close_pipes(self) -> None:
        """Close this process's ends of the child's pipes without reading or writing more
        (in a child made by fork(); the pipe objects share these files)."""
        if self.popen is not None:
            for file in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
                if file is not None:
                    with contextlib.suppress(OSError):  # nothing is buffered: we use os.write
                        file.close()

    def output_pipes(self) -> list[OutputPipe]:
        """The output pipes still open."""
        if self.stdout is None and self.stderr is None:
            return []
        return [pipe for pipe in (self.stdout, self.stderr) if pipe is not None and not pipe.closed]

    def expired(self, *, stop_is_fatal: bool) -> None:
        """The timeout passed while the child ran; it is being stopped. ``stop_is_fatal``:
        the first stop signal kills the child by default and it neither catches, ignores
        nor blocks it."""
        self.timed_out = True
        self.stop_is_fatal = stop_is_fatal

    def exited(self, returncode: int) -> None:
        """Settle ``timed_out`` once the status is known: a child that the stop signal would
        have killed but that exited by itself had exited before the signal reached it."""
        if self.timed_out and self.stop_is_fatal and returncode >= 0:
            self.timed_out = False

    def outcome(
        self, returncode: int, usage: resource.struct_rusage | None, ended_mono: float
    ) -> tuple[Any, BaseException | None]:
        """The future's value or exception, once the child is reaped and its pipes closed.

        Never raises: what building the result raises (a UnicodeDecodeError, a
        MemoryError) is this job's exception, as ``subprocess.run`` would raise it.
        """
        self.ended_mono = ended_mono
        if usage is not None:
            # The figures only: a struct_rusage kept alive with each job is a GC-tracked
            # object per job, and made storm's parent CPU 4 % higher (docs/benchmarks-log.md).
            kib = usage.ru_maxrss
            own = kib > ParentPeak.kib and exceeds_parent_peak(kib)  # a call only past it
            self.usage = (usage.ru_utime, usage.ru_stime, kib, own)
        if self.options is None:
            return returncode, None
        try:
            return self._result(self.options, returncode, ended_mono), None
        except Exception as exc:
            return None, exc

    def _result(
        self,
        options: RunOptions,
        returncode: int,
        ended_mono: float,
    ) -> JobResult[Any]:
        assert self.popen is not None
        stdout = self.stdout.data() if self.stdout else None
        stderr = self.stderr.data() if self.stderr else None
        if self.timed_out:
            assert self.timeout is not None
            # Bytes, as subprocess documents them; decoding could also hide the timeout.
            raise subprocess.TimeoutExpired(self.argv, self.timeout, stdout, stderr)
        for pipe in (self.stdout, self.stderr):
            if pipe is not None and pipe.error is not None:
                raise pipe.error
        stdout, stderr = options.decode(stdout), options.decode(stderr)
        if options.check and returncode:
            raise subprocess.CalledProcessError(returncode, self.argv, stdout, stderr)
        return JobResult(
            self.argv,
            returncode,
            stdout,
            stderr,
            pid=self.popen.pid,
            started_at=self.started_wall,
            ended_at=time.time(),
            duration=ended_mono - self.started_mono,
            usage=self.usage,
            limit_hit=self.limit_hit(returncode),
            requeues=self.requeues,
        )

    def limit_hit(self, returncode: int) -> str | None:
        """The resource limit this finished job most likely ran into, or None."""
        if self.limits is None:
            return None
        from procexec._core._resources._rlimits import limit_hit  # noqa: PLC0415  # as limits=

        cpu = self.usage[0] + self.usage[1] if self.usage is not None else None
        return limit_hit(self.limits, returncode, cpu)


def command_job(
    argv: object,
    popen_kwargs: dict[str, Any],
    future: JobFuture,
    timeout: object,
    *,
    new_group: bool,
    options: RunOptions | None,
    guarded: bool,
) -> Job:
    """The job of a command from ``submit()``/``run()``'s arguments, each checked here, at
    the call: TypeError or ValueError for a bad one. ``popen_kwargs`` is completed for
    Popen (the process group; ``limits`` taken out)."""
    limits = checked_limits(popen_kwargs.pop("limits", None))
    check_popen_kwargs(popen_kwargs)
    command = check_argv(argv, shell=bool(popen_kwargs.get("shell")))
    launch = None
    if limits is not None:
        from procexec._core._resources._rlimits import limited  # noqa: PLC0415  # as checked_limits

        launch = limited(command, popen_kwargs, limits)
    return Job(
        command,
        popen_kwargs,
        future,
        timeout=check_timeout(timeout),
        own_group=process_group_kwargs(popen_kwargs, new_group),
        options=options,
        guarded=guarded,
        limits=limits,
        launch=launch,
    )


def checked_limits(value: object) -> Limits | None:
    """``limits=`` checked (of a command or a call); its module (a dataclass) is loaded
    only when it is given."""
    if value is None:
        return None
    from procexec._core._resources._rlimits import check_limits  # noqa: PLC0415

    return check_limits(value)
