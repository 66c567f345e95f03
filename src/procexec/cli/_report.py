"""``procexec report``: the HTML report of a finished (or still running) batch's logs."""

from __future__ import annotations

import argparse
import sys

from procexec.cli._args import USAGE_ERROR, UsageError, _Parser
from procexec.report import ReportError, analyse, read_records, summary_lines, write_html

DESCRIPTION = """\
Write a self-contained HTML report (timeline, concurrency, runtimes, failures) of a batch
from its logs: a GNU parallel job log (--joblog, written by procexec or GNU parallel), a
procexec --joblog-json file, or both (their rows are joined by Seq). From a job log alone
the slots are inferred from the start and end times.

  procexec --joblog run.log --joblog-json run.jsonl CMD ::: ...
  procexec report run.log run.jsonl -o report.html
"""


def build_report_parser() -> argparse.ArgumentParser:
    """The ``procexec report`` argument parser (its errors raise UsageError)."""
    parser = _Parser(
        prog="procexec report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("logs", nargs="+", metavar="LOG", help="job logs and/or --joblog-json files")
    add("-o", "--output", metavar="FILE", help="the HTML file (default: the first LOG + .html)")
    add("-j", "--jobs", type=int, metavar="N", help="the batch's job slots (default: inferred)")
    add("--title", default="procexec run report", help="the page's title")
    add("--summary", action="store_true", help="also print the end-of-run summary")
    return parser


def report_command(argv: list[str]) -> int:
    """Run ``procexec report ARGV``; return the exit status (255 for bad input)."""
    try:
        options = build_report_parser().parse_args(argv)
        if options.jobs is not None and options.jobs < 1:
            raise UsageError(f"-j/--jobs must be at least 1, got {options.jobs}")
        records = read_records(*options.logs)
        output = options.output or options.logs[0] + ".html"
        settings = {"logs": " ".join(options.logs)}
        batch = write_html(
            records, output, max_jobs=options.jobs, title=options.title, settings=settings
        )
    except (UsageError, ReportError) as error:
        print(f"procexec report: {error}", file=sys.stderr)
        return USAGE_ERROR
    except OSError as error:
        print(f"procexec report: cannot write {error.filename}: {error.strerror}", file=sys.stderr)
        return USAGE_ERROR
    if options.summary:
        print("\n".join(summary_lines(analyse(records, options.jobs))), file=sys.stderr)
    print(f"procexec report: {len(batch.records)} jobs -> {output}", file=sys.stderr)
    return 0
