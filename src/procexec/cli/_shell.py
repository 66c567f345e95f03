"""Which shell runs a job's command line, how values are quoted for it, and when a command
line needs no shell at all (GNU parallel's rules, see docs/cli.md "The shell rule").

The shell: ``$PARALLEL_SHELL``; else the shell procexec was started from (its parent
process, when that is a known POSIX shell); else ``$SHELL`` when it is one; else /bin/sh.
A value is quoted for where it lands in the line, so that it arrives as one literal word:
where no quotes are open, as GNU parallel quotes it (unchanged when made only of letters,
digits and ``_./-``, else in single quotes); inside double quotes, ``\\ " $ ` `` get a
backslash; inside single quotes, each ``'`` closes, is written ``\\'`` and reopens; inside
bash's ``$'...'``, ``\\`` and ``'`` get a backslash. A command line whose template holds
no shell syntax, whose program is found on ``$PATH`` and is not an exported shell function,
is run directly (the same outcome, without a shell start per job).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

#: Shells that take ``-c LINE`` and POSIX quoting; another $SHELL (fish, csh) gives /bin/sh.
POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox", "yash"})

_SAFE = re.compile(r"[A-Za-z0-9_./-]+")
#: Characters that make a template shell syntax: operators, quotes, expansions, globs,
#: comments, braces and newlines (a command separator).
_SYNTAX = re.compile(r"[|&;<>()$`\\\"'*?\[\]#~{}!\n]")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
#: What a shell splits words at.
_BLANKS = re.compile(r"[ \t]+")


def quote(value: str) -> str:
    """``value`` as one word for a POSIX shell, quoted as GNU parallel quotes it."""
    if _SAFE.fullmatch(value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def _quote_double(value: str) -> str:
    """``value`` for inside double quotes: what the shell would expand escaped."""
    return re.sub(_DOUBLE_SPECIAL, r"\\\g<0>", value)


#: Compiled when first used (by re's cache): only a value inside double quotes needs it.
_DOUBLE_SPECIAL = r'[\\"$`]'


def _quote_single(value: str) -> str:
    """``value`` for inside single quotes."""
    return value.replace("'", "'\\''")


def _quote_ansi(value: str) -> str:
    """``value`` for inside bash's ``$'...'``."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


#: How a value is quoted in each context of a shell line (see quoters).
_QUOTERS: dict[str, Callable[[str], str]] = {
    "bare": quote,
    "double": _quote_double,
    "single": _quote_single,
    "ansi": _quote_ansi,
}


def quoters(line: str) -> Callable[[int], Callable[[str], str]]:
    """For a template's shell ``line``: the quoting function for a value put in at a
    given offset, chosen by whether quotes are open there (double, single, ``$'``; inside
    ``$(...)`` or backquotes, none are, even within double quotes)."""
    contexts = _contexts(line)
    return lambda offset: _QUOTERS[contexts[offset]]


def _contexts(line: str) -> list[str]:
    """The quoting context at each offset of ``line`` (one more for its end)."""
    stack = ["bare"]
    found: list[str] = []
    index = 0
    while index < len(line):
        top = stack[-1]
        found.append(top if top in _QUOTERS else "bare")
        step = _step(line, index, stack)
        found.extend([found[-1]] * (step - 1))
        index += step
    found.append(stack[-1] if stack[-1] in _QUOTERS else "bare")
    return found


def _step(line: str, index: int, stack: list[str]) -> int:
    """Read the token at ``index`` of ``line``, updating the context ``stack``; its length."""
    char, top, two = line[index], stack[-1], line[index : index + 2]
    if top == "single":
        if char == "'":
            stack.pop()
        return 1
    if char == "\\" and top != "single":
        return 2
    if top in {"ansi", "double"}:
        closing = "'" if top == "ansi" else '"'
        if char == closing:
            stack.pop()
        elif top == "double" and (two == "$(" or char == "`"):
            stack.append("command" if char == "$" else "backquote")
            return len(two) if char == "$" else 1
        return 1
    return _step_bare(char, two, stack)


