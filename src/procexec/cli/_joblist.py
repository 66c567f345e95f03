"""The jobs of a run: how many values each takes (``-N``, ``-n``, ``-L``), the input
sources read into each job's arguments (``-X``/``-m`` packed), numbered, the ones done in
an earlier run (``--resume``) left out, and the ``--header`` column names."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import NamedTuple

from procexec.cli._feed import Feed, Job
from procexec.cli._inputs import InputError, Shape, Source, arguments
from procexec.cli._shell import line_limit
from procexec.cli._template import Template
from procexec.cli._values import UsageError, parse_size, unquote_printf


class Counts(NamedTuple):
    """How many values a job takes: ``-N``, ``-n``, ``-L`` (GNU parallel's meanings)."""

    per_job: int | None  # values per job (None: one input combination each)
    context: bool  # -N, -L: a word with {} is repeated for each value
    records: int | None  # with --pipe: records per block (-N, -n)
    lines: int | None  # -L: lines, a line ending in a blank continued by the next


def counts_of(options: argparse.Namespace) -> Counts:
    """``-N``/``-n``/``-L``, read as GNU parallel reads them (``1k`` is 1000)."""
    counts: dict[str, int | None] = {}
    for name, flag in (("max_args", "-N"), ("n_args", "-n"), ("max_lines", "-L")):
        text = getattr(options, name)
        if text is not None and text.strip().startswith("-"):
            raise UsageError(f"{flag} must be at least 0, got {text}")
        counts[name] = None if text is None else parse_size(text, flag)
    n, lines = (
        counts["max_args"] if counts["max_args"] is not None else counts["n_args"],
        counts["max_lines"],
    )
    per_job = n if n is not None else lines
    packing = options.context or options.multi
    context = options.context or (
        not packing and (counts["max_args"] is not None or lines is not None)
    )
    return Counts(per_job, context, n, lines)


def column_names_of(sources: list[Source], options: argparse.Namespace) -> list[str | None]:
    """``--header``: the column names, the header lines taken off the sources."""
    from procexec.cli._header import column_names  # noqa: PLC0415  # only with --header

    try:
        return column_names(sources, options.header, options.colsep, _separator(options))
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    except InputError as error:
        raise UsageError(str(error)) from None


def _separator(options: argparse.Namespace) -> bytes:
    """What ends an input item: ``-d DELIM``, NUL with ``-0``, else a newline."""
    if options.delimiter is not None:
        return unquote_printf(options.delimiter).encode("utf-8", "surrogateescape")
    return b"\0" if options.null else b"\n"


def jobs_of(
    sources: list[Source],
    options: argparse.Namespace,
    counts: Counts,
    template: Template | None,
    *,
    skip: set[int],
    slots: int,
) -> tuple[Feed, int | None, int | None]:
    """The feed of jobs, their number when the input was read whole (``--bar``, ``--eta``,
    ``--halt N%``, ``-X``, ``-m`` need it), and how many there are to spread ``-j 0``
    over."""
    packing = bool(options.context or options.multi) and template is not None
    whole = packing or options.bar or options.eta or "%" in options.halt
    args = _arguments(sources, options, counts, template, packed=packing)
    if not whole:
        return Feed(_numbered(args, skip), threaded=sources[0].lazy), None, None
    listed = _read_whole(args)
    if packing:
        from procexec.cli._pack import TooLongError, fit_groups, packing_limit  # noqa: PLC0415

        assert template is not None
        limit = packing_limit(line_limit())
        spread = AS_MANY if options.jobs is not None and options.jobs.strip() == "0" else slots
        try:
            listed = fit_groups(listed, template, spread, limit, counts.per_job)
        except TooLongError as error:
            raise UsageError(str(error)) from None
    numbered = list(_numbered(iter(listed), skip))
    return Feed(iter(numbered), threaded=False), len(numbered), len(listed)


#: What ``-j 0`` spreads ``-X``/``-m`` arguments over: each combination a job of its own.
AS_MANY = 1 << 30


def _arguments(
    sources: list[Source],
    options: argparse.Namespace,
    counts: Counts,
    template: Template | None,
    *,
    packed: bool,
) -> Iterator[tuple[str, ...]]:
    """Every job's arguments (each line a whole command line when there is no template);
    with ``packed`` (-X, -m), every input combination, to be packed."""
    shape = Shape(
        separator=_separator(options),
        link=options.link,
        colsep=options.colsep if template is not None else None,
        per_job=None if packed or template is None else counts.per_job,
        eof=options.eof,
        trim=options.trim,
        continued=bool(counts.lines),
        skip_blank=options.no_run_if_empty and template is not None,
        longest=None if counts.per_job == 0 else line_limit(),
    )
    args = arguments(sources, shape)
    if template is None:
        return (combo for combo in args if combo[0].strip())  # blank lines: no job
    return args


def _read_whole(args: Iterator[tuple[str, ...]]) -> list[tuple[str, ...]]:
    try:
        return list(args)
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    except InputError as error:
        raise UsageError(str(error)) from None


def _numbered(args: Iterator[tuple[str, ...]], skip: set[int]) -> Iterator[Job]:
    """The jobs: numbered from 1 ({#}), those done in an earlier run (--resume) left out."""
    index = 0
    for seq, job_args in enumerate(args, 1):
        if seq not in skip:
            yield Job(seq, index, job_args)
            index += 1
