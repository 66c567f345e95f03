"""The same command lines run with GNU parallel and with procexec must agree: standard
output (line order compared only where the case fixes it, with -k or -j1), the exit status,
and every file left in the working directory (job logs compared on their Seq, Exitval,
Signal and Command columns, the rest being times, hosts and sizes). Each tool runs in a
directory of its own holding the same input files.

GNU parallel is installed by .ci/run; the module is skipped (with that reason) where it
is not, so the cases run in CI on every push.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests._helpers import PARALLEL, needs_parallel

pytestmark = needs_parallel

FIXTURES = {
    "lines.txt": b"alpha\nbeta gamma\n\ndelta.tar.gz\n",
    "more.txt": b"1\n2\n",
    "nul.bin": b"one two\0three\nfour\0",
    "cols.csv": b"a,b,c\nd,e,f\n",
    "dir/file.txt": b"in a dir\n",
    "crlf.txt": b"x\r\ny\r\n",
}


@dataclass(frozen=True)
class Case:
    """One command line: its arguments and stdin; ``ordered``: compare the line order."""

    id: str
    args: tuple[str, ...]
    stdin: bytes = b""
    ordered: bool = False
    env: tuple[tuple[str, str], ...] = ()


def case(id: str, *args: str, stdin: bytes = b"", env: tuple[tuple[str, str], ...] = ()) -> Case:
    """A case; its output order is compared when it runs with -k or -j1."""
    ordered = "-k" in args or "-j1" in args or "--keep-order" in args
    return Case(id, args, stdin, ordered, env)


BASH = (("PARALLEL_SHELL", "/bin/bash"),)

CASES = [
    # The shell rule: the words are one command line, every value quoted.
    case("pipe", "-k", "echo {} | tr a-z A-Z", ":::", "abc", "def"),
    case("semicolon-exit", "-k", "echo", "job{#}", "val", "{};exit", "{}", ":::", "0", "1", "2"),
    case("and-or", "-k", "test {} = a && echo yes || echo no", ":::", "a", "b"),
    case("redirect", "echo {} > out.{}", ":::", "a", "b"),
    case("append-redirect", "-j1", "echo {} >> all.txt", ":::", "a", "b", "c"),
    case("variable", "-k", "echo $MYVAR {}", ":::", "x", env=(("MYVAR", "from-env"),)),
    case("subshell", "-k", "(echo {}; echo again) | wc -l", ":::", "a"),
    case("command-substitution", "-k", "echo $(echo {} | rev)", ":::", "abc"),
    case("glob-in-template", "-k", "ls *.txt | wc -l", ":::", "x"),
    case("values-not-globbed", "-k", "echo", ":::", "*.txt", "?"),
    case("value-with-spaces", "-k", "printf '<%s>\\n'", ":::", "a b", "c  d"),
    case("value-with-quotes", "-k", "printf '<%s>\\n'", ":::", "it's", 'say "hi"'),
    case("value-with-dollar", "-k", "echo", ":::", "$HOME", "`date`", "$(id)"),
    case("value-with-backslash", "-k", "printf '%s\\n'", ":::", "a\\b", "c\\\\d"),
    case("value-with-semicolon", "-k", "echo", ":::", "a;echo injected", "b|cat"),
    case("words-joined", "-k", "echo", "a  b", "{}", ":::", "x"),
    case("exported-function", "-k", "f", ":::", "1", "2", env=BASH),
    case("quote-mode", "-k", "-q", "printf", "<%s>\\n", "a b", ":::", "c d"),
    case("quote-keeps-syntax", "-k", "-q", "echo", "a|b", ";", "{}", ":::", "x"),
    case("commands-from-stdin", "-k", stdin=b"echo one\necho two; exit 3\n\necho three\n"),
    case("commands-after-colons", "-k", ":::", "echo a", "echo b | tr b B"),
    case("command-not-found", "-k", "no-such-program-xyz", ":::", "a"),
    case("exit-statuses-counted", "exit {}", ":::", "0", "1", "2", "3"),
    case("many-failures-cap", "exit 1", ":::", *[str(i) for i in range(105)]),
    case("killed-by-signal", "-k", "kill -9 $$", ":::", "a"),
    # Replacement strings.
    case("dot-and-slashes", "-k", "echo {.} {/} {//} {/.}", ":::", "dir/sub/file.tar.gz", "plain"),
    case("seq", "-k", "echo {#}", ":::", "a", "b", "c"),
    case("slot-with-one-job", "-j1", "echo {%}", ":::", "a", "b"),
    case("positional", "-k", "echo {2} {1}", ":::", "a", "b", ":::", "1", "2"),
    case("from-the-end", "-k", "echo {-1} {-2}", ":::", "a", "b", ":::", "1", "2"),
    case("positional-ops", "-k", "echo {1.} {2/}", ":::", "x.c", ":::", "dir/y"),
    case("positional-missing", "-k", "echo {1}-{3}-", ":::", "a", ":::", "b"),
    case("all-values", "-k", "echo {}", ":::", "a b", ":::", "c"),
    case("empty-value", "-k", "printf '<%s>\\n'", ":::", "", "x"),
    case("awk-braces-left-alone", "-k", "echo {} | awk '{print $1}'", ":::", "a b"),
    case("replace-string", "-k", "-I", "XX", "echo", "XX.XX", ":::", "a"),
    # Input sources.
    case("product", "-k", "echo", ":::", "a", "b", ":::", "1", "2"),
    case("file-source", "-k", "echo", "[{}]", "::::", "lines.txt"),
    case("two-file-sources", "-k", "echo", "::::", "lines.txt", "more.txt"),
    case("arg-file", "-k", "-a", "more.txt", "echo", "n={}"),
    case("stdin-lines", "-k", "echo", "[{}]", stdin=b"a b\n\nc\n"),
    case("stdin-dash-source", "-k", "echo", ":::", "x", "::::", "-", stdin=b"1\n2\n"),
    case("crlf-kept", "-k", "printf", "<%s>", "::::", "crlf.txt"),
    case("null-separated", "-k", "-0", "printf", "<%s>", "::::", "nul.bin"),
    case(
        "empty-source-among-others", "-k", "echo", "[{1}][{2}][{3}]", ":::", "a", ":::", ":::", "b"
    ),
    case("empty-file-among-others", "-k", "echo", "[{1}][{2}]", ":::", "a", "::::", "/dev/null"),
    case("only-empty-source", "-k", "echo", ":::"),
    case("linked-plus", "-k", "echo", ":::", "a", "b", "c", ":::+", "1", "2"),
    case("linked-then-product", "-k", "echo", ":::", "a", "b", ":::+", "1", "2", ":::", "x", "y"),
    case("link-wraps", "-k", "--link", "echo", ":::", "a", "b", ":::", "1", "2", "3"),
    case("xapply", "-k", "--xapply", "echo", ":::", "a", "b", ":::", "1", "2"),
    case("colsep", "-k", "--colsep", ",", "echo", "{3}{1}", "::::", "cols.csv"),
    case("colsep-regex", "-k", "--colsep", " +", "echo", "{2}", stdin=b"a   b\nc d\n"),
    case("colsep-on-colons", "-k", "--colsep", ",", "echo", "{2}", ":::", "a,b", "c,d"),
    case(
        "colsep-across-sources",
        "-k",
        "--colsep",
        ",",
        "echo",
        "{1}{2}{3}",
        "::::",
        "cols.csv",
        ":::",
        "X",
    ),
    case("arg-file-before-colons", "-k", "-a", "more.txt", "echo", ":::", "x"),
    case("delimiter", "-k", "-d", ",", "echo", "[{}]", stdin=b"a,b c,d"),
    case("delimiter-escaped", "-k", "-d", "\\t", "echo", stdin=b"a\tb"),
    case("eof-string", "-k", "-E", "stop", "echo", stdin=b"a\nstop\nb\n"),
    case("eof-string-on-colons", "-k", "-E", "stop", "echo", ":::", "a", "stop", "b"),
    case("trim", "-k", "--trim", "lr", "printf", "'<%s>\\n'", stdin=b"  a  \n\tb\n"),
    case("trim-left", "-k", "--trim", "l", "printf", "'<%s>\\n'", stdin=b"  a  \n"),
    case(
        "header-colsep",
        "-k",
        "--colsep",
        ",",
        "--header",
        ":",
        "echo",
        "{b}-{a}",
        stdin=b"a,b\n1,2\n3,4\n",
    ),
    case(
        "header-sources",
        "-k",
        "--header",
        ":",
        "echo",
        "{x}{y}",
        ":::",
        "x",
        "1",
        "2",
        ":::",
        "y",
        "3",
    ),
    case("no-run-if-empty", "-r", "-k", "echo", "x{}", stdin=b"\n \na\n"),
    case("arg-sep", "-k", "--arg-sep", ",,", "echo", ":::", ",,", "a", "b"),
    case("arg-file-sep", "-k", "--arg-file-sep", "//", "echo", "//", "more.txt"),
    case(
        "path-edges",
        "-k",
        "echo",
        "[{/}] [{//}] [{/.}] [{.}]",
        ":::",
        "a/b/",
        "/",
        "a",
        "/a",
        "a//b",
        ":/",
        "",
        "./x",
        "a/b.c/",
        "//",
    ),
    case("dotfile-extension", "-k", "echo", "{.}", "{/.}", ":::", ".hidden", "a/.b.c", "x."),
    # Several arguments per job.
    case("no-arguments", "-k", "-N0", "echo", "hi", ":::", "a", "b", ":::", "c"),
    case("max-args-plain", "-k", "-n2", "echo", "x{}y", ":::", "a", "b", "c"),
    case("max-args-positional", "-k", "-n1", "echo", "{1}", ":::", "a", "b"),
    case("max-lines", "-k", "-L", "2", "echo", stdin=b"a\nb\nc\n"),
    case("max-args", "-k", "-N2", "echo", "{1}-{2}", ":::", "a", "b", "c"),
    case("max-args-appended", "-k", "-N2", "echo", ":::", "a b", "c", "d"),
    case("max-args-context", "-k", "-N2", "echo", "x{}y", ":::", "a", "b", "c"),
    case("max-args-from-end", "-k", "-N3", "echo", "{-1}", ":::", "a", "b", "c", "d"),
    case("max-args-product", "-k", "-N2", "echo", ":::", "a", "b", ":::", "X", "Y"),
    case("context-replace", "-j1", "-X", "echo", "pre{}post", ":::", "a", "b", "c"),
    case("context-spread", "-k", "-j2", "-X", "echo", ":::", "a", "b", "c", "d", "e"),
    case("multi", "-j1", "-m", "echo", "pre{}post", ":::", "a", "b", "c"),
    case("multi-spread", "-k", "-j3", "-m", "echo", ":::", *"abcdefg"),
    case("context-seq", "-j1", "-X", "echo", "x{.}y{#}", ":::", "a.b", "c.d"),
    # Output.
    case("keep-order", "-k", "-j4", "sleep 0.{}; echo {}", ":::", "3", "1", "2", "0"),
    case("tag", "-k", "--tag", "echo", "out", ":::", "a", "b c"),
    case("tagstring", "-k", "--tagstring", "{#}-{1}", "echo", ":::", "a", "b"),
    case("verbose", "-k", "-v", "echo", ":::", "a", "b c"),
    case("verbose-tagged", "-k", "-v", "--tag", "echo", ":::", "a"),
    case("stderr-and-stdout", "-k", "echo out {}; echo err {} >&2", ":::", "a"),
    case("dry-run", "--dry-run", "-k", "echo", ":::", "a b", "c$d", "e'f", "plain"),
    case("dry-run-tag", "--dry-run", "-k", "--tag", "echo", ":::", "a", "b c"),
    case("dry-run-quote", "--dry-run", "-k", "-q", "echo", "a b", ":::", "c"),
    case("line-buffer", "--line-buffer", "echo", ":::", "a", "b"),
    case("ungroup", "-u", "echo", ":::", "a", "b"),
    case("results", "--results", "res", "echo", ":::", "a", "b/c", ":::", "1"),
    case("results-stderr", "--results", "res2/", "echo {}; echo e >&2", ":::", "x"),
    # Job control.
    case("halt-now-fail", "-j1", "--halt", "now,fail=1", "exit {}", ":::", "0", "3", "0"),
    case("halt-soon-fail", "-j1", "--halt", "soon,fail=1", "exit {}", ":::", "0", "4", "5"),
    case("halt-2", "-j1", "--halt", "2", "exit {}", ":::", "0", "7", "0"),
    case("halt-fail-2", "-j1", "--halt", "soon,fail=2", "exit {}", ":::", "4", "3", "0", "5"),
    case("halt-percent", "-j1", "--halt", "soon,fail=34%", "exit {}", ":::", *"430500"),
    case("halt-done-percent", "-j1", "--halt", "soon,done=50%", "exit {}", ":::", *"430500"),
    case("halt-success", "-j1", "--halt", "now,success=1", "exit {}", ":::", "3", "0", "4"),
    case("halt-minus-1", "-j1", "--halt", "-1", "exit {}", ":::", "3", "0", "4"),
    case("halt-done-1", "-j1", "--halt", "now,done=1", "exit {}", ":::", "4", "0"),
    case("halt-signal", "-j1", "--halt", "2", "kill -9 $$", ":::", "a"),
    case("timeout", "-k", "--timeout", "1", "sleep {}; echo {}", ":::", "3", "0"),
    case("timeout-halt", "-j1", "--timeout", "1", "--halt", "now,fail=1", "sleep {}", ":::", "3"),
    case("joblog", "-k", "--joblog", "log", "echo {}; exit {}", ":::", "0", "1", "a b"),
    case("joblog-appended", "-k", "--joblog", "+log", "echo", ":::", "a"),
    case("joblog-timeout", "--joblog", "log", "--timeout", "1", "sleep {}", ":::", "3"),
    case("retries", "-j1", "--retries", "3", "echo x >> tries; exit 1", ":::", "a"),
    case("jobs-zero", "-k", "-j0", "echo", ":::", "a", "b"),
    case("jobs-percent", "-k", "-j", "50%", "echo", ":::", "a", "b"),
    case("end-of-options", "-k", "--", "echo", ":::", "a"),
    case("delay", "-k", "--delay", "0.05", "echo", ":::", "a", "b"),
    # --pipe.
    case(
        "pipe-keep",
        "-k",
        "--pipe",
        "--block",
        "10",
        "cat",
        stdin=b"".join(b"%d\n" % i for i in range(50)),
    ),
    case("pipe-count", "--pipe", "--block", "20", "wc", "-l", stdin=b"a\n" * 40),
    case("pipe-records", "-k", "--pipe", "-N2", "cat; echo --", stdin=b"1\n2\n3\n4\n5\n"),
    case(
        "pipe-round-robin-one-job",
        "-j1",
        "--pipe",
        "--block",
        "10",
        "--round-robin",
        "cat",
        stdin=b"".join(b"%d\n" % i for i in range(50)),
    ),
    case("pipe-recstart", "-k", "--pipe", "--recstart", "b", "cat; echo --", stdin=b"a\nb\n"),
]


def _run(tool: list[str], item: Case, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    for name, data in FIXTURES.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_bytes(data)
    env = {key: value for key, value in os.environ.items() if key != "PARALLEL_SHELL"}
    env.update(item.env)
    if item.env == BASH:
        env["BASH_FUNC_f%%"] = '() {  echo "func $1"\n}'
    return subprocess.run(
        [*tool, *item.args], input=item.stdin, capture_output=True, cwd=cwd, env=env,
        timeout=60, check=False,
    )  # fmt: skip


def _files(root: Path) -> dict[str, object]:
    """Every file under ``root`` and its content (a job log: the columns that can agree)."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "log":
                rows = [line.split(b"\t") for line in data.splitlines()]
                found[path.name] = sorted((r[0], r[6], r[7], r[8]) for r in rows)
            else:
                found[str(path.relative_to(root))] = data
    return found


