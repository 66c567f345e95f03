"""Issue 31's "a quoted {} injects": a value reaches the command as one literal word, in
whatever shell context its replacement string stands: bare, inside double quotes, inside
single quotes (also with text around it, and inside ``$(...)``). The child prints its
arguments as JSON; they must be exactly the value, whatever it holds. ``--dry-run`` shows
the quoted line, and that line run by the shell gives the same. And issue 33: a program
that cannot start is named alone, not with its arguments as if they were its name."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procexec.cli._template import Template
from tests._helpers import run_cli

PROCEXEC = [sys.executable, "-m", "procexec"]
#: The child: its arguments as one JSON line.
PRINT = shlex.quote(sys.executable) + " -c 'import json,sys; print(json.dumps(sys.argv[1:]))'"

#: (template after PRINT, what the child must get for value v).
CONTEXTS = [
    ("{}", "{}"),
    ('"{}"', "{}"),
    ("'{}'", "{}"),
    ('"x {}y"', "x {}y"),
    ("'x {}y'", "x {}y"),
    ("x{}y", "x{}y"),
    ("\"$(printf '%s' {})\"", "{}"),
    ("\"a'{}'b\"", "a'{}'b"),
    ("'a\"{}\"b'", 'a"{}"b'),
]
HOSTILE = st.text(
    alphabet=st.sampled_from(list("$()`\"'\\! \n;|&*?#~{}<>a=%\t")), min_size=1, max_size=12
).filter(lambda v: not v.endswith("\n"))  # $(...) drops trailing newlines, as it should


def _run(
    template: str, values: list[str], *options: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run PRINT with ``template`` over ``values`` (NUL-separated on stdin: a value may
    hold a newline, which would cut a ::: value in two)."""
    return subprocess.run(
        [*PROCEXEC, "-0", "-k", *options, f"{PRINT} {template}"],
        input=b"".join(v.encode() + b"\0" for v in values), capture_output=True, cwd=cwd,
        timeout=120, check=False,
    )  # fmt: skip


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    context=st.sampled_from(CONTEXTS), values=st.lists(HOSTILE, min_size=1, max_size=4)
)  # fmt: skip
def test_a_value_is_one_literal_word_in_every_context(
    context: tuple[str, str], values: list[str], tmp_path: Path
) -> None:
    template, expected = context
    result = _run(template, values, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    got = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert got == [[expected.replace("{}", value)] for value in values]
    assert list(tmp_path.iterdir()) == []  # nothing the values said was run


def test_the_issues_command_line_runs_no_touch(tmp_path: Path) -> None:
    for template in ('echo "{}"', "echo '{}'", "echo {}"):
        result = run_cli(template, ":::", "$(touch PWNED)", "`touch PWNED`", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert sorted(result.stdout.splitlines()) == ["$(touch PWNED)", "`touch PWNED`"]
    assert not (tmp_path / "PWNED").exists()


def test_dry_run_shows_the_quoted_line_and_the_shell_runs_it_the_same() -> None:
    value = 'it\'s "$(id)" `x` \\ !'
    for template, _ in CONTEXTS:
        line = _run(template, [value], "--dry-run").stdout.decode()
        assert line.endswith("\n") and line.count("\n") == 1
        shown = subprocess.run(
            ["bash", "-c", line], capture_output=True, text=True, timeout=60, check=True
        )
        ran = _run(template, [value]).stdout.decode()
        assert json.loads(shown.stdout) == json.loads(ran)


def test_quotes_are_closed_and_reopened_where_the_value_lands() -> None:
    template = Template.parse(["echo \"{}\" '{}' {} $'{}'"], shell=True)
    assert (
        template.expand(["a'b$c"], 1, 1) == "echo \"a'b\\$c\" 'a'\\''b$c' 'a'\"'\"'b$c' $'a\\'b$c'"
    )


def test_a_program_that_cannot_start_is_named_alone() -> None:
    """Issue 33: not "nonexistent-prog a: No such file or directory"."""
    result = run_cli("-q", "nonexistent-prog", ":::", "a")
    assert result.returncode == 1
    assert result.stderr == "procexec: nonexistent-prog: No such file or directory\n"
