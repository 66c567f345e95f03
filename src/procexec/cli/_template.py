"""Command templates and input sources for the command line, GNU parallel style.

Replacement strings: ``{}`` the argument, ``{.}`` without extension, ``{/}`` basename,
``{//}`` dirname, ``{/.}`` basename without extension, ``{#}`` job number, ``{%}`` slot
number, and ``{N}`` / ``{N.}`` / ``{N/}`` / ``{N//}`` / ``{N/.}`` for the N-th input
source. A brace group made only of digits and ``./#%`` that is none of these is an error;
other braces (``awk '{print $1}'``) are left alone. With no replacement string at all, the
arguments are appended to the command.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_CANDIDATE = re.compile(r"\{([0-9./#%]*)\}")
_KNOWN = re.compile(r"(?P<source>[1-9][0-9]*)?(?P<op>|\.|/|//|/\.)|(?P<special>#|%)")


class TemplateError(ValueError):
    """A template uses a replacement string procexec does not know."""


def _strip_ext(path: str) -> str:
    head, tail = os.path.split(path)
    stem = tail.rsplit(".", 1)[0] if "." in tail.lstrip(".") else tail
    return os.path.join(head, stem) if head else stem


_OPS: dict[str, Callable[[str], str]] = {
    "": lambda arg: arg,
    ".": _strip_ext,
    "/": os.path.basename,
    "//": lambda arg: os.path.dirname(arg) or ".",
    "/.": lambda arg: _strip_ext(os.path.basename(arg)),
}


@dataclass(frozen=True)
class Template:
    """A command template, checked once, expanded per job."""

    tokens: tuple[str, ...]
    shell: bool
    sources: int

    @classmethod
    def parse(cls, tokens: Sequence[str], *, shell: bool, sources: int) -> Template:
        """Check every replacement string; raise TemplateError naming an unknown one."""
        for token in tokens:
            for match in _CANDIDATE.finditer(token):
                _check(match.group(0), match.group(1), sources)
        return cls(tuple(tokens), shell, sources)

    @property
    def has_replacements(self) -> bool:
        """Whether any token holds a replacement string."""
        return any(_CANDIDATE.search(token) for token in self.tokens)

    def expand(self, args: Sequence[str], seq: int, slot: int) -> list[str] | str:
        """The argv (direct exec) or shell command line (``shell``) for one job."""
        quote = shlex.quote if self.shell else (lambda s: s)

        def replace(match: re.Match[str]) -> str:
            return quote(_value(match.group(1), args, seq, slot))

        if self.has_replacements:
            words = [_CANDIDATE.sub(replace, token) for token in self.tokens]
        else:
            words = [*self.tokens, *(quote(arg) for arg in args)]
        return " ".join(words) if self.shell else words


def _check(text: str, inner: str, sources: int) -> None:
    match = _KNOWN.fullmatch(inner)
    if match is None:
        raise TemplateError(f"unknown replacement string {text}")
    source = match.group("source")
    if source is not None and int(source) > sources:
        raise TemplateError(f"{text} names input source {source}, but there are {sources}")


def _value(inner: str, args: Sequence[str], seq: int, slot: int) -> str:
    match = _KNOWN.fullmatch(inner)
    assert match is not None  # checked by Template.parse
    if match.group("special") == "#":
        return str(seq)
    if match.group("special") == "%":
        return str(slot)
    source = match.group("source")
    arg = args[int(source) - 1] if source else " ".join(args)
    return _OPS[match.group("op")](arg)


def split_sources(
    words: Sequence[str], *, null: bool = False
) -> tuple[list[str], list[list[str]] | None]:
    """Split ``cmd ... ::: a b :::: f1 f2`` into the template and its input sources.

    ``::: a b`` is one source of arguments; each file after ``::::`` is a source of its own,
    one argument per line (OSError if it cannot be read). The sources are None when the
    words hold no ``:::`` or ``::::`` at all (arguments then come from stdin).
    """
    template: list[str] = []
    sources: list[list[str]] = []
    mode = ""
    for word in words:
        if word in (":::", "::::"):
            mode = word
            if word == ":::":
                sources.append([])
        elif not mode:
            template.append(word)
        elif mode == ":::":
            sources[-1].append(word)
        else:
            sources.append(read_lines(word, null=null))
    return template, (sources if mode else None)


def read_lines(path: str, *, null: bool = False) -> list[str]:
    """The items of a file (``-`` for stdin): its lines, split at ``\\n`` only (as GNU
    parallel does: ``\\r``, form feeds and the like stay in the item), or with ``null``
    its NUL-separated items. A NUL byte in line input is an InputError."""
    if path == "-":
        if sys.stdin is None:
            return []
        text = sys.stdin.buffer.read().decode("utf-8", "surrogateescape")
    else:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as file:
            text = file.read()
    separator = "\0" if null else "\n"
    items = text.split(separator)
    if items and items[-1] == "":
        items.pop()
    if not null and "\0" in text:
        number = text.count("\n", 0, text.index("\0")) + 1
        where = "standard input" if path == "-" else path
        raise InputError(
            f"{where}, line {number}: a NUL byte in the input; for NUL-separated input "
            "use -0 (--null)"
        )
    return items


class InputError(ValueError):
    """The input cannot be split into arguments."""