def _lines(output: bytes, ordered: bool) -> list[bytes]:
    lines = output.splitlines()
    return lines if ordered else sorted(lines)


@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_same_as_gnu_parallel(item: Case, tmp_path: Path) -> None:
    (tmp_path / "gnu").mkdir()
    (tmp_path / "ours").mkdir()
    theirs = _run([str(PARALLEL), "--will-cite"], item, tmp_path / "gnu")
    ours = _run([sys.executable, "-m", "procexec"], item, tmp_path / "ours")
    assert _lines(ours.stdout, item.ordered) == _lines(theirs.stdout, item.ordered), (
        ours.stderr.decode()
    )
    assert ours.returncode == theirs.returncode, ours.stderr.decode()
    assert _files(tmp_path / "ours") == _files(tmp_path / "gnu")


def test_enough_cases() -> None:
    assert len(CASES) >= 60


# A property over random mixes: values holding shell syntax, quotes, blanks and non-ASCII,
# in random templates, sources and options, must give what GNU parallel gives.
_VALUE = st.text(alphabet=st.sampled_from(list("ab Z.é/-_'\"$`\\;|&*?{}()<>#~!\t=,:%")), max_size=8)
_TEMPLATES = [
    ["printf", "'<%s>\\n'", "{}"],
    ["echo", "{}"],
    ["echo {} | cat"],
    ["printf '[%s]' {1} {-1}; echo"],
    ["echo", "x{}y", "{#}"],
    ["echo", "{.}", "{/}", "{//}", "{/.}"],
    ["printf", "'(%s)'"],
    ["-q", "printf", "<%s>\\n", "{}"],
    ["-q", "printf", "<%s>"],
]
_SHAPES = [[], ["-N2"], ["-n2"], ["-j1", "-X"], ["-j1", "-m"], ["--colsep", ","], ["-r"]]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    template=st.sampled_from(_TEMPLATES),
    shape=st.sampled_from(_SHAPES),
    first=st.lists(_VALUE, min_size=1, max_size=4),
    second=st.one_of(st.none(), st.lists(_VALUE, min_size=1, max_size=2)),
)
def test_property_random_mixes_agree_with_gnu_parallel(
    template: list[str],
    shape: list[str],
    first: list[str],
    second: list[str] | None,
    tmp_path: Path,
) -> None:
    if shape == ["-r"]:  # GNU parallel's -r over several sources: see docs/cli.md
        second = None
    sources = [":::", *first, *([":::", *second] if second is not None else [])]
    item = case("random", "-k", *shape, *template, *sources)
    gnu, ours = tmp_path / "gnu", tmp_path / "ours"
    for directory in (gnu, ours):
        directory.mkdir(exist_ok=True)
    theirs = _run([str(PARALLEL), "--will-cite"], item, gnu)
    mine = _run([sys.executable, "-m", "procexec"], item, ours)
    assert (mine.stdout, mine.returncode) == (theirs.stdout, theirs.returncode), (
        mine.stderr.decode()
    )
