"""The ``procexec`` command: run lists of commands in parallel, like xargs -P or GNU parallel.

``main(argv)`` parses the options (``_cli_args``), builds the job list (``_template``),
then a ``_Runner`` keeps ``-j`` jobs running on one ProcessExecutor, printing each job's
output whole as it ends, writing the job log (``_joblog``) and updating the progress bar.
"""

from __future__ import annotations

import heapq
import itertools
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from procexec._cli_args import (
    USAGE_ERROR,
    Halt,
    UsageError,
    build_parser,
    parse_halt,
    parse_jobs,
    parse_term_seq,
)
from procexec._executor import DEFAULT_TERM_SEQUENCE, ProcessExecutor, default_max_jobs
from procexec._future import ProcessFuture
from procexec._joblog import JobLog, Row, read_outcomes
from procexec._result import start_error_status
from procexec._signals import EXIT_SIGNALS, SignalWatch, exit_status
from procexec._template import Template, TemplateError, read_lines, split_sources

INTERRUPTED = 130
MAX_FAILED_STATUS = 101


@dataclass(frozen=True)
class Job:
    """One job of the list: its sequence number ({#}) and its arguments."""

    seq: int
    index: int  # position among the jobs that will run (for --keep-order)
    args: tuple[str, ...]


@dataclass
class Plan:
    """Everything main() decided before running anything."""

    template: Template | None  # None: each argument is a whole shell command line
    jobs: list[Job]
    max_jobs: int
    retries: int
    timeout: float | None
    halt: Halt | None
    term_sequence: Sequence[tuple[int, float]]
    joblog: str | None
    keep_order: bool
    tag: bool
    bar: bool
    dry_run: bool

    def command(self, job: Job, slot: int) -> list[str] | str:
        """The argv, or the shell command line, for ``job`` in ``slot``."""
        if self.template is None:
            return job.args[0]
        return self.template.expand(job.args, job.seq, slot)


