"""One finished job as the report sees it, and where such records come from.

A :class:`JobRecord` is built from a future or a ``JobResult`` (Python), from a row of GNU
parallel's job log, or from a line of the JSON Lines sidecar that ``procexec --joblog-json``
writes (both read by procexec.report._logs). The sidecar holds what the job log has no
column for: slot, pid, attempts, CPU time, peak memory, and whether the job timed out.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from typing import Any

from procexec import CallFuture, CallLost, ProcessFuture
from procexec._argv import command_text
from procexec._result import JobResult
from procexec._rusage import Rusage
from procexec._status import start_error_status

#: How a run ended, in the order the report lists them; each has its colour. "retried" is
#: an attempt that failed and was run again; the job's last run has one of the others.
OUTCOMES = ("ok", "retried", "failed", "signal", "timeout")
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
        kind: ``"command"``, or ``"call"`` for a Python call (``submit_call``): its
            ``command`` is the function's qualified name, ``pid`` its worker's, and
            ``error`` what it raised.
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
    kind: str = "command"

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
        Raises TypeError for what is not a job's object: a key of the wrong type, a number
        not finite or out of range (see ``in_range``), attempts within an earlier attempt."""
        return cls(**_checked(data, nested=False))


def _checked(given: Any, *, nested: bool) -> dict[str, Any]:
    """The fields of a sidecar object, checked (see ``JobRecord.from_json``)."""
    if not isinstance(given, dict):
        raise TypeError("not a JSON object")
    data: dict[str, Any] = given
    if not data.keys() <= JSON_TYPES.keys():
        data = {key: value for key, value in data.items() if key in JSON_TYPES}
    if not data.keys() >= REQUIRED:
        raise TypeError(f"no {', '.join(sorted(REQUIRED - data.keys()))}")
    for key, value in data.items():
        if type(value) not in JSON_TYPES[key]:  # exact: a bool is not a number here
            raise TypeError(f"{key} must be {_type_names(key)}, not {value!r}")
        if not in_range(key, value):
            raise TypeError(f"{key} must be {_range_text(key)}, not {value!r}")
    if data.get("earlier"):
        if nested:
            raise TypeError("an earlier attempt cannot have earlier attempts of its own")
        attempts = (JobRecord(**_checked(e, nested=True)) for e in data["earlier"])
        data = {**data, "earlier": tuple(attempts)}
    elif "earlier" in data:
        data = {**data, "earlier": ()}
    return data


NUMBER = frozenset((int, float))
_NULL = type(None)
#: The sidecar's keys and the JSON types each may hold.
JSON_TYPES: dict[str, frozenset[type]] = {
    "seq": frozenset((int,)),
    "command": frozenset((str,)),
    "start": NUMBER,
    "end": NUMBER,
    "exit": frozenset((int, _NULL)),
    "signal": frozenset((int,)),
    "timed_out": frozenset((bool,)),
    "slot": frozenset((int, _NULL)),
    "host": frozenset((str,)),
    "pid": frozenset((int, _NULL)),
    "attempts": frozenset((int,)),
    "cpu": NUMBER | {_NULL},
    "max_rss": frozenset((int, _NULL)),
    "max_rss_upper": frozenset((int, _NULL)),
    "error": frozenset((str, _NULL)),
    "earlier": frozenset((list,)),
    "kind": frozenset((str,)),
}
REQUIRED = frozenset(("seq", "command", "start", "end"))
#: The largest time or duration a record may hold, in seconds (about 31,700 years): a
#: larger one (1e308, or the inf two of them add up to) is not a time, and the figures
#: made from it would not be numbers.
MAX_SECONDS = 1e12
#: The largest whole number a record may hold (exit status, pid, bytes...): a C long's.
MAX_INTEGER = 2**63 - 1
#: The keys that hold seconds.
SECONDS = frozenset(("start", "end", "cpu"))


def in_range(key: str, value: Any) -> bool:
    """Whether a number of the key ``key`` is finite and within its bounds (MAX_SECONDS
    for times, MAX_INTEGER for whole numbers); other values always are."""
    if type(value) not in NUMBER:
        return True
    limit = MAX_SECONDS if key in SECONDS else MAX_INTEGER
    return bool(-limit <= value <= limit)  # False for nan too


def _range_text(key: str) -> str:
    if key in SECONDS:
        return f"a finite number of seconds, at most {MAX_SECONDS:g} either way"
    return f"an integer of at most {len(str(MAX_INTEGER))} digits"


def _type_names(key: str) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    names.update({_NULL: "null", list: "a list"})
    kinds = JSON_TYPES[key] - {int} if float in JSON_TYPES[key] else JSON_TYPES[key]
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
        if isinstance(item, CallFuture):
            return _from_call(seq, item)
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


def _from_call(seq: int, future: CallFuture[Any]) -> JobRecord:
    """A Python call's record: its function's name, its worker's pid, what it raised."""
    ended = future.ended_at
    started = future.started_at or ended
    if started is None or ended is None:
        raise ReportError(f"job {seq} has no start or end time")
    record = JobRecord(
        seq=seq,
        command=future.function or "?",
        start=started,
        end=ended,
        pid=future.pid,
        timed_out=future.timed_out,
        kind="call",
        **_usage(future.rusage),
    )
    error = future.exception()
    if error is None:
        return record
    returncode = error.returncode if isinstance(error, CallLost) else None
    signum = -returncode if returncode is not None and returncode < 0 else 0
    return replace(record, exit=None, signal=signum, error=_describe(error))


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
