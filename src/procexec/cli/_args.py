"""Parsing the command line: options named as in GNU parallel where one exists."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import NoReturn

from procexec import __version__
from procexec.cli._getopt import OptionError, Options
from procexec.cli._values import Halt, UsageError

__all__ = ["USAGE_ERROR", "Halt", "UsageError", "build_parser", "parse_command_line"]

USAGE_ERROR = 255

DESCRIPTION = """\
Run commands in parallel, at most -j at once.

  procexec [options] < commands.txt                 one shell command per line
  procexec [options] CMD [ARGS...] ::: A B C        run CMD for each argument
  procexec [options] CMD [ARGS...] :::: FILE        arguments from FILE, one per line
  ... | procexec [options] CMD [ARGS...]            arguments from stdin, one per line
  procexec report LOG [LOG...] [-o report.html]    HTML report of a job log (see report -h)

As in GNU parallel, the command words are joined into one command line for your shell
($PARALLEL_SHELL, else the shell procexec runs from, else $SHELL), every argument quoted, so
pipes, redirections, ; and && work; a command without shell syntax is run directly. -q (or
--no-shell) runs the words as they are, without a shell.
Replacement strings: {} {.} {/} {//} {/.} {#} {%}, {N} and {-N}; with none, the arguments
are appended. Several ::: / :::: sources give every combination; :::+ pairs one with the
source before it.
"""


#: GNU parallel options procexec does not have, with the procexec way where there is one.
UNSUPPORTED = {
    **dict.fromkeys(
        ("-S", "--sshlogin", "--slf", "--sshloginfile", "--onall", "--nonall", "--ssh"),
        "to run jobs on other machines, use --dask ADDRESS (a Dask cluster)",
    ),
    **dict.fromkeys(
        ("--transfer", "--transferfile", "--trc", "--return", "--basefile", "--cleanup"),
        "with --dask the workers share files the cluster's own way",
    ),
    "--semaphore": "no semaphore mode; run one procexec over the whole batch",
    "--sem": "no semaphore mode; run one procexec over the whole batch",
    "--nice": "run `nice procexec ...` instead",
    "--env": "jobs inherit procexec's whole environment",
    "--tty": "jobs read /dev/null; use --pipe to feed them input",
    "--files": "use --results DIR",
    "--ctag": "use --tag",
    "--retry-failed": "use --resume-failed",
    "--xargs": "use -m",
    "--filter": "filter the input before procexec (grep, awk) or test in the command",
    **dict.fromkeys(
        (
            "--tmux", "--tmuxpane", "--fifo", "--cat", "--shebang", "--sqlmaster",
            "--sqlworker", "--sqlandworker", "--tmpdir", "--compress", "--csv", "--plus",
            "--rpl", "--shuf", "--group-by", "--sshdelay", "--workdir", "--wd", "-l", "-s",
            "--max-chars", "--fg", "--bg", "--tee", "--pipepart", "--pipe-part", "--shard",
            "--bin", "--regexp", "--skip-first-line", "--remove-rec-sep", "--rrs",
            "--memsuspend", "--latest-line", "--total-jobs", "--interactive", "-p",
            "--block-timeout", "--template", "--embed", "--colour", "--color",
        ),
        "",
    ),
}  # fmt: skip


def unknown_option(option: str) -> str:
    """The one-line message for an option procexec does not know."""
    if option not in UNSUPPORTED:
        return f"unknown option {option} (see procexec --help)"
    hint = UNSUPPORTED[option]
    return f"{option} (a GNU parallel option) is not supported" + (f": {hint}" if hint else "")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)

    def _get_formatter(self) -> argparse.HelpFormatter:
        """The help's layout (the description as written), its width given: argparse makes
        one for every option added (to check its metavar), and would read the terminal's
        width for each through shutil, loading it and the compression modules it imports
        at every start."""
        return argparse.RawDescriptionHelpFormatter(self.prog, width=self._width)

    @cached_property
    def _width(self) -> int:
        """The help's width, read once (shutil's rule: see _terminal_width)."""
        return _terminal_width() - 2


def _terminal_width() -> int:
    """``shutil.get_terminal_size().columns``: ``$COLUMNS``, else standard output's
    terminal's, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def parse_command_line(argv: Sequence[str]) -> argparse.Namespace:
    """The options of ``argv``, as GNU parallel splits them (see procexec.cli._getopt), and
    in ``command`` the words after them; UsageError for a bad option."""
    parser, table = _build()
    try:
        words, command = table.split(argv, unknown_option)
    except OptionError as error:
        raise UsageError(str(error)) from None
    options = parser.parse_args(words)
    options.command = command
    return options


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the options (its errors raise UsageError)."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, Options]:
    parser = _Parser(
        prog="procexec",
        usage="procexec [options] [COMMAND [ARGS...]] [::: VALUES | :::: FILES ...]",
        description=DESCRIPTION,
        add_help=False,
        allow_abbrev=False,
    )
    table = Options(parser)
    add = table.add
    add("-h", "--help", action="help", help="show this help and exit")
    add("--version", action="version", version=f"procexec {__version__}")
    _input_options(add)
    _pipe_options(add)
    _command_options(add)
    _run_options(add)
    _output_options(add)
    _machine_options(add)
    add("--will-cite", "--no-notice", action="store_true", help=argparse.SUPPRESS)
    return parser, table


