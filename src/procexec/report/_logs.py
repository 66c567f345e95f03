"""Reading a batch's logs: GNU parallel's job log and the ``--joblog-json`` sidecar.

Logs are untrusted input: a row that does not parse, or holds a number that is not a time
(``inf``, ``1e308``, JSON's ``Infinity`` or ``1e400``), or JSON nested past reason, is a
:class:`ReportError` naming the file and the line; never a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from procexec.report._records import (
    JSON_TYPES,
    MAX_INTEGER,
    MAX_SECONDS,
    NUMBER,
    REQUIRED,
    JobRecord,
    ReportError,
    in_range,
)

#: The job log's columns (GNU parallel's ``--joblog``).
JOBLOG_COLUMNS = 9
#: A JSON escape of a UTF-16 surrogate: only then can a string hold a lone one, which no
#: file can be written with (see _mend_surrogates).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")


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


def merge(log: list[JobRecord], sidecar: list[JobRecord]) -> list[JobRecord]:
    """The job log's rows completed by the sidecar's records of the same seq (the
    sidecar's fields win); sidecar records with no row are kept too."""
    extra = {record.seq: record for record in sidecar}
    merged = [extra.pop(row.seq, row) for row in log]
    return merged + list(extra.values())


def _read_file(path: str) -> tuple[bool, list[JobRecord]]:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            text = file.read()
    except OSError as error:
        raise ReportError(f"cannot read {path}: {error.strerror}") from None
    lines = list(_complete_lines(text))
    if lines and lines[0][1].lstrip().startswith("{"):
        return True, _json_rows(path, lines, mend=bool(_SURROGATE_ESCAPE.search(text)))
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


# ---------------------------------------------------------------------- the job log
def _joblog_row(path: str, number: int, line: str) -> JobRecord:
    fields = line.split("\t", JOBLOG_COLUMNS - 1)
    try:
        if len(fields) != JOBLOG_COLUMNS:
            raise ValueError(f"{len(fields)} columns, not {JOBLOG_COLUMNS}")
        seq, exitval, signum = int(fields[0]), int(fields[6]), int(fields[7])
        start, runtime = float(fields[2]), float(fields[3])
        if not (-MAX_SECONDS <= start <= MAX_SECONDS and -MAX_SECONDS <= runtime <= MAX_SECONDS):
            raise ValueError(_not_times(fields))  # nan, inf, 1e308...
        if max(abs(seq), abs(exitval), abs(signum)) > MAX_INTEGER:
            raise ValueError(f"Seq, Exitval and Signal must be at most {MAX_INTEGER}")
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
        host="" if fields[1] == ":" else fields[1],
    )


def _not_times(fields: list[str]) -> str:
    return (
        f"Starttime and JobRuntime must be finite numbers of seconds, at most {MAX_SECONDS:g} "
        f"either way, not {fields[2][:30]!r} and {fields[3][:30]!r}"
    )


# ---------------------------------------------------------------------- the sidecar
def _json_rows(path: str, lines: list[tuple[int, str]], *, mend: bool) -> list[JobRecord]:
    """The records of a sidecar's lines (``mend``: lone surrogates may be escaped in them)."""
    objects = [line for _, line in lines if line.strip()]
    try:  # all at once: one call into the C decoder, and the checks a key at a time
        records = _checked_batch(_loads("[" + ",".join(objects) + "]"))
    except (ValueError, RecursionError):
        records = None
    if records is None:  # something is wrong: a line at a time, to name the line at fault
        records = [_json_row(path, number, line) for number, line in lines if line.strip()]
    return [_mend_surrogates(record) for record in records] if mend else records


def _loads(text: str) -> Any:
    return json.loads(text, parse_constant=_not_a_number)


def _not_a_number(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _checked_batch(objects: list[Any], *, nested: bool = False) -> list[JobRecord] | None:
    """The records of many sidecar objects, or None if any is not a job's object (then
    ``JobRecord.from_json`` on each says which and why). Each key's types and numbers'
    ranges are checked across all objects at once: per object, that checking dominated
    the reading."""
    if not objects:
        return []
    if any(type(data) is not dict for data in objects):
        return None
    if not all(REQUIRED <= data.keys() <= JSON_TYPES.keys() for data in objects):
        return None
    for key, kinds in JSON_TYPES.items():
        values = [data[key] for data in objects if key in data]
        types = set(map(type, values))
        if not types <= kinds:
            return None
        if types & NUMBER and not _all_in_range(key, values, types):
            return None
    nested_in = [data for data in objects if data.get("earlier")]
    if nested and nested_in:
        return None  # an earlier attempt has no attempts of its own
    given = [e for data in nested_in for e in data["earlier"]]
    earlier = _checked_batch(given, nested=True)
    if earlier is None:
        return None
    attempts = iter(earlier)
    for data in objects:
        if "earlier" in data:
            data["earlier"] = tuple(next(attempts) for _ in data["earlier"])
    return [JobRecord(**data) for data in objects]


def _all_in_range(key: str, values: list[Any], types: set[type]) -> bool:
    """Whether the numbers among ``values`` (of those ``types``) are in range: the smallest
    and the largest are (the JSON decoder here makes no nan)."""
    numbers = values if types <= NUMBER else [v for v in values if type(v) in NUMBER]
    return in_range(key, min(numbers)) and in_range(key, max(numbers))


def _json_row(path: str, number: int, line: str) -> JobRecord:
    try:
        return JobRecord.from_json(_loads(line))
    except RecursionError:
        raise ReportError(f"{path} line {number}: not a job record (nested too deeply)") from None
    except (ValueError, TypeError) as error:
        raise ReportError(f"{path} line {number}: not a job record ({error})") from None


def _mend_surrogates(record: JobRecord) -> JobRecord:
    """The record with each lone UTF-16 surrogate (a JSON escape such as ``\\ud800``) in
    its text replaced by U+FFFD; those of undecodable bytes (``\\udc80``-``\\udcff``, as
    procexec writes them) are kept."""
    for key in ("command", "host", "error"):
        text = getattr(record, key)
        if text is not None and _LONE_SURROGATE.search(text):
            setattr(record, key, _LONE_SURROGATE.sub("\ufffd", text))
    for attempt in record.earlier:
        _mend_surrogates(attempt)
    return record
