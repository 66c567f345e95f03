"""What ``procexec`` is asked to do: the options parsed into a Plan and the job list."""

from __future__ import annotations

import argparse
import importlib.util
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from procexec import DEFAULT_TERM_SEQUENCE
from procexec._core import make_admission
from procexec.cli._args import (
    Halt,
    UsageError,
    build_parser,
    parse_duration,
    parse_halt,
    parse_jobs,
    parse_load,
    parse_pressure,
    parse_term_seq,
    parse_timeout,
    unescape,
)
from procexec.cli._feed import Feed, Job
from procexec.cli._inputs import InputError, Shape, Source, arguments, split_sources
from procexec.cli._joblog import MalformedLogError, read_outcomes
from procexec.cli._pipe import PipeSpec, parse_pipe
from procexec.cli._shell import length_bound, line_length, line_limit, user_shell
from procexec.cli._template import Template, TemplateError

__all__ = ["CommandTooLongError", "Job", "Plan", "make_plan"]


class CommandTooLongError(Exception):
    """A job's command line is longer than the system allows (GNU parallel's message)."""


@dataclass
class Plan:
    """Everything main() decided before running anything."""

    template: Template | None  # None: each argument is a whole shell command line
    feed: Feed  # the jobs, as their input arrives
    total: int | None  # the number of jobs, when the input was read whole
    max_jobs: int
    retries: int
    timeout: float | None
    timeout_percent: float | None  # --timeout N%: of the median runtime of succeeded jobs
    halt: Halt | None
    term_sequence: Sequence[tuple[int, float]]
    joblog: str | None
    joblog_json: str | None
    resume: bool  # --resume, --resume-failed or --joblog +FILE: the logs are appended to
    joblog_header: bool  # False for --joblog +FILE (GNU parallel writes no header there)
    report: str | None
    summary: bool
    keep_order: bool
    tag: bool
    tagstring: Template | None  # --tagstring: the tag, with replacement strings
    bar: bool
    eta: bool
    progress: bool
    verbose: bool
    output: str  # "group" (whole, the default), "line" (--line-buffer), "ungroup" (-u)
    results: str | None  # --results DIR
    pipe: PipeSpec | None  # --pipe: blocks of stdin to each job's stdin
    dry_run: bool
    guardian: bool  # stop the jobs if procexec is killed (docs/resources.md, "The guardian")
    admission: dict[str, Any]  # memfree, load, pressure, delay for ProcessExecutor
    dask: str | None  # a scheduler address, or "local:N"
    reads_stdin: bool = False  # an input source is standard input
    shell_path: str = "/bin/sh"  # the shell that runs command lines
    line_limit: int = 131071
    dask_timeout: float | None = None  # --dask-connect-timeout; None: DaskExecutor's default

    def tag_of(self, job: Job) -> str:
        """The prefix of the job's output lines: ``--tagstring`` expanded, or its arguments."""
        if self.tagstring is None:
            return " ".join(job.args)
        if not self.tagstring.has_replacements:  # the text alone: no arguments appended
            return self.tagstring.tokens[0]
        return " ".join(self.tagstring.expand(job.args, job.seq, 0))  # values unquoted

    def command(self, job: Job, slot: int) -> list[str] | str:
        """The argv, or the shell command line, for ``job`` in ``slot``; CommandTooLongError
        when it is longer than this system allows."""
        command = job.args[0] if self.template is None else self.template.expand(
            job.args, job.seq, slot
        )  # fmt: skip
        if length_bound(command) <= self.line_limit:
            return command
        length = line_length(command)
        if length > self.line_limit:
            text = command if isinstance(command, str) else " ".join(command)
            raise CommandTooLongError(
                f"command line too long ({length} >= {self.line_limit} bytes, this system's "
                f"limit) at job {job.seq}: {text[:50]}..."
            )
        return command

    def text(self, job: Job, slot: int) -> str:
        """The job's command as one line, as logged (GNU parallel's Command column)."""
        if self.template is None:
            return job.args[0]
        return self.template.text(job.args, job.seq, slot)


