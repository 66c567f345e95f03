"""Argument checks shared by the public entry points.

Every check raises at the call that received the bad value, with a message that names the
argument, so that nothing already queued is disturbed by a caller's mistake.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import Any


def _popen_keywords() -> frozenset[str]:
    """The names of ``Popen.__init__``'s parameters, read from its code object (what
    ``inspect.signature`` reads, without loading ``inspect`` at start-up)."""
    code = subprocess.Popen.__init__.__code__
    return frozenset(code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount])


#: Keywords ``subprocess.Popen`` accepts, apart from ``args`` (the argv itself).
POPEN_KEYWORDS = _popen_keywords() - {"args"}

TermSequence = tuple[tuple[int, float], ...]

#: Characters that mean something to a shell (pipes, redirections, variables, globs...): a
#: command line holding one needs ``shell=True``; split, they would reach the program as is.
_SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?\[~#\n]")
#: A command line longer than this is not quoted back in the advice.
_QUOTED_MAX = 60


def check_max_jobs(value: object) -> int:
    """Return ``value`` as a job limit, or raise TypeError/ValueError naming the problem."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_jobs must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_jobs must be at least 1, got {value}")
    return value


def check_timeout(value: object, name: str = "timeout") -> float | None:
    """Return a non-negative number of seconds, or None for no limit: None, infinity, or
    longer than any thread can wait (``threading.TIMEOUT_MAX``, about 292 years). Otherwise
    raise, naming ``name``."""
    if value is None:  # the usual case, kept short: every submit checks its timeout
        return None
    seconds = _check_seconds(value, name)
    return None if seconds is not None and seconds >= threading.TIMEOUT_MAX else seconds


def _check_seconds(value: object, name: str) -> float | None:
    """``value``, a non-negative int or float (infinity included), or None; else raise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    if not value >= 0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value  # as given: TimeoutExpired.timeout reports it back, as subprocess does


def check_argv(argv: object, *, shell: bool) -> Sequence[Any] | str | bytes:
    """Check a command before it is queued.

    A ``str`` or ``bytes`` command is accepted only with ``shell=True`` (as one shell command
    line); otherwise it is a TypeError, because ``"ls -l"`` would look for a program named
    ``ls -l``: its message says what runs it (``shlex.split`` or ``shell=True``). A
    path-like object alone is a program run without arguments, as in ``subprocess``. A
    tuple is kept as it is (it cannot change while the job waits); any other sequence is
    copied into a list.
    """
    if isinstance(argv, os.PathLike):
        if shell:  # subprocess refuses it too
            raise TypeError(
                "a path-like command cannot be run with shell=True: pass the shell command "
                "line as a str"
            )
        return argv  # type: ignore[return-value]  # Popen takes it as the program
    if isinstance(argv, (str, bytes)):
        if shell:
            if not argv:
                raise ValueError("the shell command is empty")
            return argv
        raise TypeError(
            f"argv must be a list of arguments, not {type(argv).__name__}: {_advice(argv)}"
        )
    if not isinstance(argv, Sequence):
        raise TypeError(f"argv must be a list of arguments, not {type(argv).__name__}")
    if not argv:
        raise ValueError("argv is empty: it needs at least the program to run")
    for position, item in enumerate(argv):
        if not isinstance(item, (str, bytes, os.PathLike)):
            raise TypeError(
                f"argv[{position}] must be str, bytes or a path, not {type(item).__name__}"
            )
    return argv if isinstance(argv, tuple) else list(argv)


def _advice(command: str | bytes) -> str:
    """What to pass instead of the command line ``command``: its words as a list (the
    list itself when it is short) or ``shell=True``, whichever runs what it says."""
    shell = "shell=True to run it as a shell command line"
    text = command if isinstance(command, str) else os.fsdecode(command)
    try:
        words = shlex.split(text)
    except ValueError:  # unbalanced quotes
        return f"pass {shell}, or a list of its arguments"
    if _SHELL_SYNTAX.search(text) or (words and "=" in words[0]):  # VAR=value program
        return f"it has shell syntax: pass {shell}, or a list of its arguments"
    if not words:
        return "pass a list of arguments, the program first"
    if len(text) > _QUOTED_MAX:
        return f"pass shlex.split(command) (its words as a list), or {shell}"
    if isinstance(command, bytes):
        return f"pass {[os.fsencode(word) for word in words]!r}, or {shell}"
    if words == [text]:
        return f"pass {words!r}, or {shell}"
    return f"pass shlex.split({text!r}), which is {words!r}, or {shell}"


def check_popen_kwargs(kwargs: Mapping[str, object]) -> None:
    """Reject keywords that ``subprocess.Popen`` does not know, at the call."""
    unknown = kwargs.keys() - POPEN_KEYWORDS
    if unknown:
        names = ", ".join(sorted(unknown))
        raise TypeError(f"unexpected keyword argument(s) for the command: {names}")


def check_term_sequence(value: object) -> TermSequence:
    """Return a termination sequence of ``(signal, grace seconds)`` steps, or raise."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value:
        raise TypeError("term_sequence must be a non-empty sequence of (signal, seconds) pairs")
    steps: list[tuple[int, float]] = []
    for step in value:
        if not (isinstance(step, Sequence) and len(step) == 2):
            raise TypeError(f"term_sequence step {step!r} is not a (signal, seconds) pair")
        signum, grace = step
        if isinstance(signum, bool) or not isinstance(signum, int):
            raise TypeError(f"term_sequence signal {signum!r} is not a signal number")
        try:
            signal.Signals(signum)
        except ValueError:
            raise ValueError(f"term_sequence signal {signum} is not a valid signal") from None
        seconds = _check_seconds(grace, "term_sequence grace period")  # inf: never go on
        if seconds is None:
            raise TypeError(f"term_sequence step {step!r} needs a grace period in seconds")
        steps.append((int(signum), seconds))
    if steps[-1][0] != signal.SIGKILL:
        steps.append((int(signal.SIGKILL), 0.0))
    return tuple(steps)
