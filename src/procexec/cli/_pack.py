"""``-X`` and ``-m``: as many arguments per job as fit in one command line, GNU parallel's
way.

Each job takes whole input combinations (one value per source) until the next would make
its command line longer than the packing limit, or until it has ``-n``/``-N``/``-L``
of them. The limit is GNU parallel's: half of (the longest command line less 3,000
bytes), room it keeps for wrapping the line. The combinations left when the input ends
are spread evenly over the job slots (``-j``): ``procexec -j3 -m echo ::: a b c d e f g
h`` runs ``echo a b c``, ``echo d e f``, ``echo g h``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from procexec.cli._shell import line_length
from procexec.cli._template import Template

Combo = tuple[str, ...]


class TooLongError(ValueError):
    """One input combination alone makes a command line longer than the limit."""


def packing_limit(line_limit: int) -> int:
    """The longest command line ``-X``/``-m`` pack up to (GNU parallel's rule)."""
    return (line_limit - 3000) // 2


def fit_groups(
    combos: Sequence[Combo], template: Template, slots: int, limit: int, most: int | None
) -> list[Combo]:
    """Each job's arguments (the combinations flattened) for ``-X``/``-m``."""
    measure = _measure(template)
    base = measure(())
    groups: list[list[Combo]] = []
    group: list[Combo] = []
    length = base
    for number, combo in enumerate(combos, 1):
        cost = measure(combo) - base
        if group and (length + cost > limit or (most is not None and len(group) >= most)):
            groups.append(group)
            group, length = [], base
        if not group and base + cost > limit:
            raise TooLongError(
                f"command line too long ({base + cost} >= {limit}) at input {number}: "
                f"{' '.join(combo)[:50]}"
            )
        group.append(combo)
        length += cost
    groups.extend(_spread(group, slots))
    return [tuple(value for combo in job for value in combo) for job in groups]


def _spread(group: list[Combo], slots: int) -> list[list[Combo]]:
    """The last group, cut evenly over the slots (at the end of the input, GNU parallel
    spreads what is left so every slot gets work)."""
    if len(group) <= 1:
        return [group] if group else []
    size = -(-len(group) // slots)
    return [group[at : at + size] for at in range(0, len(group), size)]


def _measure(template: Template) -> Callable[[Combo], int]:
    """The cost of a job's command line: its length with no argument, then what each
    combination adds, a separator included (measured once on two sample values)."""
    empty = line_length(template.expand((), 1, 1))
    one = line_length(template.expand(("a",), 1, 1))
    two = line_length(template.expand(("a", "b"), 1, 1))
    separator = max(0, two - 2 * one + empty)

    def measure(combo: Combo) -> int:
        if not combo:
            return empty
        return line_length(template.expand(combo, 1, 1)) + separator * len(combo)

    return measure
