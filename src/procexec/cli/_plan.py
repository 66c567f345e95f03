"""What ``procexec`` is asked to do: the options parsed into a Plan and the job list."""

from __future__ import annotations

import argparse
import importlib.util
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from procexec._admission import make_admission
from procexec._executor import DEFAULT_TERM_SEQUENCE, default_max_jobs
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
)
from procexec.cli._joblog import MalformedLogError, read_outcomes
from procexec.cli._template import (
    InputError,
    Template,
    TemplateError,
    read_lines,
    split_sources,
)


@dataclass(frozen=True)
class Job:
    """One job of the list: its sequence number ({#}) and its arguments."""

    seq: int
    index: int  # position among the jobs that will run (for --keep-order)
    args: tuple[str, ...]


@dataclass
class Plan:
    """Everything main() decided before running anything."""

    template: Template | None  # None: each argument is a whole shell command line
    jobs: list[Job]
    max_jobs: int
    retries: int
    timeout: float | None
    halt: Halt | None
    term_sequence: Sequence[tuple[int, float]]
    joblog: str | None
    joblog_json: str | None
    resume: bool  # --resume or --resume-failed: the logs are appended to
    report: str | None
    summary: bool
    keep_order: bool
    tag: bool
    tagstring: Template | None  # --tagstring: the tag, with replacement strings
    bar: bool
    dry_run: bool
    guardian: bool  # stop the jobs if procexec is killed (see procexec._guardian)
    admission: dict[str, Any]  # memfree, load, pressure, delay for ProcessExecutor
    dask: str | None  # a scheduler address, or "local:N"

    def tag_of(self, job: Job) -> str:
        """The prefix of the job's output lines: ``--tagstring`` expanded, or its arguments."""
        if self.tagstring is None:
            return " ".join(job.args)
        if not self.tagstring.has_replacements:  # the text alone: no arguments appended
            return self.tagstring.tokens[0]
        return " ".join(self.tagstring.expand(job.args, job.seq, 0))  # values unquoted

    def command(self, job: Job, slot: int) -> list[str] | str:
        """The argv, or the shell command line, for ``job`` in ``slot``."""
        if self.template is None:
            return job.args[0]
        return self.template.expand(job.args, job.seq, slot)


def make_plan(argv: list[str]) -> Plan:
    """Parse ``argv`` into a Plan; raise UsageError with a one-line message."""
    options = build_parser().parse_args(argv)
    if options.retries < 1:
        raise UsageError(f"--retries must be at least 1, got {options.retries}")
    if options.timeout is not None and not options.timeout > 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {options.timeout}")
    if (options.resume or options.resume_failed) and not options.joblog:
        raise UsageError("--resume and --resume-failed need --joblog FILE")
    words = options.command
    if words[:1] == ["--"]:  # the end of the options: what follows is the command
        words = words[1:]
    if options.arg_file:  # -a FILE: an input source each, as :::: FILE
        words = [*words, "::::", *options.arg_file]
    template, all_jobs = _jobs(words, options.shell, options.null)
    skip = _already_done(options.joblog, options.resume, options.resume_failed)
    kept = [(seq, args) for seq, args in all_jobs if seq not in skip]
    return Plan(
        template=template,
        jobs=[Job(seq, index, args) for index, (seq, args) in enumerate(kept)],
        max_jobs=_max_jobs(options.jobs, len(kept)),
        retries=options.retries,
        timeout=options.timeout,
        halt=parse_halt(options.halt),
        term_sequence=parse_term_seq(options.term_seq)
        if options.term_seq
        else DEFAULT_TERM_SEQUENCE,
        joblog=options.joblog,
        joblog_json=options.joblog_json,
        resume=options.resume or options.resume_failed,
        report=options.report,
        summary=options.bar if options.summary is None else options.summary,
        keep_order=options.keep_order,
        tag=options.tag or options.tagstring is not None,
        tagstring=_tagstring(options.tagstring, all_jobs),
        bar=options.bar,
        dry_run=options.dry_run,
        guardian=options.guardian,
        admission=_admission(options),
        dask=_dask(options),
    )


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
    return address


#: ``-j 0`` ("as many as possible", as GNU parallel says) runs at most this many at once.
AS_MANY_AS_POSSIBLE = 1024


def _max_jobs(text: str | None, jobs: int) -> int:
    if text is None:
        return default_max_jobs()
    if text.strip() == "0":
        return max(1, min(jobs, AS_MANY_AS_POSSIBLE))
    from loky import cpu_count  # noqa: PLC0415  # loading loky is not free: only on use

    return parse_jobs(text, int(cpu_count()))


def _tagstring(text: str | None, jobs: list[tuple[int, tuple[str, ...]]]) -> Template | None:
    """``--tagstring``, checked as a template of as many sources as the jobs have."""
    if text is None:
        return None
    sources = len(jobs[0][1]) if jobs else 1
    try:
        return Template.parse([text], shell=False, sources=sources)
    except TemplateError as error:
        raise UsageError(f"--tagstring: {error}") from None


def _jobs(
    words: list[str], shell: bool, null: bool = False
) -> tuple[Template | None, list[tuple[int, tuple[str, ...]]]]:
    try:
        template_words, sources = split_sources(words, null=null)
        if sources is None:
            sources = [read_lines("-", null=null)]
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    except InputError as error:
        raise UsageError(str(error)) from None
    if not template_words:
        if len(sources) != 1:
            raise UsageError("give a command before ::: (or one command per line on stdin)")
        return None, [(seq, (line,)) for seq, line in enumerate(sources[0], 1) if line.strip()]
    try:
        template = Template.parse(template_words, shell=shell, sources=len(sources))
    except TemplateError as error:
        raise UsageError(str(error)) from None
    return template, list(enumerate(itertools.product(*sources), 1))


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