class _Terminated(BaseException):
    """Raised in the main thread when procexec itself receives SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.status = exit_status(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    try:
        plan = make_plan(sys.argv[1:] if argv is None else list(argv))
        log = JobLog(plan.joblog) if plan.joblog and not plan.dry_run else None
    except UsageError as error:
        print(f"procexec: {error}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as error:
        print(f"procexec: cannot write job log {plan.joblog}: {error.strerror}", file=sys.stderr)
        return USAGE_ERROR
    if plan.dry_run:
        for job in plan.jobs:
            print(_text(plan.command(job, 1)))
        return 0
    try:
        runner = _Runner(plan, log)
        with _signals_interrupt(runner.wake):
            return runner.run()
    except KeyboardInterrupt:
        return INTERRUPTED
    except _Terminated as terminated:
        return terminated.status
    finally:
        if log is not None:
            log.close()


def make_plan(argv: list[str]) -> Plan:
    """Parse ``argv`` into a Plan; raise UsageError with a one-line message."""
    options = build_parser().parse_args(argv)
    if options.retries < 1:
        raise UsageError(f"--retries must be at least 1, got {options.retries}")
    if options.timeout is not None and not options.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {options.timeout}")
    if (options.resume or options.resume_failed) and not options.joblog:
        raise UsageError("--resume and --resume-failed need --joblog FILE")
    template, all_jobs = _jobs(options.command, options.shell)
    skip = _already_done(options.joblog, options.resume, options.resume_failed)
    kept = [(seq, args) for seq, args in all_jobs if seq not in skip]
    return Plan(
        template=template,
        jobs=[Job(seq, index, args) for index, (seq, args) in enumerate(kept)],
        max_jobs=_max_jobs(options.jobs),
        retries=options.retries,
        timeout=options.timeout,
        halt=parse_halt(options.halt),
        term_sequence=parse_term_seq(options.term_seq)
        if options.term_seq
        else DEFAULT_TERM_SEQUENCE,
        joblog=options.joblog,
        keep_order=options.keep_order,
        tag=options.tag,
        bar=options.bar,
        dry_run=options.dry_run,
    )


def _max_jobs(text: str | None) -> int:
    if text is None:
        return default_max_jobs()
    from loky import cpu_count  # noqa: PLC0415  # loading loky is not free: only on use

    return parse_jobs(text, int(cpu_count()))


def _jobs(
    words: list[str], shell: bool
) -> tuple[Template | None, list[tuple[int, tuple[str, ...]]]]:
    try:
        template_words, sources = split_sources(words)
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    if sources is None:
        sources = [read_lines("-")]
    if not template_words:
        if len(sources) != 1:
            raise UsageError("give a command before ::: (or one command per line on stdin)")
        return None, [(seq, (line,)) for seq, line in enumerate(sources[0], 1) if line.strip()]
    try:
        template = Template.parse(template_words, shell=shell, sources=len(sources))
    except TemplateError as error:
        raise UsageError(str(error)) from None
    return template, list(enumerate(itertools.product(*sources), 1))


def _already_done(joblog: str | None, resume: bool, resume_failed: bool) -> set[int]:
    if not joblog or not (resume or resume_failed):
        return set()
    try:
        outcomes = read_outcomes(joblog)
    except OSError as error:
        raise UsageError(f"cannot read job log {joblog}: {error.strerror}") from None
    return {seq for seq, succeeded in outcomes.items() if succeeded or not resume_failed}


def _text(command: list[str] | str) -> str:
    return command if isinstance(command, str) else shlex.join(command)


@contextmanager
def _signals_interrupt(wake: Callable[[], None]) -> Iterator[None]:
    """In the main thread, turn SIGTERM and SIGHUP into an exception so jobs are stopped
    and reaped (SIGHUP only when not ignored, as under ``nohup``), and call ``wake`` from a
    watch thread on SIGINT, SIGTERM or SIGHUP: the handler then runs even if the signal
    landed just before the main thread blocked (see procexec._signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    def react(signum: int) -> None:
        if signum == signal.SIGINT or signal.getsignal(signum) is handler:
            wake()

    taken = [s for s in EXIT_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, handler) for signum in taken}
    watch = SignalWatch.start(react)
    try:
        yield
    finally:
        if watch is not None:
            watch.stop()
        for signum, action in previous.items():
            signal.signal(signum, action)


@dataclass
class _Running:
    job: Job
    slot: int
    attempt: int
    command: list[str] | str
    stopped: bool = False  # stopped by --halt now: not a result