def make_plan(argv: list[str]) -> Plan:
    """Parse ``argv`` into a Plan; raise UsageError with a one-line message."""
    options = build_parser().parse_args(argv)
    _check(options)
    words = options.command
    if words[:1] == ["--"]:  # the end of the options: what follows is the command
        words = words[1:]
    if options.arg_file:  # -a FILE: an input source each, as :::: FILE, before the others
        marks = {options.arg_sep, options.arg_file_sep}
        marks |= {mark + "+" for mark in marks}
        first = next((i for i, w in enumerate(words) if w in marks), len(words))
        words = [*words[:first], options.arg_file_sep, *options.arg_file, *words[first:]]
    if options.replace:  # -I STR: STR is {}
        words = [word.replace(options.replace, "{}") for word in words]
    pipe = parse_pipe(options) if options.pipe else None
    template, sources = _template(words, options, pipe is not None)
    max_jobs_text = options.jobs
    timeout, timeout_percent = parse_timeout(options.timeout) if options.timeout else (None, None)
    halt = parse_halt(options.halt)
    appended = bool(options.joblog and options.joblog.startswith("+") and options.joblog != "+")
    if appended:  # --joblog +FILE: added to, as with --resume (GNU parallel's form)
        options.joblog = options.joblog[1:]
    skip = _already_done(options.joblog, options.resume, options.resume_failed)
    needs_total = options.bar or options.eta or bool(halt and halt.percent)
    if pipe is not None:
        max_jobs = _max_jobs(max_jobs_text, None)
        feed, total = pipe.feed(max_jobs), None
    else:
        args = _arguments(sources, options, template)
        whole = needs_total or options.context or options.multi
        max_jobs = _max_jobs(max_jobs_text, None)
        if whole:
            listed = _read_whole(args)
            if options.context or options.multi:
                assert template is not None
                listed = fit_groups(listed, template, max_jobs, line_limit())
            max_jobs = _max_jobs(max_jobs_text, len(listed))
            args = iter(listed)
        jobs = _numbered(args, skip)
        if whole:
            numbered = list(jobs)
            feed, total = Feed(iter(numbered), threaded=False), len(numbered)
        else:
            feed, total = Feed(jobs, threaded=sources[0].lazy), None
    return Plan(
        template=template,
        feed=feed,
        total=total,
        max_jobs=max_jobs,
        retries=options.retries,
        timeout=timeout,
        timeout_percent=timeout_percent,
        halt=halt,
        term_sequence=parse_term_seq(options.term_seq)
        if options.term_seq
        else DEFAULT_TERM_SEQUENCE,
        joblog=options.joblog,
        joblog_json=options.joblog_json,
        resume=options.resume or options.resume_failed or appended,
        joblog_header=not appended,
        report=options.report,
        summary=bool(options.summary),  # never by default: --bar is the bar alone
        keep_order=options.keep_order,
        tag=options.tag or options.tagstring is not None,
        tagstring=_tagstring(options.tagstring),
        bar=options.bar,
        eta=options.eta,
        progress=options.progress,
        verbose=options.verbose,
        output="ungroup" if options.ungroup else "line" if options.line_buffer else "group",
        results=options.results,
        pipe=pipe,
        dry_run=options.dry_run,
        guardian=options.guardian,
        admission=_admission(options),
        dask=_dask(options),
        dask_timeout=_dask_timeout(options),
        reads_stdin=pipe is not None or any(source.path == "-" for source in sources),
        shell_path=user_shell(),
        line_limit=line_limit(),
    )


_PERL = re.compile(r"\{=.*?=\}", re.DOTALL)


def _check(options: argparse.Namespace) -> None:
    """The checks of single options that need no input read."""
    if options.retries < 1:
        raise UsageError(f"--retries must be at least 1, got {options.retries}")
    if (options.resume or options.resume_failed) and not options.joblog:
        raise UsageError("--resume and --resume-failed need --joblog FILE")
    for value, flag in ((options.max_args, "-N"), (options.n_args, "-n/-L")):
        if value is not None and value < (0 if flag == "-N" else 1):
            raise UsageError(f"{flag} must be at least {0 if flag == '-N' else 1}, got {value}")
    if options.trim is None:  # GNU parallel trims columns on both sides by default
        options.trim = "lr" if options.colsep is not None else "n"
    if options.header is not None and options.colsep is None:
        options.colsep = "\t"  # GNU parallel's column separator for a header
    if options.context and options.multi:
        raise UsageError("-X and -m cannot be used together")
    if options.colsep is not None:
        try:
            options.colsep = re.compile(options.colsep)
        except re.error as error:
            raise UsageError(f"--colsep {options.colsep!r}: {error}") from None


