"""One finished job as the report sees it, and where such records come from.

A :class:`JobRecord` is built from a future or a ``JobResult`` (Python), from a row of GNU
parallel's job log, or from a line of the JSON Lines sidecar that ``procexec --joblog-json``
writes. The sidecar holds what the job log has no column for: slot, pid, attempts, CPU
time, peak memory, and whether the job timed out.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from typing import Any

from procexec import ProcessFuture
from procexec._argv import command_text
from procexec._result import JobResult, Rusage, start_error_status

#: How a run ended, in the order the report lists them; each has its colour. "retried" is
#: an attempt that failed and was run again; the job's last run has one of the others.
OUTCOMES = ("ok", "retried", "failed", "signal", "timeout")
#: The job log's columns (GNU parallel's ``--joblog``).
JOBLOG_COLUMNS = 9
#: Exceptions that only restate the exit status (``check=True``, a timeout).
EXPECTED_ERRORS = (subprocess.CalledProcessError, subprocess.TimeoutExpired)


class ReportError(ValueError):
    """Input the report cannot use: a malformed log, a future not done, an unknown file."""


@dataclass(slots=True)
class JobRecord:
    """One job that ran (or failed to start), as the report and the sidecar record it.

    Attributes:
        seq: the job's sequence number (``{#}``), from 1.
        command: the command line, as one string.
        start: wall-clock start, epoch seconds.
        end: wall-clock end (when the child was reaped), epoch seconds.
        exit: the exit code; None when a signal ended the job or it never started.
        signal: the number of the signal that ended the job, or 0.
        timed_out: the job was stopped because its timeout expired.
        slot: the job slot (``{%}``) from 1, or None when not recorded.
        host: where the job ran ("" for this machine, when not recorded).
        pid: the child's process id, or None.
        attempts: how many times the job has been run (``--retries``), this run included.
        cpu: user + system CPU seconds of the child, or None when not known.
        max_rss: the child's own peak resident memory in bytes, or None when not known
            (see :class:`procexec.Rusage`: a child smaller than its parent cannot be told
            apart from the parent's peak it inherits).
        max_rss_upper: the kernel's figure (``wait4``), an upper bound of the child's own
            peak: the higher of it and the parent's peak when it started the child.
        error: why the job failed without an exit status (e.g. it could not start).
        earlier: the job's earlier attempts, which failed and were retried (their own
            records; their ``attempts`` is their number, and they have no ``earlier``).
    """

    seq: int
    command: str
    start: float
    end: float
    exit: int | None = 0
    signal: int = 0
    timed_out: bool = False
    slot: int | None = None
    host: str = ""
    pid: int | None = None
    attempts: int = 1
    cpu: float | None = None
    max_rss: int | None = None
    max_rss_upper: int | None = None
    error: str | None = None
    earlier: tuple[JobRecord, ...] = ()

    @property
    def runs(self) -> tuple[JobRecord, ...]:
        """Every attempt of the job, this last one included, in order."""
        return (*self.earlier, self)

    @property
    def duration(self) -> float:
        """Seconds from start to end (never negative)."""
        return self.end - self.start if self.end > self.start else 0.0

    @property
    def outcome(self) -> str:
        """How this run ended: timeout, signal, failed or ok, the first that applies."""
        if self.timed_out:
            return "timeout"
        if self.signal:
            return "signal"
        if self.exit != 0 or self.error is not None:
            return "failed"
        return "ok"

    @property
    def status_text(self) -> str:
        """How the job ended, in words: "exit 0", "SIGKILL", "timed out (SIGTERM)"..."""
        if self.error is not None and self.exit is None:
            return self.error
        ended = f"exit {self.exit}" if not self.signal else signal_name(self.signal)
        return f"timed out ({ended})" if self.timed_out else ended

    def to_json(self) -> dict[str, Any]:
        """The sidecar's object for this job (keys as in the dataclass; ``earlier`` a list
        of the same objects without an ``earlier`` of their own)."""
        data = asdict(self)
        for attempt in data["earlier"]:
            del attempt["earlier"]
        data["earlier"] = list(data["earlier"])
        return data

    @classmethod
    def from_json(cls, data: Any) -> JobRecord:
        """Build from a sidecar object; unknown keys are ignored, missing ones defaulted.
        Raises TypeError for what is not a job's object."""
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if not data.keys() <= _JSON_TYPES.keys():
            data = {key: value for key, value in data.items() if key in _JSON_TYPES}
        if not data.keys() >= _REQUIRED:
            raise TypeError(f"no {', '.join(sorted(_REQUIRED - data.keys()))}")
        for key, value in data.items():
            if type(value) not in _JSON_TYPES[key]:  # exact: a bool is not a number here
                raise TypeError(f"{key} must be {_type_names(key)}, not {value!r}")
        if "earlier" in data:
            data = {**data, "earlier": tuple(map(cls.from_json, data["earlier"]))}
        return cls(**data)


