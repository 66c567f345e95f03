"""``--header``: names for the input columns, GNU parallel's way.

Without ``--pipe``, any ``--header`` value but ``0`` takes the first line of each input
source as its header (a ``\\r`` at its end left out), split into column names by
``--colsep`` (a tab by default). ``--header 0`` reads no header: each ``::::`` file's
name names its source. ``{name}``, and its forms ``{name.}``, ``{name/}``, ``{name//}``,
``{name/.}``, then stand for that column's number in the command, the ``--tagstring`` and
the ``--results`` path, which also uses the names for its directories.

With ``--pipe`` the header is what ``--header REGEX`` matches at the start of the input
(``:`` the first line, ``N`` the first N lines), given to every job before its block (see
procexec.cli._pipe).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from procexec.cli._inputs import Source


def column_names(
    sources: Sequence[Source], header: str, colsep: re.Pattern[str], separator: bytes
) -> list[str | None]:
    """Each input column's name (None: unnamed), taking the header lines off the sources."""
    names: list[str | None] = []
    for source in sources:
        if header == "0":
            names.append(source.path if source.path not in (None, "-") else None)
            continue
        line = source.header(separator)
        names.extend([] if line is None else colsep.split(line))
    return names


def rename(text: str, names: Sequence[str | None]) -> str:
    """``text`` with each ``{name}`` (and ``{name.}``, ``{name/}``...) turned into the
    column's number (``{1}``, ``{1.}``...)."""
    for number, name in enumerate(names, 1):
        if name:
            pattern = r"\{" + re.escape(name) + r"(|/|//|\.|/\.)\}"
            text = re.sub(pattern, f"{{{number}\\1}}", text)
    return text
