"""Running a Plan: keep ``-j`` jobs going on one ProcessExecutor and handle each as it ends."""

from __future__ import annotations

import heapq
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, InvalidStateError, wait
from contextlib import suppress
from dataclasses import dataclass, replace
from typing import Any

from procexec._executor import ProcessExecutor
from procexec._future import ProcessFuture
from procexec._result import start_error_status
from procexec.cli._outputs import Outputs
from procexec.cli._plan import Job, Plan
from procexec.report import JobRecord, record_of
from procexec.report._records import command_text

MAX_FAILED_STATUS = 101


class DaskUnreachableError(Exception):
    """``--dask``: no cluster at that address (main() prints it on one line)."""


@dataclass
class _Running:
    job: Job
    slot: int
    attempt: int
    command: list[str] | str
    stopped: bool = False  # stopped by --halt now: not a result


class Runner:
    """Keeps up to max_jobs jobs running and handles each one as it ends."""

    def __init__(self, plan: Plan, outputs: Outputs) -> None:
        self.plan = plan
        self.outputs = outputs
        self.output = _Output(plan.keep_order, plan.tag_of if plan.tag else None)
        self.free_slots = list(range(1, plan.max_jobs + 1))
        self.running: dict[ProcessFuture[Any], _Running] = {}
        self.todo: deque[tuple[Job, int]] = deque((job, 1) for job in plan.jobs)
        self.failed = self.succeeded = 0
        self.halting = False
        self.earlier: dict[int, list[JobRecord]] = {}  # seq -> its attempts that were retried
        self.bar = _progress_bar(len(plan.jobs)) if plan.bar else None
        self.woken: Future[None] = Future()  # resolved by wake(): ends the current wait

    def run(self) -> int:
        """Run every job; return the exit status (failed jobs, capped at 101)."""
        shell = self.plan.template is None or self.plan.template.shell
        with self._executor() as ex:
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

    def _executor(self) -> Any:
        """This machine's ProcessExecutor, or with ``--dask`` a DaskExecutor (its ``-j``
        jobs in flight spread over the workers)."""
        if self.plan.dask is None:
            return ProcessExecutor(
                self.plan.max_jobs,
                term_sequence=self.plan.term_sequence,
                guardian=None if self.plan.guardian else False,
                on_held=self._held,
                **self.plan.admission,
            )
        from procexec.dask import DaskExecutor  # noqa: PLC0415  # the extra, only with --dask

        address, stop = self.plan.dask, self.plan.term_sequence
        try:
            if address.startswith("local:"):
                workers = int(address.partition(":")[2])
                slots = -(-self.plan.max_jobs // workers)
                return DaskExecutor.local(workers, slots_per_worker=slots, term_sequence=stop)
            return DaskExecutor(address, term_sequence=stop)
        except OSError as error:
            raise DaskUnreachableError(
                f"cannot reach the Dask scheduler at {address}: {error}"
            ) from None

    def _held(self, reason: str | None) -> None:
        """Show on the bar why jobs wait (admission: --memfree, --load, ...)."""
        if self.bar is not None:
            self.bar.set_postfix_str("" if reason is None else f"held: {reason}")

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
            future = ex.run(
                command,
                capture_output=True,
                timeout=self.plan.timeout,
                shell=shell,
                stdin=subprocess.DEVNULL,  # not procexec's own input (GNU parallel's rule)
            )
            self.running[future] = _Running(job, slot, attempt, command)

    def _finish(self, ex: ProcessExecutor, future: ProcessFuture[Any]) -> None:
        state = self.running.pop(future)
        heapq.heappush(self.free_slots, state.slot)
        returncode, stdout, stderr = _outcome(future, state.command)
        if state.stopped and returncode < 0:
            return  # stopped by --halt now: it did not finish
        if returncode != 0 and state.attempt < self.plan.retries and not self.halting:
            self.earlier.setdefault(state.job.seq, []).append(_record(future, state))
            self.todo.appendleft((state.job, state.attempt + 1))
            return
        earlier = tuple(self.earlier.pop(state.job.seq, ()))
        self.outputs.job_done(replace(_record(future, state), earlier=earlier), len(stdout))
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


def _record(future: ProcessFuture[Any], state: _Running) -> JobRecord:
    """The record of a finished run of a job."""
    worker = getattr(future, "worker", None)  # a Dask worker's address (--dask)
    if worker is not None or (
        future.exception() is not None and not isinstance(future, ProcessFuture)
    ):
        return replace(_remote_record(future, state), slot=state.slot, attempts=state.attempt)
    record = record_of(state.job.seq, future)  # its command is the future's, as run
    assert record is not None  # a finished job
    return replace(record, slot=state.slot, attempts=state.attempt)


def _remote_record(future: Any, state: _Running) -> JobRecord:
    """The record of a job run on a Dask worker: its result's, with the worker as host, or
    what is known of a job that raised (its worker, when it ended)."""
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
        message = f"procexec: {command_text(command)}: {error.strerror}\n".encode()
        return start_error_status(error), b"", message
    return result.returncode, result.stdout, result.stderr


class _Output:
    """Prints each job's output whole; in input order with keep_order; each line prefixed
    with ``tag(job)`` and a tab when ``tag`` is given."""

    def __init__(self, keep_order: bool, tag: Callable[[Job], str] | None) -> None:
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
            if self.tag is not None:
                prefix = self.tag(job).encode("utf-8", "surrogateescape") + b"\t"
                lines = data.splitlines(keepends=True)
                data = b"".join(prefix + line for line in lines)  # noqa: PLW2901
            stream.flush()
            stream.buffer.write(data)
            stream.buffer.flush()


def _progress_bar(total: int) -> Any:
    from tqdm import tqdm  # noqa: PLC0415  # only with --bar

    return tqdm(total=total, file=sys.stderr, unit="job", dynamic_ncols=True)