_NUMBER = frozenset((int, float))
_NULL = type(None)
#: The sidecar's keys and the JSON types each may hold.
_JSON_TYPES: dict[str, frozenset[type]] = {
    "seq": frozenset((int,)),
    "command": frozenset((str,)),
    "start": _NUMBER,
    "end": _NUMBER,
    "exit": frozenset((int, _NULL)),
    "signal": frozenset((int,)),
    "timed_out": frozenset((bool,)),
    "slot": frozenset((int, _NULL)),
    "host": frozenset((str,)),
    "pid": frozenset((int, _NULL)),
    "attempts": frozenset((int,)),
    "cpu": _NUMBER | {_NULL},
    "max_rss": frozenset((int, _NULL)),
    "max_rss_upper": frozenset((int, _NULL)),
    "error": frozenset((str, _NULL)),
    "earlier": frozenset((list,)),
}
_REQUIRED = frozenset(("seq", "command", "start", "end"))


def _type_names(key: str) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    names.update({_NULL: "null", list: "a list"})
    kinds = _JSON_TYPES[key] - {int} if float in _JSON_TYPES[key] else _JSON_TYPES[key]
    return " or ".join(sorted(names[kind] for kind in kinds))


def signal_name(signum: int) -> str:
    """``SIGKILL`` for 9; ``signal 77`` for a number with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# ----------------------------------------------------------------- from Python objects
def records_from(items: Iterable[Any]) -> list[JobRecord]:
    """Records for futures of a ProcessExecutor, ``JobResult`` objects or JobRecords.

    Sequence numbers follow the order of ``items``, from 1. Cancelled futures are left
    out (they never ran). A future that is not done is a :class:`ReportError`.
    """
    records: list[JobRecord] = []
    for seq, item in enumerate(items, 1):
        record = record_of(seq, item)
        if record is not None:
            records.append(record)
    return records


def record_of(seq: int, item: Any) -> JobRecord | None:
    """The record of one job (see :func:`records_from`); None for a cancelled future."""
    if isinstance(item, JobRecord):
        return item
    if isinstance(item, JobResult):
        return _from_result(seq, item)
    if isinstance(item, Future):
        if item.cancelled():
            return None
        if not item.done():
            raise ReportError(f"job {seq} is not done: wait for its future first")
        return _from_future(seq, item)
    raise ReportError(f"job {seq}: expected a future, a JobResult or a JobRecord, got {item!r}")


def _from_result(seq: int, result: JobResult[Any]) -> JobRecord:
    return JobRecord(
        seq=seq,
        command=command_text(result.args),
        start=result.started_at,
        end=result.started_at + result.duration,
        **_status(result.returncode),
        pid=result.pid,
        **_usage(result.rusage),
    )


def _from_future(seq: int, future: Future[Any]) -> JobRecord:
    error = future.exception()
    if error is None and isinstance(future.result(), JobResult):
        return _from_result(seq, future.result())
    if not isinstance(future, ProcessFuture):
        raise ReportError(f"job {seq}: a future of another executor has no process to report")
    ended = future.ended_at
    started = future.started_at or ended  # a job that could not start: when it failed
    if started is None or ended is None:
        raise ReportError(f"job {seq} has no start or end time")
    record = JobRecord(
        seq=seq,
        command=command_text(future.args),
        start=started,
        end=ended,
        pid=future.pid,
        timed_out=future.timed_out,
        **_usage(future.rusage),
    )
    popen = future.popen
    if popen is None or popen.returncode is None:  # it could not be started
        status = None if error is None else start_error_status(error)
        return replace(record, exit=status, error=_describe(error))
    record = replace(record, **_status(popen.returncode))
    if error is None or isinstance(error, EXPECTED_ERRORS):
        return record
    # The child ran, but its result could not be built (output that did not decode...).
    return replace(record, error=_describe(error))


def _describe(error: BaseException | None) -> str:
    return "did not run" if error is None else f"{type(error).__name__}: {error}"


def _status(returncode: int) -> dict[str, Any]:
    if returncode < 0:
        return {"exit": None, "signal": -returncode}
    return {"exit": returncode, "signal": 0}


def _usage(usage: Rusage | None) -> dict[str, Any]:
    if usage is None:
        return {}
    return {
        "cpu": usage.user_time + usage.system_time,
        "max_rss": usage.max_rss,
        "max_rss_upper": usage.max_rss_upper,
    }


# ----------------------------------------------------------------------- from files
def read_records(*paths: str) -> list[JobRecord]:
    """The records of GNU parallel job logs and ``--joblog-json`` sidecars, told apart by
    their first character. Sidecar records complete the job log rows of the same seq
    (their fields win); with no job log the sidecars alone are the records.

    A last line cut off mid-row (a crash while it was written) is left out; any other line
    that does not parse, or a file that is neither kind, is a :class:`ReportError` naming it.
    """
    logs: list[JobRecord] = []
    sidecars: list[JobRecord] = []
    for path in paths:
        is_sidecar, records = _read_file(path)
        (sidecars if is_sidecar else logs).extend(records)
    return merge(logs, sidecars) if logs else sidecars


def _read_file(path: str) -> tuple[bool, list[JobRecord]]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            text = file.read()
    except OSError as error:
        raise ReportError(f"cannot read {path}: {error.strerror}") from None
    lines = list(_complete_lines(text))
    if lines and lines[0][1].lstrip().startswith("{"):
        return True, _json_rows(path, lines)
    if not lines or not lines[0][1].startswith("Seq\t"):
        raise ReportError(
            f"{path}: neither a GNU parallel job log (its first line is the header "
            f"'Seq<TAB>Host<TAB>...') nor a --joblog-json file (one JSON object per line)"
        )
    return False, [_joblog_row(path, number, line) for number, line in lines[1:] if line.strip()]


def _complete_lines(text: str) -> Iterator[tuple[int, str]]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        lines.pop()  # cut off by a crash: no newline yet
    return enumerate(lines, 1)


def _joblog_row(path: str, number: int, line: str) -> JobRecord:
    fields = line.split("\t", JOBLOG_COLUMNS - 1)
    try:
        if len(fields) != JOBLOG_COLUMNS:
            raise ValueError(f"{len(fields)} columns, not {JOBLOG_COLUMNS}")
        seq, host = int(fields[0]), fields[1]
        start, runtime = float(fields[2]), float(fields[3])
        exitval, signum = int(fields[6]), int(fields[7])
    except ValueError as error:
        raise ReportError(f"{path} line {number}: not a job log row ({error})") from None
    timed_out = exitval == -1  # GNU parallel logs a job it stopped at --timeout so
    return JobRecord(
        seq=seq,
        command=fields[8],
        start=start,
        end=start + runtime,
        exit=None if signum or timed_out else exitval,
        signal=signum,
        timed_out=timed_out,
        host="" if host == ":" else host,
    )


def _json_rows(path: str, lines: list[tuple[int, str]]) -> list[JobRecord]:
    objects = [line for _, line in lines if line.strip()]
    try:  # all at once: one call into the C decoder, and the checks a key at a time
        records = _checked_batch(json.loads("[" + ",".join(objects) + "]"))
    except ValueError:
        records = None
    if records is not None:
        return records
    # Something is wrong: a line at a time, to name the line at fault.
    return [_json_row(path, number, line) for number, line in lines if line.strip()]


def _checked_batch(objects: list[Any]) -> list[JobRecord] | None:
    """The records of many sidecar objects, or None if any is not a job's object (then
    ``JobRecord.from_json`` on each says which and why). Each key's types are checked
    across all objects at once: per object, that checking dominated the reading."""
    if not objects:
        return []
    if any(type(data) is not dict for data in objects):
        return None
    if not all(_REQUIRED <= data.keys() <= _JSON_TYPES.keys() for data in objects):
        return None
    for key, kinds in _JSON_TYPES.items():
        if not {type(data[key]) for data in objects if key in data} <= kinds:
            return None
    nested = [data for data in objects if data.get("earlier")]
    earlier = _checked_batch([e for data in nested for e in data["earlier"]])
    if earlier is None:
        return None
    attempts = iter(earlier)
    for data in objects:
        if "earlier" in data:
            data["earlier"] = tuple(next(attempts) for _ in data["earlier"])
    return [JobRecord(**data) for data in objects]


def _json_row(path: str, number: int, line: str) -> JobRecord:
    try:
        return JobRecord.from_json(json.loads(line))
    except (ValueError, TypeError) as error:
        raise ReportError(f"{path} line {number}: not a job record ({error})") from None


def merge(log: list[JobRecord], sidecar: list[JobRecord]) -> list[JobRecord]:
    """The job log's rows completed by the sidecar's records of the same seq (the
    sidecar's fields win); sidecar records with no row are kept too."""
    extra = {record.seq: record for record in sidecar}
    merged = [extra.pop(row.seq, row) for row in log]
    return merged + list(extra.values())