class _Runner:
    """Keeps up to max_jobs jobs running and handles each one as it ends."""

    def __init__(self, plan: Plan, log: JobLog | None) -> None:
        self.plan = plan
        self.log = log
        self.output = _Output(plan.keep_order, plan.tag)
        self.free_slots = list(range(1, plan.max_jobs + 1))
        self.running: dict[ProcessFuture[Any], _Running] = {}
        self.todo: deque[tuple[Job, int]] = deque((job, 1) for job in plan.jobs)
        self.failed = self.succeeded = 0
        self.halting = False
        self.bar = _progress_bar(len(plan.jobs)) if plan.bar else None
        self.woken: Future[None] = Future()  # resolved by wake(): ends the current wait

    def run(self) -> int:
        """Run every job; return the exit status (failed jobs, capped at 101)."""
        shell = self.plan.template is None or self.plan.template.shell
        with ProcessExecutor(self.plan.max_jobs, term_sequence=self.plan.term_sequence) as ex:
            try:
                while self.running or (self.todo and not self.halting):
                    self._start_more(ex, shell)
                    self._wait_for_an_end()
                    done = [f for f in self.running if f.done()]  # in submission order
                    for future in done:
                        self._finish(ex, future)
            except BaseException:
                # Log and print what finished before the interruption; then the executor
                # stops and reaps the rest as the exception leaves the with block.
                for future in [f for f in self.running if f.done()]:
                    self._finish(ex, future)
                raise
            finally:
                if self.bar is not None:
                    self.bar.close()
        return min(self.failed, MAX_FAILED_STATUS)

    def wake(self) -> None:
        """End the main thread's current wait (called from the signal watch thread)."""
        with suppress(InvalidStateError):  # already woken
            self.woken.set_result(None)

    def _wait_for_an_end(self) -> None:
        """Wait until a job ends or wake() is called."""
        if not self.running:
            return
        wait([*self.running, self.woken], return_when=FIRST_COMPLETED)
        if self.woken.done():
            self.woken = Future()

    def _start_more(self, ex: ProcessExecutor, shell: bool) -> None:
        while self.todo and self.free_slots and not self.halting:
            job, attempt = self.todo.popleft()
            slot = heapq.heappop(self.free_slots)
            command = self.plan.command(job, slot)
            future = ex.run(command, capture_output=True, timeout=self.plan.timeout, shell=shell)
            self.running[future] = _Running(job, slot, attempt, command)

    def _finish(self, ex: ProcessExecutor, future: ProcessFuture[Any]) -> None:
        state = self.running.pop(future)
        heapq.heappush(self.free_slots, state.slot)
        returncode, stdout, stderr, started = _outcome(future, state.command)
        if state.stopped and returncode < 0:
            return  # stopped by --halt now: it did not finish
        if returncode != 0 and state.attempt < self.plan.retries and not self.halting:
            self.todo.appendleft((state.job, state.attempt + 1))
            return
        if self.log is not None:
            runtime = max(0.0, time.time() - started)
            self.log.write(
                Row(state.job.seq, started, runtime, len(stdout), returncode, _text(state.command))
            )
        self.output.emit(state.job, stdout, stderr)
        if returncode == 0:
            self.succeeded += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self.bar.update(1)
        self._check_halt(ex)

    def _check_halt(self, ex: ProcessExecutor) -> None:
        halt = self.plan.halt
        if halt is None or self.halting:
            return
        if halt.reached(self.failed, self.succeeded, len(self.plan.jobs)):
            self.halting = True
            if halt.when == "now":
                for state in self.running.values():
                    state.stopped = True
                ex.terminate_jobs()


def _outcome(
    future: ProcessFuture[Any], command: list[str] | str
) -> tuple[int, bytes, bytes, float]:
    """(returncode, stdout, stderr, start time) of a finished job, whatever its end."""
    started = future.started_at or time.time()
    try:
        result = future.result()
    except subprocess.TimeoutExpired as expired:
        popen = future.popen
        returncode = popen.returncode if popen is not None and popen.returncode is not None else -1
        return returncode, expired.stdout or b"", expired.stderr or b"", started
    except OSError as error:
        message = f"procexec: {_text(command)}: {error.strerror}\n".encode()
        return start_error_status(error), b"", message, started
    return result.returncode, result.stdout, result.stderr, result.started_at


class _Output:
    """Prints each job's output whole; in input order with keep_order; tagged with tag."""

    def __init__(self, keep_order: bool, tag: bool) -> None:
        self.keep_order = keep_order
        self.tag = tag
        self.next_index = 0
        self.held: dict[int, tuple[Job, bytes, bytes]] = {}

    def emit(self, job: Job, stdout: bytes, stderr: bytes) -> None:
        """Print now, or hold until every earlier job has been printed."""
        if not self.keep_order:
            self._write(job, stdout, stderr)
            return
        self.held[job.index] = (job, stdout, stderr)
        while self.next_index in self.held:
            self._write(*self.held.pop(self.next_index))
            self.next_index += 1

    def _write(self, job: Job, stdout: bytes, stderr: bytes) -> None:
        for data, stream in ((stdout, sys.stdout), (stderr, sys.stderr)):
            if not data:
                continue
            if self.tag:
                prefix = " ".join(job.args).encode() + b"\t"
                lines = data.splitlines(keepends=True)
                data = b"".join(prefix + line for line in lines)  # noqa: PLW2901
            stream.flush()
            stream.buffer.write(data)
            stream.buffer.flush()


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm  # noqa: PLC0415  # only with --bar

    return tqdm(total=total, file=sys.stderr, unit="job", dynamic_ncols=True)
