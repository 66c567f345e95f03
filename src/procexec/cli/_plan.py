"""What ``procexec`` is asked to do: the options parsed into a Plan and the job list."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from procexec import DEFAULT_TERM_SEQUENCE
from procexec.cli._args import parse_command_line
from procexec.cli._feed import Feed, Job
from procexec.cli._inputs import InputError, Source, split_sources
from procexec.cli._joblist import Counts, column_names_of, counts_of, jobs_of
from procexec.cli._joblog import MalformedLogError, read_outcomes
from procexec.cli._machine import JobsFile, admission, dask_address, dask_timeout, max_jobs
from procexec.cli._shell import length_bound, line_length, line_limit, user_shell
from procexec.cli._template import Template, TemplateError
from procexec.cli._values import (
    Halt,
    UsageError,
    parse_halt,
    parse_term_seq,
    parse_timeout,
    unquote_printf,
)

if TYPE_CHECKING:  # each loaded only when its option is given
    from procexec.cli._pipe import PipeSpec
    from procexec.cli._results import Results

__all__ = ["CommandTooLongError", "Job", "Plan", "make_plan"]


class CommandTooLongError(Exception):
    """A job's command line is longer than the system allows (GNU parallel's message)."""


class Plan:
    """Everything main() decided before running anything."""

    __slots__ = (
        "admission",
        "bar",
        "dask",
        "dask_timeout",
        "dry_run",
        "eta",
        "feed",
        "guardian",
        "halt",
        "joblog",
        "joblog_header",
        "joblog_json",
        "jobs_file",
        "keep_order",
        "line_limit",
        "max_jobs",
        "output",
        "pipe",
        "progress",
        "reads_stdin",
        "report",
        "results",
        "resume",
        "retries",
        "shell_path",
        "summary",
        "tag",
        "tagstring",
        "template",
        "term_sequence",
        "timeout",
        "timeout_percent",
        "total",
        "trace",
        "verbose",
    )

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
    verbose: bool  # -v: each command on stdout, before its output
    trace: bool  # -t / --verbose: each command on stderr, as it starts
    output: str  # "group" (whole, the default), "line" (--line-buffer), "ungroup" (-u)
    results: Results | None  # --results DIR, TEMPLATE or FILE.json/.csv/.tsv
    pipe: PipeSpec | None  # --pipe: blocks of stdin to each job's stdin
    dry_run: bool
    guardian: bool  # stop the jobs if procexec is killed (docs/resources.md, "The guardian")
    admission: dict[str, Any]  # memfree, load, pressure, delay for ProcessExecutor
    dask: str | None  # a scheduler address, or "local:N"
    reads_stdin: bool  # an input source is standard input
    shell_path: str  # the shell that runs command lines
    line_limit: int
    jobs_file: JobsFile | None  # -j FILE: the job count, read again as jobs end
    dask_timeout: float | None  # --dask-connect-timeout; None: DaskExecutor's default

    def __init__(
        self,
        *,
        template: Template | None,
        feed: Feed,
        total: int | None,
        max_jobs: int,
        retries: int,
        timeout: float | None,
        timeout_percent: float | None,
        halt: Halt | None,
        term_sequence: Sequence[tuple[int, float]],
        joblog: str | None,
        joblog_json: str | None,
        resume: bool,
        joblog_header: bool,
        report: str | None,
        summary: bool,
        keep_order: bool,
        tag: bool,
        tagstring: Template | None,
        bar: bool,
        eta: bool,
        progress: bool,
        verbose: bool,
        trace: bool,
        output: str,
        results: Results | None,
        pipe: PipeSpec | None,
        dry_run: bool,
        guardian: bool,
        admission: dict[str, Any],
        dask: str | None,
        reads_stdin: bool = False,
        shell_path: str = "/bin/sh",
        line_limit: int = 131071,
        jobs_file: JobsFile | None = None,
        dask_timeout: float | None = None,
    ) -> None:
        self.template = template
        self.feed = feed
        self.total = total
        self.max_jobs = max_jobs
        self.retries = retries
        self.timeout = timeout
        self.timeout_percent = timeout_percent
        self.halt = halt
        self.term_sequence = term_sequence
        self.joblog = joblog
        self.joblog_json = joblog_json
        self.resume = resume
        self.joblog_header = joblog_header
        self.report = report
        self.summary = summary
        self.keep_order = keep_order
        self.tag = tag
        self.tagstring = tagstring
        self.bar = bar
        self.eta = eta
        self.progress = progress
        self.verbose = verbose
        self.trace = trace
        self.output = output
        self.results = results
        self.pipe = pipe
        self.dry_run = dry_run
        self.guardian = guardian
        self.admission = admission
        self.dask = dask
        self.reads_stdin = reads_stdin
        self.shell_path = shell_path
        self.line_limit = line_limit
        self.jobs_file = jobs_file
        self.dask_timeout = dask_timeout

    def tag_of(self, job: Job) -> str:
        """The prefix of the job's output lines: ``--tagstring`` expanded, or its arguments."""
        if self.tagstring is None:
            return " ".join(job.args)
        if not self.tagstring.has_replacements:  # the text alone: no arguments appended
            return self.tagstring.tokens[0]
        return " ".join(self.tagstring.words(job.args, job.seq, job.slot))  # unquoted

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
    options = parse_command_line(argv)
    _check(options)
    counts = counts_of(options)
    words = _command_words(options)
    pipe = _pipe(options, counts)
    template, sources, names = _template(words, options, counts, pipe is not None)
    timeout, timeout_percent = parse_timeout(options.timeout) if options.timeout else (None, None)
    halt = parse_halt(options.halt)
    appended = bool(options.joblog and options.joblog.startswith("+") and options.joblog != "+")
    if appended:  # --joblog +FILE: added to, as with --resume (GNU parallel's form)
        options.joblog = options.joblog[1:]
    skip = _already_done(options.joblog, options.resume, options.resume_failed)
    jobs_file = JobsFile.named(options.jobs, None)
    slots = jobs_file.current if jobs_file else max_jobs(options.jobs, None)
    if pipe is not None:
        feed, total = pipe.feed(slots), None
    else:
        feed, total, known = jobs_of(sources, options, counts, template, skip=skip, slots=slots)
        if known is not None and jobs_file is None:  # -j 0: as many as there are jobs
            slots = max_jobs(options.jobs, known)
    return Plan(
        template=template,
        feed=feed,
        total=total,
        max_jobs=slots,
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
        tagstring=_tagstring(options.tagstring, names, counts.context),
        bar=options.bar,
        eta=options.eta,
        progress=options.progress,
        verbose=options.verbose,
        trace=options.trace,
        output="ungroup" if options.ungroup else "line" if options.line_buffer else "group",
        results=_results(options.results, names),
        pipe=pipe,
        dry_run=options.dry_run,
        guardian=options.guardian,
        admission=admission(options),
        dask=dask_address(options),
        dask_timeout=dask_timeout(options),
        reads_stdin=pipe is not None or any(source.path == "-" for source in sources),
        shell_path=user_shell(),
        line_limit=line_limit(),
        jobs_file=jobs_file,
    )