def _template(
    words: list[str], options: argparse.Namespace, pipe: bool
) -> tuple[Template | None, list[Source]]:
    """The command template and the input sources (stdin when none is given)."""
    try:
        template_words, sources = split_sources(
            words, arg_sep=options.arg_sep, file_sep=options.arg_file_sep
        )
    except InputError as error:
        raise UsageError(str(error)) from None
    if pipe:
        if sources is not None:
            raise UsageError("--pipe reads standard input: give no ::: or :::: sources")
        sources = []
    elif sources is None:
        sources = [Source(path="-")]
    for source in sources:
        if source.path not in (None, "-"):
            try:
                open(source.path, "rb").close()  # readable? (read later)
            except OSError as error:
                raise UsageError(f"cannot read {source.path}: {error.strerror}") from None
    if not template_words:
        if pipe or len(sources) != 1:
            raise UsageError("give a command before ::: (or one command per line on stdin)")
        return None, sources
    if options.header is not None:
        template_words = _named_columns(template_words, sources, options)
    if _PERL.search(" ".join(template_words)):
        raise UsageError(
            "{= perl expression =} replacement strings are not supported: compute the "
            "value in the shell command instead (e.g. $(echo {} | sed s/a/b/))"
        )
    context = options.context or options.max_args is not None
    try:
        template = Template.parse(
            template_words,
            shell=not options.quote,
            context=context,
            force_shell=options.shell,
        )
    except TemplateError as error:
        raise UsageError(str(error)) from None
    return template, sources


def _named_columns(
    words: list[str], sources: list[Source], options: argparse.Namespace
) -> list[str]:
    """``--header``: take each source's first value as its name (its columns' names, split
    by --colsep) and turn ``{name}`` in the template into the column's number."""
    names: list[str] = []
    try:
        for source in sources:
            header = source.header(_separator(options))
            columns = [] if header is None else options.colsep.split(header)
            names.extend(columns)
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    except InputError as error:
        raise UsageError(str(error)) from None
    for number, name in enumerate(names, 1):
        words = [word.replace(f"{{{name}}}", f"{{{number}}}") for word in words]
    return words


def _separator(options: argparse.Namespace) -> bytes:
    """What ends an input item: ``-d DELIM``, NUL with ``-0``, else a newline."""
    if options.delimiter is not None:
        return unescape(options.delimiter)
    return b"\0" if options.null else b"\n"


def _arguments(
    sources: list[Source], options: argparse.Namespace, template: Template | None
) -> Iterator[tuple[str, ...]]:
    """Every job's arguments (each line a whole command line when there is no template)."""
    per_job = options.max_args if options.max_args is not None else options.n_args
    shape = Shape(
        separator=_separator(options),
        link=options.link,
        colsep=options.colsep if template is not None else None,
        per_job=per_job if template is not None else None,
        eof=options.eof,
        trim=options.trim,
    )
    args = arguments(sources, shape)
    if template is None:
        return (combo for combo in args if combo[0].strip())  # blank lines: no job
    if options.no_run_if_empty:  # -r: a blank value makes no job
        return (combo for combo in args if any(value.strip() for value in combo))
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


