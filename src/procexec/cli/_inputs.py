"""Input sources, GNU parallel style, read lazily: what each job's arguments are.

``::: a b`` is a source of arguments; ``:::: FILE`` (or ``-a FILE``, ``-`` for stdin) a
source of lines, split at ``\\n`` only, or at NUL with ``-0``. Several sources give every
combination, the first source varying slowest; ``:::+`` / ``::::+`` pair a source with the
one before it (as far as the shorter goes), ``--link`` pairs all of them (the shorter ones
wrap). ``--colsep REGEX`` splits each value into columns, each an argument of its own.
``-N n`` gives each job n arguments.

A file or stdin that is the first source is read as the jobs run (``(seq 3; sleep 4) |
procexec echo`` starts three jobs at once, endless input keeps memory flat); the sources
after it are read whole, since every one of their values is used once per earlier value.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import NamedTuple

_CHUNK = 65536


class InputError(ValueError):
    """The input cannot be split into arguments."""


class Source:
    """One input source: literal values (``:::``) or a file to read (``::::``, ``-a``)."""

    __slots__ = ("_read", "_split", "_stream", "linked", "path", "values")

    values: list[str] | None  # ::: values, or None for a file
    path: str | None  # a file, "-" for stdin
    linked: bool  # :::+ / ::::+: paired with the source before it

    def __init__(
        self, values: list[str] | None = None, path: str | None = None, linked: bool = False
    ) -> None:
        self.values = values
        self.path = path
        self.linked = linked
        self._split = False  # the ::: values are cut at -d
        self._read: list[str] | None = None  # a file's values, once read whole
        self._stream: Iterator[str] | None = None  # a file's values, as read

    def __repr__(self) -> str:
        return f"Source(values={self.values!r}, path={self.path!r}, linked={self.linked})"

    @property
    def lazy(self) -> bool:
        """Whether the values come from a file or stdin."""
        return self.values is None

    def items(self, separator: bytes, longest: int | None = None) -> Iterator[str]:
        """The values, read as they are asked for when from a file. ``:::`` values are cut
        at the separator too, as GNU parallel cuts them (``::: $'a\\nb'`` is two values).
        A value longer than ``longest`` bytes is an InputError, raised before it is held
        whole."""
        if self.values is not None:
            if not self._split:
                self.values = [item for value in self.values for item in _cut(value, separator)]
                self._split = True
            return iter(self.values)
        if self._stream is None:
            assert self.path is not None
            self._stream = read_items(self.path, separator=separator, longest=longest)
        return self._stream

    def all_items(self, separator: bytes, longest: int | None = None) -> list[str]:
        """Every value (a file is read once)."""
        if self.values is not None:
            return list(self.items(separator))
        if self._read is None:
            self._read = list(self.items(separator, longest))
        return self._read

    def header(self, separator: bytes) -> str | None:
        """Take the first value off (``--header``): the source's header line, a ``\\r`` at
        its end left out, or None if the source is empty."""
        if self.values is not None:
            values = self.items(separator)
            header = next(values, None)
            self.values = list(values)
        else:
            header = next(self.items(separator), None)
        return None if header is None else header.removesuffix("\r")


def _cut(value: str, separator: bytes) -> list[str]:
    """A ``:::`` value cut at the separator (an empty one: into paragraphs)."""
    if separator:
        return value.split(separator.decode("utf-8", "surrogateescape"))
    return [part.strip("\n") for part in value.split("\n\n") if part.strip("\n")] or [""]


def split_sources(
    words: Sequence[str], *, arg_sep: str = ":::", file_sep: str = "::::"
) -> tuple[list[str], list[Source] | None]:
    """Split ``cmd ... ::: a b :::: f1 f2 :::+ c d`` into the template and its sources
    (``--arg-sep`` and ``--arg-file-sep`` name other separators than ``:::`` and ``::::``).

    Each file after ``::::`` is a source of its own. The sources are None when the words
    hold no separator at all (arguments then come from stdin)."""
    kinds = {arg_sep: ":::", arg_sep + "+": ":::+", file_sep: "::::", file_sep + "+": "::::+"}
    template: list[str] = []
    sources: list[Source] = []
    mode = ""
    for word in words:
        if word in kinds:
            mode = kinds[word]
            if mode.rstrip("+") == ":::":
                sources.append(Source(values=[], linked=mode.endswith("+") and bool(sources)))
        elif not mode:
            template.append(word)
        elif mode.rstrip("+") == ":::":
            values = sources[-1].values
            assert values is not None
            values.append(word)
        else:  # each file after ::::+ is paired with the source before it
            sources.append(Source(path=word, linked=mode.endswith("+") and bool(sources)))
    return template, (sources if mode else None)


def read_chunks(path: str) -> Iterator[bytes]:
    """The bytes of a file (``-``: standard input) as they arrive. Read with ``os.read``,
    not through Python's buffered reader: a thread blocked here when the interpreter exits
    holds no lock that its shutdown would need (a buffered read aborts the process)."""
    if path == "-":
        if sys.stdin is None:
            return
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (a test's StringIO)
            yield from iter(lambda: sys.stdin.buffer.read(_CHUNK), b"")
            return
        close = False
    else:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        close = True
    try:
        while chunk := os.read(fd, _CHUNK):
            yield chunk
    finally:
        if close:
            os.close(fd)


def read_items(path: str, *, separator: bytes = b"\n", longest: int | None = None) -> Iterator[str]:
    """The items of a file (``-`` for stdin), read as they arrive: its lines, split at
    ``\\n`` only (as GNU parallel does: ``\\r``, form feeds and the like stay in the item),
    or at another ``separator`` (``-0``, ``-d``; an empty one: paragraphs, as Perl's). A NUL
    byte in line input is an InputError; so is an item longer than ``longest`` bytes, as
    soon as that many have come (no command line could hold it, and it is not held whole
    to find out). Each byte is searched about once, however long the item."""
    cut = separator or b"\n\n"
    where = "standard input" if path == "-" else path
    buffer = bytearray()  # the item under way, and what follows it
    line = 1
    for chunk in read_chunks(path):
        searched = max(0, len(buffer) - len(cut) + 1)  # no separator wholly before this
        buffer += chunk
        start = 0
        while (end := buffer.find(cut, max(start, searched))) >= 0:
            raw, start = bytes(buffer[start:end]), end + len(cut)
            item, line = _item(raw, separator, where, line, longest)
            if item is not None:
                yield item
        del buffer[:start]
        if longest is not None and len(buffer) > longest:
            raise InputError(_too_long(where, line, longest))
    if buffer:
        item, _ = _item(bytes(buffer), separator, where, line, longest)
        if item is not None:
            yield item


def _item(
    raw: bytes, separator: bytes, where: str, line: int, longest: int | None
) -> tuple[str | None, int]:
    """One item read (None: an empty paragraph, which is no item), and the next line's
    number; InputError for one too long, or for a NUL byte in line input."""
    if longest is not None and len(raw) > longest:
        raise InputError(_too_long(where, line, longest))
    if separator == b"\n" and b"\0" in raw:
        raise InputError(
            f"{where}, line {line}: a NUL byte in the input; for NUL-separated input "
            "use -0 (--null)"
        )
    if not separator:
        raw = raw.strip(b"\n")
        if not raw:
            return None, line
    return raw.decode("utf-8", "surrogateescape"), line + 1


def _too_long(where: str, line: int, longest: int) -> str:
    return (
        f"{where}, line {line}: a value of more than {longest} bytes, longer than any "
        "command line this system can run"
    )


class Shape(NamedTuple):
    """How values become a job's arguments: ``--link``, ``--colsep``, ``-N``, ``-L``..."""

    separator: bytes = b"\n"  # -0, -d
    link: bool = False
    colsep: re.Pattern[str] | None = None
    per_job: int | None = None  # -N n, -n n, -L n: values per job
    eof: str | None = None  # -E: the value that ends each source
    trim: str = "n"  # --trim: l, r, lr or n (none)
    continued: bool = False  # -L: a value ending in a blank goes on in the next one
    skip_blank: bool = False  # -r: blank values are left out of each source
    longest: int | None = None  # the longest value that can be used, in bytes


def arguments(sources: list[Source], shape: Shape) -> Iterator[tuple[str, ...]]:
    """Every job's arguments, in GNU parallel's order, read lazily where it can be.

    Among several sources, one without values gives one empty value; when every one of
    them is without values, there is no job (GNU parallel's rule)."""
    groups = _link_groups(sources, shape.link)
    rest = [list(_group_values(group, shape, lazy=False)) for group in groups[1:]]
    first = _group_values(groups[0], shape, lazy=True)
    if any(rest):
        first = _or_empty(first, len(groups[0]))
    tails = [values or [("",) * len(group)] for values, group in zip(rest, groups[1:], strict=True)]
    combos = (
        tuple(itertools.chain(head, *tail)) for head in first for tail in itertools.product(*tails)
    )
    if shape.colsep is not None:
        pattern = shape.colsep
        combos = (tuple(c for value in combo for c in pattern.split(value)) for combo in combos)
    if shape.trim != "n":
        strip = _TRIMS[shape.trim]
        combos = (tuple(strip(value) for value in combo) for combo in combos)
    if shape.per_job is None:
        return combos
    if shape.per_job == 0:  # -N0: a job per input, with no arguments
        return (() for _ in combos)
    return _batches(combos, shape.per_job)


#: What Perl's ``\\s`` matches: GNU parallel's blanks for --trim, -L and -r.
_PERL_BLANKS = " \t\n\r\f\v"

_TRIMS: dict[str, Callable[[str], str]] = {
    "l": lambda value: value.lstrip(_PERL_BLANKS),
    "r": lambda value: value.rstrip(_PERL_BLANKS),
    "lr": lambda value: value.strip(_PERL_BLANKS),
    "rl": lambda value: value.strip(_PERL_BLANKS),
}


def _or_empty(values: Iterable[tuple[str, ...]], width: int) -> Iterator[tuple[str, ...]]:
    """The value tuples, or one of empty values if there are none."""
    empty = True
    for value in values:
        empty = False
        yield value
    if empty:
        yield ("",) * width


def _source_values(source: Source, shape: Shape, lazy: bool) -> Iterator[str]:
    """One source's values: up to the ``-E`` value, lines ending in a blank joined to
    the next (``-L``), blank ones left out (``-r``)."""
    items = (
        source.items(shape.separator, shape.longest)
        if lazy
        else iter(source.all_items(shape.separator, shape.longest))
    )
    values = _until(items, shape.eof)
    if shape.continued:
        values = _continued(values)
    if shape.skip_blank:
        values = (value for value in values if value.strip(_PERL_BLANKS))
    return values


def _until(values: Iterable[str], eof: str | None) -> Iterator[str]:
    """The values before the first one equal to ``eof`` (``-E``)."""
    if eof is None:
        yield from values
        return
    for value in values:
        if value == eof:
            return
        yield value


def _continued(values: Iterable[str]) -> Iterator[str]:
    """``-L``: a value that ends in a blank is continued by the next one (joined as is)."""
    held = ""
    for value in values:
        held += value
        if not held or held[-1] not in _PERL_BLANKS:
            yield held
            held = ""
    if held:
        yield held


def _batches(combos: Iterator[tuple[str, ...]], size: int) -> Iterator[tuple[str, ...]]:
    while batch := list(itertools.islice(combos, size)):
        yield tuple(value for combo in batch for value in combo)


def _link_groups(sources: list[Source], link: bool) -> list[list[Source]]:
    if link:
        return [sources]
    groups: list[list[Source]] = []
    for source in sources:
        if source.linked and groups:
            groups[-1].append(source)
        else:
            groups.append([source])
    return groups


def _group_values(group: list[Source], shape: Shape, *, lazy: bool) -> Iterable[tuple[str, ...]]:
    """The value tuples of one group of paired sources (a single source: 1-tuples). A
    paired source without values gives one empty value."""
    if len(group) == 1:
        return ((value,) for value in _source_values(group[0], shape, lazy))
    lists = [list(_source_values(source, shape, lazy=False)) for source in group]
    if all(not values for values in lists):
        return iter(())
    lists = [values or [""] for values in lists]
    if not shape.link:  # :::+ pairs as far as the shorter goes
        return zip(*lists, strict=False)
    longest = max(len(values) for values in lists)
    return (tuple(values[i % len(values)] for values in lists) for i in range(longest))