def _pipe(options: argparse.Namespace, counts: Counts) -> PipeSpec | None:
    """``--pipe``, checked."""
    if not options.pipe:
        return None
    from procexec.cli._pipe import parse_pipe  # noqa: PLC0415  # only with --pipe

    return parse_pipe(options, counts.records, counts.lines)


def _results(text: str | None, names: Sequence[str | None]) -> Results | None:
    """``--results``, the ``--header`` names in it."""
    if text is None:
        return None
    from procexec.cli._results import Results  # noqa: PLC0415  # only with --results

    results = Results(rename(text, names), tuple(names))
    try:
        results.template  # noqa: B018  # checked now, not at the first job's end
    except TemplateError as error:
        raise UsageError(f"--results: {error}") from None
    return results


def rename(text: str, names: Sequence[str | None]) -> str:
    """``text`` with ``--header`` names turned into column numbers (see _header)."""
    if not any(names):
        return text
    from procexec.cli._header import rename as renamed  # noqa: PLC0415  # only with --header

    return renamed(text, names)


def _command_words(options: argparse.Namespace) -> list[str]:
    """The command and its sources, ``-a`` files and ``-I`` taken in."""
    words: list[str] = options.command
    if options.arg_file:  # -a FILE: an input source each, as :::: FILE, before the others
        marks = {options.arg_sep, options.arg_file_sep}
        marks |= {mark + "+" for mark in marks}
        first = next((i for i, w in enumerate(words) if w in marks), len(words))
        words = [*words[:first], options.arg_file_sep, *options.arg_file, *words[first:]]
    if options.replace:  # -I STR: STR is {}
        words = [word.replace(options.replace, "{}") for word in words]
    return words


_PERL = re.compile(r"\{=.*?=\}", re.DOTALL)


def _check(options: argparse.Namespace) -> None:
    """The checks of single options that need no input read."""
    if options.retries < 1:
        raise UsageError(f"--retries must be at least 1, got {options.retries}")
    if (options.resume or options.resume_failed) and not options.joblog:
        raise UsageError("--resume and --resume-failed need --joblog FILE")
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
    words: list[str], options: argparse.Namespace, counts: Counts, pipe: bool
) -> tuple[Template | None, list[Source], list[str | None]]:
    """The command template, the input sources (stdin when none is given) and the names
    of their columns (``--header``)."""
    template_words, sources = _sources(words, options, pipe)
    if not template_words:
        if pipe or len(sources) != 1:
            raise UsageError("give a command before ::: (or one command per line on stdin)")
        return None, sources, []
    names = column_names_of(sources, options) if options.header is not None and not pipe else []
    template_words = [rename(word, names) for word in template_words]
    if _PERL.search(" ".join(template_words)):
        raise UsageError(
            "{= perl expression =} replacement strings are not supported: compute the "
            "value in the shell command instead (e.g. $(echo {} | sed s/a/b/))"
        )
    try:
        template = Template.parse(
            template_words,
            shell=not options.quote,
            context=counts.context,
            force_shell=options.shell,
        )
    except TemplateError as error:
        raise UsageError(str(error)) from None
    return template, sources, names


def _sources(
    words: list[str], options: argparse.Namespace, pipe: bool
) -> tuple[list[str], list[Source]]:
    """The template's words and the input sources, each file checked readable now."""
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
    return template_words, sources


def _tagstring(text: str | None, names: Sequence[str | None], context: bool) -> Template | None:
    """``--tagstring``, its ``\\t`` and the like understood, checked as a template."""
    if text is None:
        return None
    try:
        return Template.parse([unquote_printf(rename(text, names))], shell=False, context=context)
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
