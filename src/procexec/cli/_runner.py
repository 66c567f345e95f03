"""Running a Plan: keep ``-j`` jobs going on one ProcessExecutor and handle each as it ends."""

from __future__ import annotations

import heapq
import queue
import subprocess
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from procexec import ProcessExecutor, ProcessFuture
from procexec._argv import command_text
from procexec._status import start_error_status
from procexec.cli._args import Halt
from procexec.cli._display import Display, LineDisplay, RawDisplay, ResultsDisplay
from procexec.cli._inputs import InputError
from procexec.cli._outputs import Outputs
from procexec.cli._plan import CommandTooLongError, Job, Plan
from procexec.cli._progress import Progress
from procexec.cli._sink import OutputError

if TYPE_CHECKING:  # loaded only when records are kept, or with --results
    from procexec.cli._results import ResultsFile
    from procexec.report import JobRecord

MAX_FAILED_STATUS = 101


class DaskUnreachableError(Exception):
    """``--dask``: no cluster at that address (main() prints it on one line)."""


class _Running:
    """A job handed to the executor: what it runs, and how the run stopped it."""

    __slots__ = ("_text", "attempt", "command", "job", "plan", "slot", "stopped", "timed_out")

    def __init__(
        self, job: Job, slot: int, attempt: int, command: list[str] | str, plan: Plan
    ) -> None:
        self.job = job
        self.slot = slot
        self.attempt = attempt
        self.command = command
        self.plan = plan
        self.stopped = False  # stopped by --halt now: not a result
        self.timed_out = False  # stopped by --timeout N%
        self._text: str | None = None

    @property
    def text(self) -> str:
        """The command line as logged and named in messages (made only when needed)."""
        if self._text is None:
            self._text = self.plan.text(self.job, self.slot)
        return self._text


#: The exit status for a run stopped by a usage problem found late (a command line too
#: long, input that cannot be read), as GNU parallel's "other error".
OTHER_ERROR = 255


