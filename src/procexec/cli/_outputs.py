"""Where a finished job is recorded: the job log (GNU parallel's TSV), its JSON Lines sidecar,
and the records the HTML report (``--report``) and the end-of-run summary are made from.

Every file is opened before any job runs, so a path that cannot be written is a usage error
up front; each row is flushed as its job ends; the report and the summary are written when
the run ends, an interrupted run included (they then show the jobs that finished).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import replace
from typing import IO, TYPE_CHECKING

from procexec.cli._args import UsageError
from procexec.cli._joblog import JobLog, Row
from procexec.cli._plan import Plan

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
        self.log: JobLog | None = None
        self.sidecar: IO[str] | None = None
        try:
            self.log = (
                JobLog(plan.joblog, append=plan.resume, header=plan.joblog_header)
                if plan.joblog
                else None
            )
            if plan.joblog_json:
                self.sidecar = _open(plan.joblog_json, "a" if plan.resume else "w", "--joblog-json")
            if plan.report:
                _open(plan.report, "w", "--report").close()  # writable? (written at the end)
        except UsageError:
            self.close_files()
            raise
        except OSError as error:
            self.close_files()
            raise UsageError(f"cannot write job log {plan.joblog}: {error.strerror}") from None

    @property
    def wants_records(self) -> bool:
        """Whether finished jobs are recorded at all (a log, a sidecar, a report, a summary)."""
        return self.log is not None or self.sidecar is not None or self.records is not None

    def job_done(self, record: JobRecord, received: int) -> None:
        """Record one finished job (``received``: the bytes it wrote to stdout)."""
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
            where = record.host or self.host  # a Dask worker, or this machine
            self.sidecar.write(_json(replace(record, host=where).to_json()) + "\n")
            self.sidecar.flush()
        if self.records is not None:
            self.records.append(record)

    def finish(self) -> None:
        """Write the report and print the summary (to stderr), then close the files."""
        try:
            if self.records is not None and self.plan.report:
                self._write_report(self.plan.report, self.records)
            if self.records is not None and self.plan.summary:
                from procexec.report import analyse, summary_lines  # noqa: PLC0415  # on use

                batch = analyse(self.records, self.plan.max_jobs)
                print("\n".join(summary_lines(batch)), file=sys.stderr)
        finally:
            self.close_files()

    def close_files(self) -> None:
        """Close the job log and the sidecar."""
        if self.log is not None:
            self.log.close()
        if self.sidecar is not None:
            self.sidecar.close()

    def _write_report(self, path: str, records: list[JobRecord]) -> None:
        settings = {
            "command line": "procexec " + shlex.join(self.argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(self.started)),
            "host": self.host,
            "jobs (-j)": str(self.plan.max_jobs),
            "timeout": "none" if self.plan.timeout is None else f"{self.plan.timeout:g} s",
            "retries": str(self.plan.retries),
        }
        from procexec.report import write_html  # noqa: PLC0415  # loaded only on use

        try:
            write_html(records, path, max_jobs=self.plan.max_jobs, settings=settings)
        except OSError as error:
            print(f"procexec: cannot write report {path}: {error.strerror}", file=sys.stderr)


def _json(value: object) -> str:
    import json  # noqa: PLC0415  # loaded only with --joblog-json

    return json.dumps(value)


def _open(path: str, mode: str, option: str) -> IO[str]:
    try:
        return open(path, mode, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {option} file {path}: {error.strerror}") from None