Add = Callable[..., None]


def _input_options(add: Add) -> None:
    """Where the arguments come from and how they are cut."""
    add("-0", "--null", action="store_true", help="input items are separated by NUL, not newline")
    add(
        "-a",
        "--arg-file",
        action="append",
        metavar="FILE",
        help="an input source, one argument per line (as :::: FILE); may be repeated",
    )
    add("--link", "--xapply", action="store_true", help="pair the input sources, not combine")
    add("-C", "--colsep", metavar="REGEX", help="split each input value into columns {1} {2}...")
    add(
        "-N",
        "--max-replace-args",
        dest="max_args",
        metavar="N",
        help="N arguments per job ({1}..{N}; a word with {} is repeated for each); 0: none",
    )
    add("-n", "--max-args", dest="n_args", metavar="N", help="N arguments per job")
    add(
        "-L",
        "--max-lines",
        dest="max_lines",
        metavar="N",
        help="N input lines per job, a line ending in a blank continued by the next",
    )
    add("-d", "--delimiter", metavar="DELIM", help="input items end with DELIM (\\n, \\0...)")
    add("-E", "--eof", dest="eof", metavar="STR", help="input ends at a value equal to STR")
    add("--trim", choices=["n", "l", "r", "lr", "rl"], help="trim blanks from input values")
    add("-r", "--no-run-if-empty", action="store_true", help="skip blank input values")
    add("--arg-sep", default=":::", metavar="SEP", help="use SEP instead of :::")
    add("--arg-file-sep", default="::::", metavar="SEP", help="use SEP instead of ::::")
    add(
        "--header",
        metavar="REGEX",
        help="what REGEX matches at the start of each source is its header (: the first "
        "line), naming its columns ({name}); with --pipe, given to every job first",
    )
    add(
        "-X",
        dest="context",
        action="store_true",
        help="as many arguments as fit; a word with {} is repeated for each",
    )
    add("-m", dest="multi", action="store_true", help="as many arguments as fit per job")


def _pipe_options(add: Add) -> None:
    """``--pipe``: standard input cut into blocks."""
    add("--pipe", "--spreadstdin", action="store_true", help="stdin in blocks, one per job")
    add("--block", "--block-size", default="1M", metavar="SIZE", help="--pipe block size")
    add("--recstart", metavar="STR", help="--pipe: a record starts with STR")
    add("--recend", metavar="STR", help="--pipe: a record ends with STR (default: a newline)")
    add(
        "--round-robin",
        "--roundrobin",
        action="store_true",
        help="--pipe: -j jobs for the whole input, each block to one ready for it",
    )


