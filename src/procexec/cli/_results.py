"""``--results``: where each job's output is saved, in GNU parallel's layouts.

- ``--results DIR`` (no replacement string): ``DIR/1/VALUE1/2/VALUE2/{stdout,stderr,seq}``
  (with ``--header``, the column names instead of the numbers, sorted by name). In a value
  ``\\`` is written ``\\\\``, a tab ``\\t``, ``/`` ``\\_``; ``.`` and ``..`` get a backslash
  before each dot (GNU parallel takes them as they are, writing outside the tree); a name
  longer than the file system allows is cut to its longest.
- ``--results TEMPLATE`` with replacement strings: the expanded path, ``PATH``,
  ``PATH.err`` and ``PATH.seq``; or, if it ends with ``/``, that directory's ``stdout``,
  ``stderr`` and ``seq``.
- ``--results FILE.json`` (``.csv``, ``.tsv``): one file with a row per job, its log
  columns, values, stdout and stderr; ``-.json`` (...) writes it to standard output.

Nothing else is printed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from procexec.cli._display import Display, Text
from procexec.cli._feed import Job
from procexec.cli._sink import Sink
from procexec.cli._template import Template

if TYPE_CHECKING:
    from procexec.report import JobRecord

_FORMATS = {".json": "json", ".csv": ",", ".tsv": "\t"}


@dataclass(frozen=True)
class Results:
    """The ``--results`` value, understood."""

    text: str
    names: tuple[str | None, ...] = ()  # --header column names

    @property
    def format(self) -> str | None:
        """ "json", the CSV separator, or None for files per job."""
        return _FORMATS.get(os.path.splitext(self.text)[1].lower())

    @cached_property
    def template(self) -> Template:
        """The value as a template (checked once)."""
        return Template.parse([self.text], shell=False)

    def files(self, job: Job) -> tuple[str, str, str]:
        """The paths of ``job``'s stdout, stderr and sequence number files."""
        if not self.template.has_replacements:
            directory = os.path.join(self.text, *self._tree(job.args))
            return _inside(directory)
        path = " ".join(self.template.words(job.args, job.seq, job.slot))
        if path.endswith("/"):
            return _inside(path)
        return path, f"{path}.err", f"{path}.seq"

    def _tree(self, args: Sequence[str]) -> list[str]:
        """``1/VALUE1/2/VALUE2...``: a name and a value directory per argument (an empty
        value has no directory), ordered by name as GNU parallel orders them."""
        names = [
            (self.names[i] or str(i + 1)) if i < len(self.names) else str(i + 1)
            for i in range(len(args))
        ]
        order = sorted(range(len(args)), key=lambda i: (_leading_number(names[i]), names[i]))
        parts: list[str] = []
        for i in order:
            parts.append(_fit(_path_safe(names[i])))
            if args[i]:
                parts.append(_fit(_path_safe(args[i])))
        return parts


def _inside(directory: str) -> tuple[str, str, str]:
    return tuple(os.path.join(directory, name) for name in ("stdout", "stderr", "seq"))  # type: ignore[return-value]


def _leading_number(name: str) -> float:
    """The number a name starts with, as Perl's ``<=>`` reads it (0 if none)."""
    digits = ""
    for char in name:
        if not (char.isdigit() or (char == "." and "." not in digits)):
            break
        digits += char
    try:
        return float(digits)
    except ValueError:
        return 0.0


def _path_safe(value: str) -> str:
    """A value as a directory name, as GNU parallel writes it (see the module)."""
    if value in (".", ".."):
        return value.replace(".", "\\.")
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("/", "\\_")


def _fit(name: str) -> str:
    """``name`` cut to the longest file name this file system takes, as GNU parallel does
    when a value is too long."""
    longest = _name_max()
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= longest:
        return name
    return raw[:longest].decode("utf-8", "ignore")


