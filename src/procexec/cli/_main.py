"""``main()``: the command's entry point, its exit statuses and its signal handling."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from procexec._core import EXIT_SIGNALS, SignalWatch, exit_status
from procexec.cli._args import USAGE_ERROR, UsageError
from procexec.cli._inputs import InputError
from procexec.cli._outputs import Outputs
from procexec.cli._plan import CommandTooLongError, Plan, make_plan
from procexec.cli._runner import DaskUnreachableError, Runner
from procexec.cli._sink import OutputError, Sink

INTERRUPTED = 130


class _Terminated(BaseException):
    """Raised in the main thread when procexec itself receives SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.status = exit_status(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["report"]:
        from procexec.cli._report import report_command  # noqa: PLC0415  # the report's own

        return report_command(args[1:])
    try:
        plan = make_plan(args)
        outputs = None if plan.dry_run else Outputs(plan, args)
    except UsageError as error:
        print(f"procexec: {error}", file=sys.stderr)
        return USAGE_ERROR
    if plan.reads_stdin and sys.stdin is not None and sys.stdin.isatty():
        print(TERMINAL_WARNING, file=sys.stderr)
    try:
        if outputs is None:
            return _dry_run(plan)
        runner = Runner(plan, outputs)
        with _signals_interrupt(runner.wake):
            return runner.run()
    except BrokenPipeError:  # stdout closed (| head): stop quietly, as GNU parallel does
        _quiet_stdout()
        return CLOSED_STDOUT
    except (DaskUnreachableError, UsageError) as error:
        print(f"procexec: {error}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return INTERRUPTED
    except _Terminated as terminated:
        return terminated.status
    finally:
        if outputs is not None:
            outputs.finish()


TERMINAL_WARNING = (
    "procexec: Warning: Input is read from the terminal. Give the arguments after :::, "
    "a file with :::: or -a, or pipe them in.\nprocexec: Warning: Press CTRL-D to end the "
    "input."
)


def _dry_run(plan: Plan) -> int:
    """``--dry-run``: print each job's command line, as input arrives (whole: see
    procexec.cli._sink)."""
    out = Sink("standard output", sys.stdout)
    try:
        for job in plan.feed:
            plan.command(job, 1)  # refuses a command line too long, as a run would
            tag = f"{plan.tag_of(job.in_slot(1))}\t" if plan.tag else ""
            out.text(tag + plan.text(job, 1) + "\n")
    except (InputError, CommandTooLongError) as error:
        raise UsageError(str(error)) from None
    except OutputError as error:
        print(f"procexec: {error}", file=sys.stderr)
        return USAGE_ERROR  # 255, as for a run whose output cannot be written
    except BrokenPipeError:
        raise  # stdout closed: main() exits quietly, as for a run
    except OSError as error:
        raise UsageError(f"cannot read {error.filename}: {error.strerror}") from None
    return 0


#: The status of a program that SIGPIPE ended (128 + 13), what a shell reports for
#: GNU parallel when its output is closed.
CLOSED_STDOUT = 141


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


@contextmanager
def _signals_interrupt(wake: Callable[[], None]) -> Iterator[None]:
    """In the main thread, turn SIGTERM and SIGHUP into an exception so jobs are stopped
    and reaped (SIGHUP only when not ignored, as under ``nohup``), and call ``wake`` from a
    watch thread on SIGINT, SIGTERM or SIGHUP: the handler then runs even if the signal
    landed just before the main thread blocked (see procexec._core._signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Terminated(signum)

    def react(signum: int) -> None:
        if signum == signal.SIGINT or signal.getsignal(signum) is handler:
            wake()

    taken = [s for s in EXIT_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {signum: signal.signal(signum, handler) for signum in taken}
    watch = SignalWatch.start(react)
    try:
        yield
    finally:
        if watch is not None:
            watch.stop()
        for signum, action in previous.items():
            signal.signal(signum, action)