class Runner:
    """Keeps up to max_jobs jobs running, starts more as input arrives, and handles each
    one as it ends."""

    def __init__(self, plan: Plan, outputs: Outputs) -> None:
        self.plan = plan
        self.outputs = outputs
        self.display = _display(plan, outputs, self.wake)
        self.results_file: ResultsFile | None = None  # --results FILE.json|.csv|.tsv
        if plan.results is not None and plan.results.format is not None:
            self.results_file = self.display  # type: ignore[assignment]  # see _display()
        self.free_slots = list(range(1, plan.max_jobs + 1))
        # Without {%} in the command, jobs are queued in the executor up to -j ahead of
        # the running ones: it starts the next as soon as one is reaped, without waiting
        # for this thread. The record's slot is then left for the report to work out.
        self.ahead = 0 if _uses_slots(plan) else plan.max_jobs
        self.running: dict[ProcessFuture[Any], _Running] = {}
        self.retry: deque[tuple[Job, int]] = deque()  # jobs to run again (--retries)
        self.failed = self.succeeded = self.started = 0
        self.halting = False
        self.halt_status: int | None = None  # the exit status --halt decided
        self.error: str | None = None  # a late usage problem: exit status 255
        self.runtimes: list[float] = []  # of jobs that succeeded (--timeout N%)
        self.earlier: dict[int, list[JobRecord]] = {}  # seq -> its attempts that were retried
        self.progress = Progress(
            bar=plan.bar,
            eta=plan.eta,
            status=plan.progress,
            total=plan.total,
            jobs=plan.max_jobs,
        )
        #: One item per reason to look again (a job ended, input came, wake()). A queue
        #: implemented in C: putting never blocks, even when a signal handler raised in
        #: the main thread in the middle of its wait (see _wait).
        self.wakeups: queue.SimpleQueue[None] = queue.SimpleQueue()

    def run(self) -> int:
        """Run every job, then write the report and the summary; return the exit status
        (GNU parallel's, see ``_status``; OTHER_ERROR when output could not be written:
        the jobs are then stopped and reaped, and the error said in one line)."""
        try:
            status = self._run()
        except OutputError as error:
            self.outputs.say(f"procexec: {error}")
            status = OTHER_ERROR
        if not self.outputs.finish():
            status = OTHER_ERROR
        return status

    def _run(self) -> int:
        self.plan.feed.start(self.wake)
        with self._executor() as ex:
            try:
                while self._start_more(ex) or self.running:
                    self._wait()
                    for future in [f for f in self.running if f.done()]:  # in start order
                        self._finish(ex, future)
                    self._stop_overdue()
            except BaseException:
                # Log and print what finished before the interruption; then the executor
                # stops and reaps the rest as the exception leaves the with block.
                self._finish_done(ex)
                raise
            finally:
                self.plan.feed.close()
                self.progress.close()
                self.display.close()
        if self.error is not None:
            self.outputs.stderr.text(f"procexec: {self.error}\n")
            return OTHER_ERROR
        return self._status()

    def _finish_done(self, ex: ProcessExecutor) -> None:
        """Handle the jobs that ended, as the run stops by an exception. A file that cannot
        be written now is said here: the exception under way is what the run ends with."""
        for future in [f for f in self.running if f.done()]:
            try:
                self._finish(ex, future)
            except OutputError as error:
                self.outputs.say(f"procexec: {error}")

    def _status(self) -> int:
        """GNU parallel's exit status: the number of failed jobs (at most 101), or what
        ``--halt`` decided when it stopped the run."""
        if self.halt_status is not None:
            return self.halt_status
        if self.plan.halt is not None and self.plan.halt.percent:  # GNU's: a percentage
            return -(-self.failed * 100 // max(self.started, 1))
        return min(self.failed, MAX_FAILED_STATUS)

    def _executor(self) -> Any:
        """This machine's ProcessExecutor, or with ``--dask`` a DaskExecutor (its ``-j``
        jobs in flight spread over the workers)."""
        if self.plan.dask is None:
            return ProcessExecutor(
                self.plan.max_jobs,
                term_sequence=self.plan.term_sequence,
                guardian=None if self.plan.guardian else False,
                on_held=self.progress.held,
                **self.plan.admission,
            )
        from procexec.dask import (  # noqa: PLC0415  # the extra, only with --dask
            DaskExecutor,
            SchedulerUnreachableError,
        )

        address, stop = self.plan.dask, self.plan.term_sequence
        try:
            if address.startswith("local:"):
                workers = int(address.partition(":")[2])
                slots = -(-self.plan.max_jobs // workers)
                return DaskExecutor.local(workers, slots_per_worker=slots, term_sequence=stop)
            return DaskExecutor(address, term_sequence=stop, connect_timeout=self.plan.dask_timeout)
        except SchedulerUnreachableError as error:
            hint = "" if error.timeout is None else " (--dask-connect-timeout)"
            raise DaskUnreachableError(
                f"cannot reach the Dask scheduler at {address}: {error.reason}{hint}"
            ) from None
        except OSError as error:
            raise DaskUnreachableError(
                f"cannot reach the Dask scheduler at {address}: {error}"
            ) from None

    def wake(self, _: object = None) -> None:
        """End the main thread's current wait (called from the signal watch thread, the
        input thread, and as a job's done-callback). It never blocks."""
        self.wakeups.put(None)

    def _wait(self) -> None:
        """Wait until a job ends, input arrives, a --timeout N% deadline passes, or wake().

        Not ``concurrent.futures.wait``: it takes each future's lock, and a waiter's, in
        Python, so an exception a signal handler raises there (Ctrl-C, SIGTERM) can leave
        one held by this thread; the watch thread waking the runner then blocked forever
        on it, and the exit, which joins that thread, with it."""
        deadline = self._next_deadline()
        with suppress(queue.Empty):
            self.wakeups.get(timeout=deadline)
            while True:  # what else came meanwhile: one look covers it
                self.wakeups.get_nowait()
        broken = getattr(self.display, "broken", None)
        if broken is not None:  # --line-buffer found stdout closed
            raise broken

    def _start_more(self, ex: ProcessExecutor) -> bool:
        """Start jobs while slots are free; whether the run has more to do (jobs to start
        or running)."""
        while self._room() and not self.halting:
            job, attempt = self._next_job()
            if job is None:
                break
            slot = heapq.heappop(self.free_slots) if not self.ahead else 0
            try:
                command = self.plan.command(job, slot)
            except CommandTooLongError as error:
                self._free(slot)
                self._fail_late(str(error))
                break
            self._launch(ex, job, slot, attempt, command)
        waiting = bool(self.retry) or not self.plan.feed.exhausted
        return bool(self.running) or (waiting and not self.halting)

    def _room(self) -> bool:
        """Whether another job may be handed to the executor now."""
        if self.ahead:
            return len(self.running) < self.plan.max_jobs + self.ahead
        return bool(self.free_slots)

    def _free(self, slot: int) -> None:
        if slot and slot <= self.plan.max_jobs:
            heapq.heappush(self.free_slots, slot)

    def _next_job(self) -> tuple[Job | None, int]:
        """The next job to start (a retry first), or None if none is ready now."""
        if self.retry:
            return self.retry.popleft()
        if self._order_window_full():
            return None, 0
        try:
            return self.plan.feed.take(), 1
        except InputError as error:
            self._fail_late(str(error))
        except OSError as error:
            self._fail_late(f"cannot read {error.filename}: {error.strerror}")
        return None, 0

    def _order_window_full(self) -> bool:
        """With -k, do not run further ahead of the first job not yet printed than this:
        the output held for printing stays bounded, even with endless input."""
        if not self.display.keep_order:  # -k with -u, --line-buffer or --results: no hold
            return False
        window = max(4 * self.plan.max_jobs, 64)
        return self.plan.feed.delivered - self.display.next_index >= window

    def _fail_late(self, message: str) -> None:
        """A usage problem found while running: start no more jobs, exit status 255."""
        if self.error is None:
            self.error = message
        self.halting = True

    def _launch(
        self, ex: ProcessExecutor, job: Job, slot: int, attempt: int, command: list[str] | str
    ) -> None:
        job = job.in_slot(slot)  # {%} in the tag
        state = _Running(job, slot, attempt, command, self.plan)
        shell = isinstance(command, str)
        options = self.display.run_options(job)  # a new dict per call
        if job.data is not None:
            options["input"] = job.data  # --pipe: the block is the job's stdin
        elif job.stdin is not None:
            options["stdin"] = job.stdin.stdin_for(job)  # --round-robin: a pipe, fed later
        else:
            options["stdin"] = subprocess.DEVNULL  # not procexec's own (GNU parallel's rule)
        if shell:
            options["executable"] = self.plan.shell_path
        future = ex.run(command, timeout=self.plan.timeout, shell=shell, **options)
        self.running[future] = state
        future.add_done_callback(self.wake)
        if job.stdin is not None:
            future.wait_started()  # the child has its copy of the pipe
            job.stdin.handed_over(job)
        self.display.started(job, lambda: state.text)
        self.started += 1
        if self.plan.trace:  # -t: the command on stderr as it starts
            self.outputs.stderr.text(state.text + "\n")
        self.progress.update(min(len(self.running), self.plan.max_jobs), finished=False)

    def _finish(self, ex: ProcessExecutor, future: ProcessFuture[Any]) -> None:
        state = self.running.pop(future)
        self._free(state.slot)
        if future.cancelled():  # queued behind the running jobs when --halt stopped the run
            self.display.skipped(state.job)
            return
        returncode, stdout, stderr = _outcome(future, state.command)
        if state.stopped and returncode < 0:
            self.display.skipped(state.job)
            return  # stopped by --halt now: it did not finish
        timed_out = state.timed_out or getattr(future, "timed_out", False) or (
            isinstance(future.exception(), subprocess.TimeoutExpired)
        )  # fmt: skip
        if timed_out:
            self.outputs.stderr.text(
                "procexec: Warning: This job was killed because it timed out:\n"
                f"procexec: Warning: {state.text}\n"
            )
        wanted = self.outputs.wants_records or self.results_file is not None
        record = _record(future, state) if wanted else None
        if returncode != 0 and state.attempt < self.plan.retries and not self.halting:
            if record is not None:
                self.earlier.setdefault(state.job.seq, []).append(record)
            self.retry.appendleft((state.job, state.attempt + 1))
            return
        self.display.ended(state.job, lambda: state.text, stdout, stderr)
        if record is not None and self.results_file is not None:
            self.results_file.recorded(record)
        if record is not None:  # after the output, as GNU parallel (--joblog - shows it)
            from dataclasses import replace  # noqa: PLC0415  # loaded with the records

            earlier = tuple(self.earlier.pop(state.job.seq, ()))
            self.outputs.job_done(replace(record, earlier=earlier), len(stdout))
        if returncode == 0:
            self.succeeded += 1
            duration = getattr(future, "duration", None)
            if self.plan.timeout_percent is not None and duration is not None:
                self.runtimes.append(duration)
        else:
            self.failed += 1
        self.progress.update(min(len(self.running), self.plan.max_jobs), finished=True)
        self._check_halt(ex, state, returncode, timed_out)
        if self.plan.jobs_file is not None:
            self._resize(ex, self.plan.jobs_file.reread())

    def _resize(self, ex: ProcessExecutor, jobs: int) -> None:
        """``-j FILE`` changed: run up to ``jobs`` at once from now on (running jobs beyond
        it finish; their slots are not used again)."""
        if jobs == self.plan.max_jobs:
            return
        self.plan.max_jobs = jobs
        busy = {state.slot for state in self.running.values()}
        self.free_slots = [s for s in range(1, jobs + 1) if s not in busy]
        heapq.heapify(self.free_slots)
        if self.ahead:
            self.ahead = jobs
        ex.max_jobs = jobs

    def _check_halt(
        self, ex: ProcessExecutor, state: _Running, returncode: int, timed_out: bool
    ) -> None:
        """--halt: report the jobs it counts, and stop the run when its condition holds."""
        halt = self.plan.halt
        if halt is None:
            return
        verb = _HALT_VERBS[halt.kind]
        if halt.kind == "done" or (returncode == 0) == (halt.kind == "success"):
            self.outputs.stderr.text(f"procexec: This job {verb}:\n{state.text}\n")
        if self.halting:
            return
        total = self.plan.total if self.plan.total is not None else 0
        if not halt.reached(self.failed, self.succeeded, total):
            return
        self.halting = True
        self.halt_status = _halt_status(halt, returncode, timed_out, self.failed, total)
        for future in self.running:  # no job starts after the one that stopped the run
            future.cancel()
        if halt.when == "now":
            for running in self.running.values():
                running.stopped = True
            ex.terminate_jobs()
        elif self.running:
            self.outputs.stderr.text(
                f"procexec: Starting no more jobs. Waiting for {len(self.running)} jobs to "
                "finish.\n"
            )

    def _next_deadline(self) -> float | None:
        """Seconds until the next --timeout N% deadline (None: no such deadline)."""
        limit = self._percent_timeout()
        if limit is None:
            return None
        now = time.time()
        starts = [now if f.started_at is None else f.started_at for f in self.running]
        if not starts:
            return None
        return max(0.01, min(starts) + limit - now)  # a job not started yet: from now

    def _percent_timeout(self) -> float | None:
        """--timeout N%: N% of the median runtime of the jobs that succeeded (from three)."""
        if self.plan.timeout_percent is None or len(self.runtimes) < 3:
            return None
        import statistics  # noqa: PLC0415  # loaded only with --timeout N%

        return statistics.median(self.runtimes) * self.plan.timeout_percent / 100

    def _stop_overdue(self) -> None:
        """Stop the jobs that ran past the --timeout N% limit."""
        limit = self._percent_timeout()
        if limit is None:
            return
        now = time.time()
        for future, state in self.running.items():
            started = future.started_at
            if started is not None and not state.timed_out and now - started > limit:
                state.timed_out = True
                future.terminate()


_HALT_VERBS = {"fail": "failed", "success": "succeeded", "done": "finished"}


def _halt_status(halt: Halt, returncode: int, timed_out: bool, failed: int, total: int) -> int:
    """GNU parallel's exit status when --halt stops the run: 0 for success=; the
    percentage of failed jobs for N%; the job's own status for fail=1 and done=1 (128+N
    for a signal, 255 for a timeout); else the number of failed jobs."""
    if halt.kind == "success":
        return 0
    if halt.percent and total * halt.count != 100:  # exactly one job: as fail=1 (GNU's)
        return -(-failed * 100 // total) if total else 0
    if halt.count == 1 or halt.percent:
        if timed_out:
            return OTHER_ERROR
        return 128 - returncode if returncode < 0 else min(returncode, 255)
    return min(failed, MAX_FAILED_STATUS)


def _uses_slots(plan: Plan) -> bool:
    """Whether each job must wait for a slot of its own before it is handed over: with
    ``{%}`` in the command or the tag, with ``--joblog-json`` (which records the slot), on
    a Dask cluster (whose ``-j`` is the jobs in flight), with ``--halt`` (no job may
    start after the one that stops the run) and with ``--retries`` (a failed job runs
    again before the next one starts, as in GNU parallel). The report works slots out by itself."""
    words = [*(plan.template.tokens if plan.template else ()), *(
        plan.tagstring.tokens if plan.tagstring else ()
    )]  # fmt: skip
    exact = plan.dask is not None or plan.halt is not None or plan.joblog_json is not None
    exact = exact or plan.retries > 1  # a failed job runs again before the next starts
    return exact or any("{%}" in word for word in words)


def _display(plan: Plan, outputs: Outputs, wake: Callable[[], None]) -> Display:
    """Where the jobs' output goes (see procexec.cli._display)."""
    tag = plan.tag_of if plan.tag else None
    out, err = outputs.stdout, outputs.stderr
    if plan.results is not None:
        if plan.results.format is not None:
            from procexec.cli._results import ResultsFile  # noqa: PLC0415  # only then

            return ResultsFile(plan.results, plan.keep_order, out, err)
        return ResultsDisplay(plan.results.files, out, err)
    if plan.output == "ungroup" and tag is None:
        return RawDisplay(False, None, plan.verbose, out, err)
    if plan.output != "group" and not plan.keep_order:
        return LineDisplay(tag, plan.verbose, out, err, wake)
    return Display(plan.keep_order, tag, plan.verbose, out, err)


def _record(future: ProcessFuture[Any], state: _Running) -> JobRecord:
    """The record of a finished run of a job (timed out too when stopped by --timeout N%)."""
    from dataclasses import replace  # noqa: PLC0415  # loaded with the records (dataclasses)

    from procexec.report import record_of  # noqa: PLC0415  # loaded only when records are kept

    worker = getattr(future, "worker", None)  # a Dask worker's address (--dask)
    if worker is not None or (
        future.exception() is not None and not isinstance(future, ProcessFuture)
    ):
        record = _remote_record(future, state)
        return replace(
            record,
            command=state.text,
            slot=state.slot,
            attempts=state.attempt,
            timed_out=record.timed_out or state.timed_out,
        )
    local = record_of(state.job.seq, future)
    assert local is not None  # a finished job
    return replace(
        local,
        command=state.text,
        slot=state.slot or None,
        attempts=state.attempt,
        timed_out=local.timed_out or state.timed_out,
    )


def _remote_record(future: Any, state: _Running) -> JobRecord:
    """The record of a job run on a Dask worker: its result's, with the worker as host, or
    what is known of a job that raised (its worker, when it ended)."""
    from dataclasses import replace  # noqa: PLC0415  # loaded with the records (dataclasses)

    from procexec.report import JobRecord, record_of  # noqa: PLC0415  # only with --dask

    error = future.exception()
    if error is None:
        record = record_of(state.job.seq, future.result())
        assert record is not None
        return replace(record, host=future.worker or "")
    ended = future.ended_at if future.ended_at is not None else time.time()
    returncode, _, _ = _outcome(future, state.command)
    return JobRecord(
        seq=state.job.seq,
        command=command_text(state.command),
        start=ended,
        end=ended,
        exit=None if isinstance(error, subprocess.TimeoutExpired) else returncode,
        timed_out=isinstance(error, subprocess.TimeoutExpired),
        host=future.worker or "",
        pid=future.pid,
        error=None
        if isinstance(error, subprocess.TimeoutExpired)
        else f"{type(error).__name__}: {error}",
    )


def _outcome(future: ProcessFuture[Any], command: list[str] | str) -> tuple[int, bytes, bytes]:
    """(returncode, stdout, stderr) of a finished job, whatever its end."""
    try:
        result = future.result()
    except subprocess.TimeoutExpired as expired:
        popen = getattr(future, "popen", None)  # a DaskFuture has none: the status is -1
        returncode = popen.returncode if popen is not None and popen.returncode is not None else -1
        return returncode, expired.stdout or b"", expired.stderr or b""
    except OSError as error:
        program = command[0] if isinstance(command, list) else command
        message = f"procexec: {program}: {error.strerror}\n".encode()
        return start_error_status(error), b"", message
    return result.returncode, result.stdout or b"", result.stderr or b""