def _name_max() -> int:
    try:
        return os.pathconf(".", "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


class ResultsFile(Display):
    """``--results FILE.json|.csv|.tsv``: one row per job, written as it ends (with ``-k``,
    in input order: ``next_index``, as the runner's read-ahead window reads it)."""

    def __init__(self, results: Results, keep_order: bool, out: Sink, err: Sink) -> None:
        super().__init__(keep_order, None, False, out, err)
        self.results = results
        self.separator = results.format or ""
        self.pending: dict[int, tuple[Job, str, bytes, bytes]] = {}  # by seq: no record yet
        self.rows: dict[int, tuple[str, int]] = {}  # by index: (row, its values) to write
        self.header_written = False
        to_stdout = os.path.basename(results.text).startswith("-.")
        self.sink = out if to_stdout else Sink.open(results.text, results.text, append=False)

    def ended(self, job: Job, text: Text, stdout: bytes, stderr: bytes) -> None:
        """Held until the job's record comes (see :meth:`recorded`)."""
        self.pending[job.seq] = (job, text(), stdout, stderr)

    def skipped(self, job: Job) -> None:
        """A job that will not run: no row, and later rows need not wait for it."""
        self._written(job.index, "", 0)

    def recorded(self, record: JobRecord) -> None:
        """The row of a finished job: written now, or once the rows before it are."""
        job, command, stdout, stderr = self.pending.pop(record.seq)
        out, err = (data.decode("utf-8", "surrogateescape") for data in (stdout, stderr))
        fields = [
            record.seq,
            record.host or ":",
            f"{record.start:.3f}",
            f"{record.duration:.3f}",
            0,
            len(stdout),
            -1 if record.timed_out else (record.exit or 0),
            record.signal,
            command,
        ]
        if self.separator == "json":
            row = _json_row(fields, job.args, out, err)
        else:
            row = self._csv_line([*map(str, fields), *job.args, out, err])
        self._written(job.index, row, len(job.args))

    def close(self) -> None:
        """The run is over: write what is still held, close the file (not stdout)."""
        for index in sorted(self.rows):
            self._write(*self.rows.pop(index))
        self.sink.close()  # a file of ours; stdout stays open

    def _written(self, index: int, row: str, values: int) -> None:
        if not self.keep_order:
            self._write(row, values)
            return
        self.rows[index] = (row, values)
        while self.next_index in self.rows:
            self._write(*self.rows.pop(self.next_index))
            self.next_index += 1

    def _write(self, row: str, values: int) -> None:
        """Write a row; before the first CSV row, the header (its value columns named
        after --header's names, else V1, V2...)."""
        if not row:
            return
        if self.separator != "json" and not self.header_written:
            names = [*self.results.names, *[None] * values][:values]
            columns = ["Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval"]
            columns += ["Signal", "Command"]
            columns += [name or f"V{i + 1}" for i, name in enumerate(names)]
            self.sink.text(self._csv_line([*columns, "Stdout", "Stderr"]))
            self.header_written = True
        self.sink.text(row)  # whole (procexec.cli._sink), or an OutputError

    def _csv_line(self, columns: Sequence[str]) -> str:
        """A row, GNU parallel's CSV: a field holding a quote, a blank or the separator
        quoted, its quotes doubled."""
        quoted = []
        for column in columns:
            doubled = column.replace('"', '""')
            special = doubled != column or any(
                c in column for c in f" \t\n\r\f\v\0{self.separator}"
            )
            quoted.append(f'"{doubled}"' if special else column)
        return self.separator.join(quoted) + "\n"


def _json_row(fields: list[object], args: Sequence[str], out: str, err: str) -> str:
    """A row, GNU parallel's JSON: one object a line, its keys in the log's order."""
    seq, host, start, runtime, send, receive, exitval, signum, command = fields
    values = ",".join(f'"{_json_quote(arg)}"' for arg in args)
    return (
        f'{{ "Seq": {seq}, "Host": "{_json_quote(str(host))}", "Starttime": {start}, '
        f'"JobRuntime": {runtime}, "Send": {send}, "Receive": {receive}, "Exitval": {exitval}, '
        f'"Signal": {signum}, "Command": "{_json_quote(str(command))}", "V": [ {values} ], '
        f'"Stdout": "{_json_quote(out)}", "Stderr": "{_json_quote(err)}" }}\n'
    )


def _json_quote(text: str) -> str:
    """A JSON string's inside as GNU parallel writes it (control characters as \\u00XX)."""
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    return _CONTROL.sub(lambda match: f"\\u{ord(match.group(0)):04x}", text)


_CONTROL = re.compile(r"[\x00-\x1f]")