def _command_options(add: Add) -> None:
    """How the command line is made and run."""
    add("-q", "--quote", action="store_true", help="run the command words as they are, no shell")
    add("--no-shell", dest="quote", action="store_true", help="the same as -q")
    add("--shell", action="store_true", help="always start a shell, even for a plain command")
    add("-I", "--replace", metavar="STR", help="use STR instead of {}")
    add(
        "--dry-run",
        "--dryrun",
        action="store_true",
        help="print the commands instead of running them",
    )


def _run_options(add: Add) -> None:
    """How many jobs run, how long, and when the run stops."""
    add(
        "-j",
        "--jobs",
        "-P",
        "--max-procs",
        metavar="N",
        help="jobs at once: N, N%% of CPUs, +N, -N, 0 for as many as possible, or a FILE "
        "holding one of those, read again as jobs end (default: CPUs)",
    )
    add("--retries", type=int, default=1, metavar="N", help="try a failing job up to N times")
    add(
        "--timeout",
        metavar="SECS",
        help="stop a job running longer than SECS (s/m/h/d suffixes), or N%% of the median runtime",
    )
    add("--halt", default="never", metavar="WHEN", help="soon|now,fail|success|done=N[%%]")
    add("--term-seq", "--termseq", metavar="SEQ", help="how to stop a job, e.g. TERM,2000,KILL,0")
    add(
        "--joblog",
        metavar="FILE",
        help="a GNU parallel job log row per finished job (replaced unless --resume or "
        "+FILE; - is stdout)",
    )
    add("--resume", action="store_true", help="skip jobs whose sequence number is in --joblog")
    add("--resume-failed", action="store_true", help="like --resume, but rerun failed jobs")


def _output_options(add: Add) -> None:
    """Where the jobs' output and the run's records go."""
    add("-k", "--keep-order", action="store_true", help="print output in input order")
    add("--tag", action="store_true", help="prefix output lines with the job's arguments")
    add("--tagstring", metavar="STR", help="prefix output lines with STR ({} {#} ... replaced)")
    add(
        "-v", action="store_true", dest="verbose", help="print each job's command before its output"
    )
    add(
        "-t",
        "--verbose",
        action="store_true",
        dest="trace",
        help="print each job's command on stderr as it starts",
    )
    add("-u", "--ungroup", action="store_true", help="print output as it comes (lines may mix)")
    add("--line-buffer", "--lb", action="store_true", help="print whole lines as they come")
    add("--group", action="store_true", help="print each job's output whole (the default)")
    add("--results", "--res", metavar="DIR", help="save each job's output in DIR (GNU layout)")
    add("--bar", action="store_true", help="progress bar with ETA on stderr")
    add("--eta", action="store_true", help="print the estimated time left on stderr")
    add("--progress", action="store_true", help="print progress on stderr")
    add("--joblog-json", metavar="FILE", help="a JSON object per finished job (slot, pid, CPU...)")
    add("--report", metavar="FILE", help="write an HTML report of the run to FILE at its end")
    add(
        "--summary",
        action=argparse.BooleanOptionalAction,
        help="print a few lines about the run on stderr at its end (default: off)",
    )


def _machine_options(add: Add) -> None:
    """When the machine lets a job start, where jobs run, what happens if procexec dies."""
    add("--memfree", metavar="SIZE", help="start a job only while SIZE of memory is free (e.g. 2G)")
    add("--load", metavar="N", help="start a job only while fewer than N processes run (N or N%%)")
    add("--delay", metavar="SECS", help="at least SECS between two starts (s, m, h, d suffixes)")
    add(
        "--pressure",
        metavar="RES=PCT,...",
        help="start a job only while Linux PSI 'some avg10' is under PCT, e.g. memory=10,io=20",
    )
    add(
        "--dask",
        metavar="ADDRESS",
        help="run the jobs on a Dask cluster: a scheduler address (tcp://host:8786), or "
        "local:N for N local workers (needs procexec[dask])",
    )
    add(
        "--dask-connect-timeout",
        metavar="SECS",
        help="with --dask ADDRESS, how long to wait for the scheduler to answer (default 10s; "
        "a refused connection fails at once)",
    )
    add(
        "--no-guardian",
        dest="guardian",
        action="store_false",
        help="let jobs outlive procexec if it is killed with SIGKILL (default: they are stopped)",
    )
