"""Command templates, GNU parallel style: checked once, expanded per job.

Replacement strings: ``{}`` the arguments, ``{.}`` without extension, ``{/}`` basename,
``{//}`` dirname, ``{/.}`` basename without extension, ``{#}`` job number, ``{%}`` slot
number, and ``{N}`` / ``{-N}`` (with the same ``.``, ``/``, ``//``, ``/.`` forms, blanks
allowed after N: ``{1 .}``) for the N-th argument of the job, counted from the end with
``-N``: the N-th input source's value, or with ``-N n`` the N-th of the job's n arguments.
One that is out of range is empty. A brace group made only of digits and ``-./#%`` that is
none of these is an error; other braces (``awk '{print $1}'``) are left alone. With no
replacement string at all, the arguments are appended to the command.

A template runs in one of two modes. ``shell`` (the default): the words are joined with
spaces into one command line for the user's shell, every value quoted for where it lands
(bare, inside double quotes, inside single quotes: see procexec.cli._shell), so it arrives
as one literal word; when the first word holds a replacement string the value *is* the
command (``procexec {} < commands``) and goes in unquoted, as in GNU parallel. ``argv``
(``-q``, ``--no-shell``): the words are the program and its arguments, values put in
verbatim. In ``context`` mode (``-X``, ``-N``, ``-L``) a word holding ``{}``-like strings is
repeated for each of the job's arguments; otherwise ``{}`` stands for all of them,
separated by spaces.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from functools import cached_property

from procexec.cli._shell import (
    exported_function,
    joined,
    needs_shell,
    quote,
    quoters,
    split_words,
)

CANDIDATE = re.compile(r"\{(-?(?:[0-9]+[ \t]*)?[./#%]*)\}")
_KNOWN = re.compile(
    r"(?:(?P<source>-?[1-9][0-9]*)[ \t]*)?(?P<op>|\.|/|//|/\.)|(?P<special>#|%)"
)  # fmt: skip
#: What a shell splits a line into words at (context mode repeats a word per argument). This
#: pattern and _EXTENSION are compiled when first used (by re's cache), not at every start.
_BLANKS = r"([ \t]+)"

Keep = Callable[[str], str]


class TemplateError(ValueError):
    """A template uses a replacement string procexec does not know."""


def _strip_ext(path: str) -> str:
    """The path without its extension, as GNU parallel's ``{.}``: the last ``.`` and what
    follows, if no ``/`` follows (``.bashrc`` gives an empty string, as there)."""
    return re.sub(_EXTENSION, "", path)


_EXTENSION = r"\.[^/.]*\Z"


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


def _unblanked(match: re.Match[str]) -> str:
    return "{" + re.sub(r"[ \t]+", "", match.group(1)) + "}"


def _verbatim(value: str) -> str:
    return value


class _Slot:
    """A replacement string in a template word: what is between its braces, and how a
    value is quoted where it lands."""

    __slots__ = ("inner", "keep", "whole")

    inner: str
    keep: Keep
    whole: bool  # whether it stands for the arguments themselves (not {#}, {%} or {N})

    def __init__(self, inner: str, keep: Keep) -> None:
        self.inner = inner
        self.keep = keep
        known = _KNOWN.fullmatch(inner)
        self.whole = known is not None and not known.group("special") and not known.group("source")

    def __repr__(self) -> str:
        return f"_Slot({self.inner!r})"


Parts = tuple["str | _Slot", ...]


def _parts(text: str, keep_at: Callable[[int], Keep], offset: int = 0) -> Parts:
    """``text`` cut into literal strings and replacement strings (``keep_at(offset)``: the
    quoting for one at that offset in the line ``text`` starts at ``offset`` of)."""
    parts: list[str | _Slot] = []
    at = 0
    for match in CANDIDATE.finditer(text):
        slot = _Slot(match.group(1), keep_at(offset + match.start()))
        parts.extend([text[at : match.start()], slot])
        at = match.end()
    parts.append(text[at:])
    return tuple(part for part in parts if part != "")


class Template:
    """A command template: its words, its mode, and whether it runs without a shell. Not
    changed once made; what it works out is cached (in its ``__dict__``: no ``__slots__``)."""

    tokens: tuple[str, ...]
    shell: bool  # the words form one shell command line (else they are the argv)
    context: bool  # -X / -N / -L: a word with {} is repeated for each argument
    direct: bool  # shell syntax-free: run as an argv, without starting a shell

    def __init__(
        self, tokens: tuple[str, ...], shell: bool, context: bool = False, direct: bool = False
    ) -> None:
        self.tokens = tokens
        self.shell = shell
        self.context = context
        self.direct = direct

    def __repr__(self) -> str:
        return (
            f"Template({self.tokens!r}, shell={self.shell}, context={self.context}, "
            f"direct={self.direct})"
        )

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
        tokens = [CANDIDATE.sub(_unblanked, token) for token in tokens]  # {1 .} is {1.}
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
    def command_word(self) -> bool:
        """Whether the first word holds a replacement string: the value is (part of) the
        command, and goes into the line unquoted (GNU parallel's rule)."""
        return re.match(r"[^ \t\n=]*" + CANDIDATE.pattern, joined(self.tokens)) is not None

    @cached_property
    def _line_pieces(self) -> tuple[Parts, ...]:
        """The shell line in pieces: the words and the blanks between them in context mode,
        else the one whole line."""
        text = joined(self.tokens)
        keep_at = (lambda _: _verbatim) if self.command_word else quoters(text)
        pieces = re.split(_BLANKS, text) if self.context else [text]
        found: list[Parts] = []
        offset = 0
        for piece in pieces:
            found.append(_parts(piece, keep_at, offset))
            offset += len(piece)
        return tuple(found)

    @cached_property
    def _argv_words(self) -> tuple[Parts, ...]:
        """The words run as the argv (as given, or as the shell would split them), cut."""
        words = split_words(joined(self.tokens)) if self.shell else self.tokens
        return tuple(_parts(word, lambda _: _verbatim) for word in words)

    def expand(self, args: Sequence[str], seq: int, slot: int) -> list[str] | str:
        """The argv (``argv`` mode, or a ``direct`` shell template) or the shell command
        line for one job (``-q`` running an exported shell function: a line too)."""
        if self.shell and not self.direct:
            return self._line(args, seq, slot)
        argv = self.words(args, seq, slot)
        if not self.shell and argv and exported_function(argv[0]):
            return " ".join(quote(word) for word in argv)
        return argv

    def words(self, args: Sequence[str], seq: int, slot: int) -> list[str]:
        """The words, each value put in verbatim (the argv; a tag, a --results path)."""
        argv = [w for word in self._argv_words for w in self._raw(word, args, seq, slot)]
        if not self._replacing:
            argv.extend(args)
        return argv

    def text(self, args: Sequence[str], seq: int, slot: int) -> str:
        """The job's command as one shell line, as the job log shows it (GNU parallel's
        Command column): what a shell would run, also for a job run without one."""
        if self.shell:
            return self._line(args, seq, slot)
        expanded = self.expand(args, seq, slot)
        return expanded if isinstance(expanded, str) else " ".join(quote(w) for w in expanded)

    def _line(self, args: Sequence[str], seq: int, slot: int) -> str:
        if not self.has_replacements:
            return " ".join([joined(self.tokens), *(quote(arg) for arg in args)])
        if not self.context:
            return _fill(self._line_pieces[0], args, seq, slot, between=" ")
        words: list[str] = []
        for piece in self._line_pieces:
            if any(isinstance(part, _Slot) and part.whole for part in piece):
                words.append(" ".join(_fill(piece, [arg], seq, slot, " ") for arg in args))
            else:
                words.append(_fill(piece, args, seq, slot, between=" "))
        return "".join(words)

    def _raw(self, word: Parts, args: Sequence[str], seq: int, slot: int) -> list[str]:
        """One argv word expanded: repeated per argument in context mode; broken where the
        shell would break the quoted values apart (between two arguments one ``{}`` stands
        for). Run without a shell (a ``direct`` template), a word that a shell would see
        as empty (a missing ``{3}``, ``{}`` of no arguments) is no word at all."""
        if self.context and any(isinstance(part, _Slot) and part.whole for part in word):
            return [w for arg in args for w in self._raw_once(word, [arg], seq, slot)]
        return self._raw_once(word, args, seq, slot)

    def _raw_once(self, word: Parts, args: Sequence[str], seq: int, slot: int) -> list[str]:
        words = _fill(word, args, seq, slot, between=_BREAK, keep=_verbatim).split(_BREAK)
        if self.shell and words == [""] and not _fill(word, args, seq, slot, " ", keep=quote):
            return []
        return words


_BREAK = "\0"  # a word break in a raw expansion (no argument can hold a NUL byte)


def _fill(
    parts: Parts,
    args: Sequence[str],
    seq: int,
    slot: int,
    between: str,
    *,
    keep: Keep | None = None,
) -> str:
    """``parts`` with each replacement string replaced (quoted by its own ``keep``, unless
    one ``keep`` is given for all)."""
    return "".join(
        part
        if isinstance(part, str)
        else _value(part.inner, args, seq, slot, keep=keep or part.keep, between=between)
        for part in parts
    )


def _value(
    inner: str, args: Sequence[str], seq: int, slot: int, *, keep: Keep, between: str
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