def fit_groups(
    values: list[tuple[str, ...]], template: Template, slots: int, limit: int
) -> list[tuple[str, ...]]:
    """``-X`` / ``-m``: the values in groups, spread evenly over the job slots, each group
    as long as fits in one command line (GNU parallel's rule)."""
    flat = [value for combo in values for value in combo]
    per_job = max(1, -(-len(flat) // slots))
    empty = line_length(template.expand((), 1, 1))
    groups: list[tuple[str, ...]] = []
    group: list[str] = []
    length = empty + 64  # room for {#} and {%} growing
    for value in flat:
        cost = line_length(template.expand((value,), 1, 1)) - empty + 1
        if group and (len(group) >= per_job or length + cost > limit):
            groups.append(tuple(group))
            group, length = [], empty + 64
        group.append(value)
        length += cost
    if group:
        groups.append(tuple(group))
    return groups


def _admission(options: argparse.Namespace) -> dict[str, Any]:
    """``--memfree``, ``--load``, ``--delay``, ``--pressure``, checked (and probed) now."""
    admission: dict[str, Any] = {}
    if options.memfree is not None:
        admission["memfree"] = options.memfree
    if options.load is not None:
        from loky import cpu_count  # noqa: PLC0415  # loading loky is not free: only on use

        admission["load"] = parse_load(options.load, int(cpu_count()))
    if options.delay is not None:
        admission["delay"] = parse_duration(options.delay, "--delay")
    if options.pressure is not None:
        admission["pressure"] = parse_pressure(options.pressure)
    try:
        make_admission(**admission)
    except (TypeError, ValueError, OSError) as error:
        raise UsageError(f"--{error}") from None  # its messages begin with the option
    return admission


def _dask(options: argparse.Namespace) -> str | None:
    """``--dask ADDRESS`` or ``--dask local:N``, checked."""
    address: str | None = options.dask
    if address is None:
        return None
    if importlib.util.find_spec("distributed") is None:
        raise UsageError("--dask needs Dask's distributed: pip install 'procexec[dask]'")
    if address.startswith("local:"):
        count = address.partition(":")[2]
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"--dask local:N needs a number of workers, not {address!r}")
    elif ":" not in address:
        raise UsageError(
            f"--dask takes a scheduler address (tcp://host:8786) or local:N, not {address!r}"
        )
    local_only = [f"--{name}" for name in ("memfree", "load", "pressure") if getattr(options, name)]
    if local_only:
        raise UsageError(
            f"{', '.join(local_only)} watch this machine, not the cluster: with --dask, give "
            "the workers their procexec-slots resource instead"
        )
    streaming = [
        flag for flag, on in (("-u", options.ungroup), ("--line-buffer", options.line_buffer)) if on
    ]
    if streaming:
        raise UsageError(
            f"{streaming[0]} prints from this machine's pipes while jobs run: with --dask, "
            "each job's output comes whole when it ends"
        )
    return address


def _dask_timeout(options: argparse.Namespace) -> float | None:
    """``--dask-connect-timeout SECS``, only with ``--dask ADDRESS``."""
    text: str | None = options.dask_connect_timeout
    if text is None:
        return None
    if options.dask is None or options.dask.startswith("local:"):
        raise UsageError("--dask-connect-timeout needs --dask ADDRESS (a scheduler to reach)")
    seconds = parse_duration(text, "--dask-connect-timeout")
    if not seconds > 0:
        raise UsageError(f"--dask-connect-timeout must be more than 0 seconds, not {text!r}")
    return seconds


#: ``-j 0`` ("as many as possible", as GNU parallel says) runs at most this many at once.
AS_MANY_AS_POSSIBLE = 1024


def _max_jobs(text: str | None, jobs: int | None) -> int:
    """``-j``; with 0, as many as there are jobs (when known), at most 1024."""
    if text is None:
        text = "100%"  # GNU parallel's default: one job per usable CPU
    if text.strip() == "0":
        return max(1, min(AS_MANY_AS_POSSIBLE if jobs is None else jobs, AS_MANY_AS_POSSIBLE))
    from loky import cpu_count  # noqa: PLC0415  # loading loky is not free: only on use

    return parse_jobs(text, int(cpu_count()))


def _tagstring(text: str | None) -> Template | None:
    """``--tagstring``, checked as a template."""
    if text is None:
        return None
    try:
        return Template.parse([text], shell=False)
    except TemplateError as error:
        raise UsageError(f"--tagstring: {error}") from None


def _already_done(joblog: str | None, resume: bool, resume_failed: bool) -> set[int]:
    if not joblog or not (resume or resume_failed):
        return set()
    try:
        outcomes = read_outcomes(joblog)
    except OSError as error:
        raise UsageError(f"cannot read job log {joblog}: {error.strerror}") from None
    except MalformedLogError as error:
        raise UsageError(f"cannot resume: {error}") from None
    return {seq for seq, succeeded in outcomes.items() if succeeded or not resume_failed}
