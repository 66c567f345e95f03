"""Command templates, GNU parallel style: checked once, expanded per job.

Replacement strings: ``{}`` the arguments, ``{.}`` without extension, ``{/}`` basename,
``{//}`` dirname, ``{/.}`` basename without extension, ``{#}`` job number, ``{%}`` slot
number, and ``{N}`` / ``{-N}`` (with the same ``.``, ``/``, ``//``, ``/.`` forms) for the
N-th argument of the job, counted from the end with ``-N``: the N-th input source's value,
or with ``-N n`` the N-th of the job's n arguments. One that is out of range is empty. A
brace group made only of digits and ``-./#%`` that is none of these is an error; other
braces (``awk '{print $1}'``) are left alone. With no replacement string at all, the
arguments are appended to the command.

A template runs in one of two modes. ``shell`` (the default): the words are joined with
spaces into one command line for the user's shell, every value quoted. ``argv`` (``-q``,
``--no-shell``): the words are the program and its arguments, values put in verbatim. In
``context`` mode (``-X``, ``-N``) a word holding ``{}``-like strings is repeated for each of
the job's arguments; otherwise ``{}`` stands for all of them, separated by spaces.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from procexec.cli._shell import joined, needs_shell, quote, split_words

CANDIDATE = re.compile(r"\{(-?[0-9./#%]*)\}")
_KNOWN = re.compile(r"(?P<source>-?[1-9][0-9]*)?(?P<op>|\.|/|//|/\.)|(?P<special>#|%)")


class TemplateError(ValueError):
    """A template uses a replacement string procexec does not know."""


def _strip_ext(path: str) -> str:
    """The path without its extension, as GNU parallel's ``{.}``: the last ``.`` and what
    follows, if no ``/`` follows (``.bashrc`` gives an empty string, as there)."""
    return _EXTENSION.sub("", path)


_EXTENSION = re.compile(r"\.[^/.]*\Z")


def _dirname(path: str) -> str:
    """``{//}`` as GNU parallel gives it (Perl's ``dirname``): trailing slashes do not
    count (``a/b/`` gives ``a``), no slash gives ``.``, the root stays ``/``."""
    if path and not path.strip("/"):
        return "/"
    head, slash, _ = path.rstrip("/").rpartition("/")
    if not slash:
        return "."
    return head.rstrip("/") or "/"


_OPS: dict[str, Callable[[str], str]] = {
    "": lambda arg: arg,
    ".": _strip_ext,
    "/": os.path.basename,
    "//": _dirname,
    "/.": lambda arg: _strip_ext(os.path.basename(arg)),
}


@dataclass(frozen=True)
class Template:
    """A command template: its words, its mode, and whether it runs without a shell."""

    tokens: tuple[str, ...]
    shell: bool  # the words form one shell command line (else they are the argv)
    context: bool = False  # -X / -N: a word with {} is repeated for each argument
    direct: bool = False  # shell syntax-free: run as an argv, without starting a shell

    @classmethod
    def parse(
        cls, tokens: Sequence[str], *, shell: bool, context: bool = False, force_shell: bool = False
    ) -> Template:
        """Check every replacement string (TemplateError names an unknown one) and decide
        whether a shell is needed."""
        for token in tokens:
            for match in CANDIDATE.finditer(token):
                if _KNOWN.fullmatch(match.group(1)) is None:
                    raise TemplateError(f"unknown replacement string {match.group(0)}")
        direct = False
        if shell and not force_shell:
            first = split_words(joined(tokens))[:1]
            program = first[0] if first and not CANDIDATE.search(first[0]) else None
            direct = not needs_shell(CANDIDATE.sub("x", joined(tokens)), program)
        return cls(tuple(tokens), shell, context, direct)

    @property
    def has_replacements(self) -> bool:
        """Whether any token holds a replacement string."""
        return self._replacing

    @cached_property
    def _replacing(self) -> bool:
        return any(CANDIDATE.search(token) for token in self.tokens)

    @cached_property
    def _words(self) -> tuple[str, ...]:
        """The words run as the argv: as given, or as the shell would split them."""
        return tuple(split_words(joined(self.tokens))) if self.shell else self.tokens

    def expand(self, args: Sequence[str], seq: int, slot: int) -> list[str] | str:
        """The argv (``argv`` mode, or a ``direct`` shell template) or the shell command
        line for one job."""
        if self.shell and not self.direct:
            return self._line(args, seq, slot)
        words = self._words
        if not self._replacing:
            return [*words, *args]
        expanded: list[str] = []
        for word in words:
            expanded.extend(self._word(word, args, seq, slot, raw=True))
        return expanded

    def text(self, args: Sequence[str], seq: int, slot: int) -> str:
        """The job's command as one shell line, as the job log shows it (GNU parallel's
        Command column): what a shell would run, also for a job run without one."""
        if self.shell:
            return self._line(args, seq, slot)
        expanded = self.expand(args, seq, slot)
        return " ".join(quote(word) for word in expanded)

    def _line(self, args: Sequence[str], seq: int, slot: int) -> str:
        text = joined(self.tokens)
        if not self.has_replacements:
            return " ".join([text, *(quote(arg) for arg in args)])
        if not self.context:
            return _substitute(text, args, seq, slot, keep=quote, between=" ")
        pieces = re.split(r"([ \t]+)", text)
        return "".join(" ".join(self._word(piece, args, seq, slot, raw=False)) for piece in pieces)

    def _word(self, word: str, args: Sequence[str], seq: int, slot: int, raw: bool) -> list[str]:
        """One template word expanded: repeated per argument in context mode. Raw (argv)
        words break where the shell would break the quoted values apart: between two
        arguments that one ``{}`` stands for."""
        if self.context and _has_whole(word):
            return [w for arg in args for w in _plain_word(word, [arg], seq, slot, raw)]
        return _plain_word(word, args, seq, slot, raw)


def _plain_word(word: str, args: Sequence[str], seq: int, slot: int, raw: bool) -> list[str]:
    """A word with ``{}`` standing for all of ``args``."""
    if not raw:
        return [_substitute(word, args, seq, slot, keep=quote, between=" ")]
    return _substitute(word, args, seq, slot, keep=_verbatim, between=_BREAK).split(_BREAK)


_BREAK = "\0"  # a word break in a raw expansion (no argument can hold a NUL byte)


def _verbatim(value: str) -> str:
    return value


def _has_whole(word: str) -> bool:
    """Whether ``word`` holds a replacement string that stands for all arguments."""
    for match in CANDIDATE.finditer(word):
        known = _KNOWN.fullmatch(match.group(1))
        if known is not None and not known.group("special") and not known.group("source"):
            return True
    return False


def _substitute(
    text: str,
    args: Sequence[str],
    seq: int,
    slot: int,
    *,
    keep: Callable[[str], str],
    between: str,
) -> str:
    def replace(match: re.Match[str]) -> str:
        return _value(match.group(1), args, seq, slot, keep=keep, between=between)

    return CANDIDATE.sub(replace, text)


def _value(
    inner: str,
    args: Sequence[str],
    seq: int,
    slot: int,
    *,
    keep: Callable[[str], str],
    between: str,
) -> str:
    match = _KNOWN.fullmatch(inner)
    assert match is not None  # checked by Template.parse
    if match.group("special") == "#":
        return str(seq)
    if match.group("special") == "%":
        return str(slot)
    op = _OPS[match.group("op")]
    source = match.group("source")
    if source is None:
        return between.join(keep(op(arg)) for arg in args)
    index = int(source)
    position = index - 1 if index > 0 else len(args) + index
    if not 0 <= position < len(args):
        return ""  # as GNU parallel: an argument that is not there is empty
    return keep(op(args[position]))
