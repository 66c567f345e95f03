"""Sizes written as people write them: ``512``, ``512K``, ``1.5G``, ``2GiB`` (powers of 1024)."""

from __future__ import annotations

import re

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)i?B?\s*", re.IGNORECASE)


def size_in_bytes(text: str, units: str = "KMGTP") -> int | None:
    """The bytes ``text`` names, or None if it is not a size with one of ``units``."""
    match = _SIZE.fullmatch(text)
    if match is None:
        return None
    unit = match.group(2).upper()
    if unit and unit not in units:
        return None
    return int(float(match.group(1)) * 1024 ** " KMGTP".index(unit or " "))
