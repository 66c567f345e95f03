"""Types: mypy --strict on tests/typing_cases/cases.py reveals exactly the types and reports
exactly the errors written there (``["ls", 3]`` or a misspelt keyword are type errors;
``run(..., text=True)`` gives ``JobResult[str]``)."""

from __future__ import annotations

import re
from pathlib import Path

from mypy import api

CASES = Path(__file__).resolve().parent / "typing_cases" / "cases.py"


def expected() -> set[tuple[int, str, str]]:
    found = set()
    for number, line in enumerate(CASES.read_text().splitlines(), 1):
        match = re.search(r"  # ([RE]): (.+)$", line)
        if match:
            found.add((number, match.group(1), match.group(2).strip()))
    return found


def reported(output: str) -> set[tuple[int, str, str]]:
    found = set()
    for line in output.splitlines():
        revealed = re.match(r".*?:(\d+): note: Revealed type is \"(.+)\"$", line)
        if revealed:
            found.add((int(revealed.group(1)), "R", revealed.group(2)))
        error = re.match(r".*?:(\d+): error: .*\[([a-z-]+)\]$", line)
        if error:
            found.add((int(error.group(1)), "E", error.group(2)))
    return found


def test_mypy_sees_the_api_as_written_in_the_cases() -> None:
    stdout, stderr, _ = api.run(
        ["--strict", "--show-error-codes", "--no-error-summary", "--no-incremental", str(CASES)]
    )
    assert not stderr
    assert reported(stdout) == expected(), stdout