def _step_bare(char: str, two: str, stack: list[str]) -> int:
    """A token where no quotes are open (also inside ``$(...)``, ``(...)``, backquotes)."""
    top = stack[-1]
    if two in ("$'", "$("):
        stack.append("ansi" if two == "$'" else "command")
        return 2
    if char in "'\"":
        stack.append("single" if char == "'" else "double")
    elif char == "(" and top in ("command", "paren"):
        stack.append("paren")
    elif char == ")" and top in ("command", "paren"):
        stack.pop()
    elif char == "`":
        if top == "backquote":
            stack.pop()
        else:
            stack.append("backquote")
    return 1


def exported_function(name: str) -> bool:
    """Whether ``name`` is a shell function exported by bash (``export -f``)."""
    return f"BASH_FUNC_{name}%%" in os.environ


def split_words(text: str) -> list[str]:
    """The words a shell makes of ``text`` that holds no shell syntax."""
    return [word for word in _BLANKS.split(text) if word]


def user_shell() -> str:
    """The path of the shell that runs command lines (see the module's rule)."""
    chosen = os.environ.get("PARALLEL_SHELL")
    if chosen:
        return chosen
    parent = _parent_shell()
    if parent is not None:
        return parent
    login = os.environ.get("SHELL", "")
    if os.path.basename(login) in POSIX_SHELLS and os.access(login, os.X_OK):
        return login
    return "/bin/sh"


def _parent_shell() -> str | None:
    try:
        path = os.readlink(f"/proc/{os.getppid()}/exe")
    except OSError:
        return None
    return path if os.path.basename(path) in POSIX_SHELLS else None


def needs_shell(template_text: str, program: str | None) -> bool:
    """Whether a template (its words joined, replacement strings taken out) needs a shell:
    it holds shell syntax, starts with an assignment, or its ``program`` (None: unknown
    until expanded) is not a file on $PATH or is an exported shell function."""
    if _SYNTAX.search(template_text) or _ASSIGNMENT.match(template_text.lstrip(" \t")):
        return True
    if program is None or exported_function(program):
        return True
    return not on_path(program)


def on_path(program: str) -> bool:
    """Whether ``program`` is an executable file, looked for on ``$PATH`` when it names no
    directory: ``shutil.which(program) is not None`` on POSIX, without loading shutil (and
    the compression modules it loads) at every start."""
    if os.path.dirname(program):
        return _executable(program)
    path = os.environ.get("PATH")
    if path is None:  # unset, as opposed to empty (which finds nothing): the system's
        try:
            path = os.confstr("CS_PATH")
        except (AttributeError, ValueError):
            path = os.defpath
    seen: set[str] = set()
    for directory in path.split(os.pathsep) if path else ():
        if directory not in seen:
            seen.add(directory)
            if _executable(os.path.join(directory, program)):
                return True
    return False


def _executable(path: str) -> bool:
    return os.access(path, os.X_OK) and not os.path.isdir(path)


def joined(words: Sequence[str]) -> str:
    """The command words as a shell reads them: joined with one space (GNU parallel joins
    them unquoted, so ``'echo {} | wc'`` is a pipeline)."""
    return " ".join(words)


#: Linux's limit on one argument (MAX_ARG_STRLEN, 32 pages), its terminating NUL included.
MAX_ARG_STRLEN = 131072


def line_limit() -> int:
    """The longest command line, in bytes, that can run here: one argument of at most
    MAX_ARG_STRLEN, and the arguments and the environment within ARG_MAX."""
    arg_max = os.sysconf("SC_ARG_MAX")
    environment = sum(len(key) + len(value) + 2 for key, value in os.environb.items())
    return min(MAX_ARG_STRLEN - 1, arg_max - environment - 4096)


def line_length(command: Sequence[str] | str) -> int:
    """The bytes of a command line (a shell line, or an argv with a NUL after each word)."""
    if isinstance(command, str):
        return len(command.encode("utf-8", "surrogateescape"))
    return sum(len(word.encode("utf-8", "surrogateescape")) + 1 for word in command)


def length_bound(command: Sequence[str] | str) -> int:
    """An upper bound on :func:`line_length`, without encoding (UTF-8 takes at most four
    bytes a character): when it is within the limit, so is the line."""
    if isinstance(command, str):
        return len(command) * 4
    return sum(len(word) * 4 + 1 for word in command)
