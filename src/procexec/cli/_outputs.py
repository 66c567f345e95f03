"""Where a finished job is recorded: the job log (GNU parallel's TSV), its JSON Lines sidecar,
and the records the HTML report (``--report``) and the end-of-run summary are made from; and
procexec's own stdout and stderr (procexec.cli._sink: every byte written whole).

Every file is opened before any job runs, so a path that cannot be written is a usage error
up front; each row is written whole as its job ends; the report and the summary are written
when the run ends, an interrupted run included (they then show the jobs that finished). A
row that cannot be written (a full disk) raises OutputError: the run stops.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from typing import TYPE_CHECKING

from procexec.cli._args import UsageError
from procexec.cli._joblog import JobLog, Row
from procexec.cli._plan import Plan
from procexec.cli._sink import OutputError, Sink

if TYPE_CHECKING:  # the report package is loaded only when a report or summary is made
    from procexec.report import JobRecord


class Outputs:
    """The run's records: written row by row, and (for --report/--summary) kept."""

    def __init__(self, plan: Plan, argv: list[str]) -> None:
        self.plan = plan
        self.argv = argv
        self.host = os.uname().nodename  # socket.gethostname(), without loading socket
        self.records: list[JobRecord] | None = [] if plan.report or plan.summary else None
        self.started = time.time()
        self.stdout = Sink("standard output", sys.stdout)
        self.stderr = Sink("standard error", sys.stderr)
        self.log: JobLog | None = None
        self.sidecar: Sink | None = None
        self.finished: bool | None = None  # once finish() ran: whether all was written
        self.said: set[str] = set()  # the error messages said (once each)
        try:
            if plan.joblog:
                self.log = JobLog(
                    plan.joblog, self.stdout, append=plan.resume, header=plan.joblog_header
                )
            if plan.joblog_json:
                name = f"--joblog-json file {plan.joblog_json}"
                self.sidecar = _open(plan.joblog_json, name, append=plan.resume)
            if plan.report:
                _open(plan.report, f"--report file {plan.report}", append=False).close()
        except UsageError:
            self.close_files()
            raise
        except OutputError as error:  # the job log's header
            self.close_files()
            raise UsageError(str(error)) from None
        except OSError as error:
            self.close_files()
            raise UsageError(f"cannot write job log {plan.joblog}: {error.strerror}") from None

    @property
    def wants_records(self) -> bool:
        """Whether finished jobs are recorded at all (a log, a sidecar, a report, a summary)."""
        return self.log is not None or self.sidecar is not None or self.records is not None

    def job_done(self, record: JobRecord, received: int) -> None:
        """Record one finished job (``received``: the bytes it wrote to stdout).

        Raises OutputError if its row cannot be written (the report still counts it)."""
        if self.records is not None:
            self.records.append(record)
        if self.log is not None:
            returncode = -record.signal if record.signal else (record.exit or 0)
            self.log.write(
                Row(
                    seq=record.seq,
                    start=record.start,
                    runtime=record.duration,
                    received=received,
                    returncode=returncode,
                    command=record.command,
                    timed_out=record.timed_out,
                    host=record.host or ":",
                )
            )
        if self.sidecar is not None:
            from dataclasses import replace  # noqa: PLC0415  # loaded with the records

            where = record.host or self.host  # a Dask worker, or this machine
            self.sidecar.text(_json(replace(record, host=where).to_json()) + "\n")

    def finish(self) -> bool:
        """Write the report and print the summary (to stderr), then close the files; the
        first call only. Returns False if something could not be written (said on stderr)."""
        if self.finished is not None:
            return self.finished
        written = True
        try:
            if self.records is not None and self.plan.report:
                written = self._write_report(self.plan.report, self.records)
            if self.records is not None and self.plan.summary:
                from procexec.report import analyse, summary_lines  # noqa: PLC0415  # on use

                lines = summary_lines(analyse(self.records, self.plan.max_jobs))
                written = self.say("\n".join(lines)) and written
        finally:
            self.close_files()
            self.finished = written
        return written

    def say(self, message: str) -> bool:
        """Print a line on stderr as the run ends, unless it was said already; False if
        stderr cannot take it (then nothing more can be said: the exit status tells)."""
        if message in self.said:
            return True
        self.said.add(message)
        try:
            self.stderr.text(message + "\n")
        except (OutputError, BrokenPipeError):
            return False
        return True

    def close_files(self) -> None:
        """Close the job log and the sidecar."""
        if self.log is not None:
            self.log.close()
        if self.sidecar is not None:
            self.sidecar.close()

    def _write_report(self, path: str, records: list[JobRecord]) -> bool:
        from procexec.report import write_html  # noqa: PLC0415  # loaded only on use

        try:
            write_html(records, path, max_jobs=self.plan.max_jobs, settings=self._settings())
        except OSError as error:
            self.say(f"procexec: cannot write report {path}: {error.strerror}")
            return False
        return True

    def _settings(self) -> dict[str, str]:
        """The run's settings, as the report lists them."""
        plan = self.plan
        if plan.timeout_percent is not None:
            timeout = f"{plan.timeout_percent:g}% of the median runtime"
        else:
            timeout = "none" if plan.timeout is None else f"{plan.timeout:g} s"
        retries = "none"
        if plan.retries > 1:
            retries = f"{plan.retries} (a failing job runs up to {plan.retries} times in all)"
        return {
            "command line": "procexec " + shlex.join(self.argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(self.started)),
            "host": self.host,
            "jobs (-j)": str(plan.max_jobs),
            "timeout": timeout,
            "retries": retries,
        }


def _json(value: object) -> str:
    import json  # noqa: PLC0415  # loaded only with --joblog-json

    return json.dumps(value)


def _open(path: str, name: str, *, append: bool) -> Sink:
    try:
        return Sink.open(path, name, append=append)
    except OSError as error:
        raise UsageError(f"cannot write {name}: {error.strerror}") from None
