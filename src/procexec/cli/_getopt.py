"""Splitting the command line as GNU parallel's option parser (Perl's Getopt::Long, with
"bundling" and "require_order") does, before argparse sees it.

- Options end at the first word that is not one (``-`` and words not starting with ``-``)
  or after ``--``; the rest is the command and its input sources.
- An option's value is the next word whatever it looks like (``--tagstring -{}-``,
  ``-I -X-``, ``-j -1``), or what follows ``=`` (``--jobs=2``), or the rest of a bundle
  (``-j2``, ``-kXj1``: ``-k -X -j 1``).
- A long option may be shortened to any prefix no other option starts with.
- An unknown option is refused in one line, never taken for the command.

:class:`Options` records the options as they are added to the argparse parser; its
:meth:`~Options.split` gives argparse each option in one word (``--long=VALUE``), so a
value starting with ``-`` stays a value.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class OptionError(ValueError):
    """An option that is unknown, ambiguous, or lacks its value (a one-line message)."""


class _Spec(NamedTuple):
    canonical: str  # the long form argparse is given
    takes_value: bool


#: argparse actions that take no value.
_FLAG_ACTIONS = {"store_true", "store_false", "version", "help", "count"}


class Options:
    """The options a parser knows, recorded as they are added (see :meth:`add`)."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.specs: dict[str, _Spec] = {}

    def add(self, *flags: str, **kwargs: Any) -> None:
        """``parser.add_argument`` that also records the option's spellings."""
        self.parser.add_argument(*flags, **kwargs)
        action = kwargs.get("action")
        longs = [flag for flag in flags if flag.startswith("--")]
        canonical = longs[0] if longs else flags[0]
        if action is argparse.BooleanOptionalAction:
            for flag in longs:
                self.specs[flag] = _Spec(flag, False)
                self.specs["--no-" + flag[2:]] = _Spec("--no-" + flag[2:], False)
            return
        takes_value = action not in _FLAG_ACTIONS
        for flag in flags:
            self.specs[flag] = _Spec(canonical, takes_value)

    def split(
        self, argv: Sequence[str], unknown: Callable[[str], str]
    ) -> tuple[list[str], list[str]]:
        """(the options, one word each; the command words). ``unknown(option)`` gives the
        message for an option this parser does not know."""
        options: list[str] = []
        index = 0
        while index < len(argv):
            word = argv[index]
            if word == "--":
                return options, list(argv[index + 1 :])
            if not word.startswith("-") or word == "-":
                break
            following = argv[index + 1] if index + 1 < len(argv) else None
            used_next = (
                self._long(word, following, options, unknown)
                if word.startswith("--")
                else self._bundle(word, following, options, unknown)
            )
            index += 2 if used_next else 1
        return options, list(argv[index:])

    def _long(
        self, word: str, following: str | None, out: list[str], unknown: Callable[[str], str]
    ) -> bool:
        """One ``--name[=value]``; whether it took the next word as its value."""
        name, equals, value = word.partition("=")
        spec = self._resolve(name, unknown)
        if not spec.takes_value:
            if equals:
                raise OptionError(f"option {name} takes no value")
            out.append(spec.canonical)
            return False
        if equals:
            out.append(f"{spec.canonical}={value}")
            return False
        out.append(f"{spec.canonical}={_needed(name, following)}")
        return True

    def _bundle(
        self, word: str, following: str | None, out: list[str], unknown: Callable[[str], str]
    ) -> bool:
        """``-abc``: single-letter options; one that takes a value ends the bundle with the
        rest of it, or the next word. Whether it took the next word."""
        for position in range(1, len(word)):
            flag = "-" + word[position]
            spec = self.specs.get(flag)
            if spec is None:
                raise OptionError(unknown(flag if position > 1 else word))
            if not spec.takes_value:
                out.append(spec.canonical)
                continue
            rest = word[position + 1 :]
            if rest:
                out.append(f"{spec.canonical}={rest}")
                return False
            out.append(f"{spec.canonical}={_needed(flag, following)}")
            return True
        return False

    def _resolve(self, name: str, unknown: Callable[[str], str]) -> _Spec:
        """The option ``name`` is, exactly or as the one option it is a prefix of."""
        spec = self.specs.get(name)
        if spec is not None:
            return spec
        candidates = {s.canonical for flag, s in self.specs.items() if flag.startswith(name)}
        if len(candidates) == 1:
            return self.specs[candidates.pop()]
        if len(candidates) > 1 and name.startswith("--"):
            raise OptionError(f"option {name} is ambiguous: {', '.join(sorted(candidates))}")
        raise OptionError(unknown(name))


def _needed(name: str, value: str | None) -> str:
    if value is None:
        raise OptionError(f"option {name} needs a value")
    return value
