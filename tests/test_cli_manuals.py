"""Command lines from GNU parallel's own manuals (``man parallel_tutorial``, ``man
parallel_examples``, Debian's 20221122), using options procexec claims, run with GNU
parallel and with procexec: they must agree as in tests/test_cli_differential.py.

Adapted only where the manual's line needs what a test cannot have: another machine, a
long sleep (shortened), a program that is not installed (``echo`` in its place), or a
``<(...)`` (an input file holding the same lines). The tutorial's input files are made by
its own recipes, smaller where it uses a million lines.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._helpers import needs_parallel
from tests.test_cli_differential import FIXTURES, Case, case, check_same, lines_of

pytestmark = needs_parallel

#: The tutorial's input files (its "Input sources" and "--pipe" sections).
MANUAL_FIXTURES = {
    "abc-file": b"A\nB\nC\n",
    "def-file": b"D\nE\nF\n",
    "abc0-file": b"A\0B\0C\0",
    "abc_-file": b"A_B_C_",
    "tsv-file.tsv": b"f1\tf2\nA\tB\nC\tD\n",
    "num30000": lines_of(*range(1, 30001)),
    "num_%header": b"%head1\n%head2\n" + lines_of(*range(1, 11)),
    "fixedlen": b"HHHHAAABBBCCC",
    "six.txt": lines_of(*range(1, 7)),
    "six-reversed.txt": lines_of(*range(6, 0, -1)),
    "head.txt": b"a\nb\nc\n",
    "tail.txt": b"b\nc\nd\n",
    "a.es.txt": b"spanish\n",
    "table_file.tsv": b" x \t y \nu\tv\n",
}

_NUM100000 = lines_of(*range(1, 100_001))
_SLOW_PRINTF = 'printf "%s-start\\n%s" {} {}; sleep {}; printf "%s\\n" -middle; echo {}-end'
_VAR = (("VAR", "two  spaces"),)

# fmt: off
TUTORIAL = [
    # Input sources.
    case("t-colons", "echo", ":::", "A", "B", "C"),
    case("t-arg-file", "-a", "abc-file", "echo"),
    case("t-stdin", "echo", stdin=MANUAL_FIXTURES["abc-file"]),
    case("t-two-sources", "echo", ":::", "A", "B", "C", ":::", "D", "E", "F"),
    case("t-arg-files", "-a", "abc-file", "-a", "def-file", "echo"),
    case("t-dash-arg-file", "-a", "-", "-a", "def-file", "echo", stdin=b"A\nB\nC\n"),
    case("t-dash-four-colons", "echo", "::::", "-", "def-file", stdin=b"A\nB\nC\n"),
    case("t-mixed-sources", "echo", ":::", "A", "B", "C", "::::", "def-file"),
    case("t-link", "--link", "echo", ":::", "A", "B", "C", ":::", "D", "E", "F"),
    case("t-link-wraps", "--link", "echo", ":::", "A", "B", "C", "D", "E", ":::", "F", "G"),
    case("t-linked-colons", "echo", "::::", "abc-file", ":::+", "G", "H", "I", "::::", "def-file"),
    case("t-linked-file", "echo", "::::", "abc-file", ":::", "G", "H", "I", "::::+", "def-file"),
    case("t-linked-shorter", "echo", ":::", "A", "B", "C", "D", "E", ":::+", "F", "G"),
    case("t-arg-sep", "--arg-sep", ",,", "echo", ",,", "A", "B", "C", "::::", "def-file"),
    case("t-arg-file-sep", "--arg-file-sep", "//", "echo", ":::", "A", "B", "C", "//", "def-file"),
    case("t-delimiter", "-d", "_", "echo", "::::", "abc_-file"),
    case("t-delimiter-nul", "-d", "\\0", "echo", "::::", "abc0-file"),
    case("t-null", "-0", "echo", "::::", "abc0-file"),
    case("t-eof", "-E", "stop", "echo", ":::", "A", "B", "stop", "C", "D"),
    case("t-no-run-if-empty", "--no-run-if-empty", "echo", stdin=b"1\n\n2\n"),
    case("t-commands", ":::", "ls", "echo foo"),
    # Replacement strings.
    case("t-appended", "echo", ":::", "A/B.C"),
    case("t-braces", "echo", "{}", ":::", "A/B.C"),
    case("t-dot", "echo", "{.}", ":::", "A/B.C"),
    case("t-slash", "echo", "{/}", ":::", "A/B.C"),
    case("t-slashslash", "echo", "{//}", ":::", "A/B.C"),
    case("t-slashdot", "echo", "{/.}", ":::", "A/B.C"),
    case("t-seq", "echo", "{#}", ":::", "A", "B", "C"),
    case("t-slot", "-j", "1", "echo", "{%}", ":::", "A", "B", "C"),
    case("t-replace", "-I", ",,", "echo", ",,", ":::", "A/B.C"),
    case("t-positional", "echo", "{1}", "and", "{2}", ":::", "A", "B", ":::", "C", "D"),
    case("t-positional-forms", "echo", "/={1/}", "//={1//}", "/.={1/.}", ".={1.}", ":::", "A/B.C",
        "D/E.F"),
    case("t-positional-negative", "echo", "1={1}", "2={2}", "3={3}", "-1={-1}", "-2={-2}",
        "-3={-3}", ":::", "A", "B", ":::", "C", "D", ":::", "E", "F"),
    case("t-colsep-tab", "--colsep", "\\t", "echo", "1={1}", "2={2}", "::::", "tsv-file.tsv"),
    case("t-header", "--header", ":", "echo", "f1={f1}", "f2={f2}", ":::", "f1", "A", "B", ":::",
        "f2", "C", "D"),
    case("t-header-colsep", "--header", ":", "--colsep", "\\t", "echo", "f1={f1}", "f2={f2}",
        "::::", "tsv-file.tsv"),
    # More than one argument.
    case("t-multi-lines", "--jobs", "4", "-m", "echo", stdin=MANUAL_FIXTURES["num30000"],
        count=True),
    case("t-multi", "--jobs", "4", "-m", "echo", ":::", *map(str, range(1, 11))),
    case("t-multi-context", "--jobs", "4", "-m", "echo", "pre-{}-post", ":::", *"ABCDEFG"),
    case("t-context", "--jobs", "4", "-X", "echo", "pre-{}-post", ":::", *"ABCDEFG"),
    case("t-max-replace", "-N3", "echo", ":::", *"ABCDEFGH"),
    case("t-max-replace-positional", "-N3", "echo", "1={1}", "2={2}", "3={3}", ":::", *"ABCDEFGH"),
    case("t-no-arguments", "-N0", "echo", "foo", ":::", "1", "2", "3"),
    # Quoting.
    case("t-perl-wont-work", "perl", "-e", 'print "@ARGV\\n"', ":::", "This", "wont", "work"),
    case("t-perl-quoted", "-q", "perl", "-e", 'print "@ARGV\\n"', ":::", "This", "works"),
    case("t-perl-escaped", "perl", "-e", '\'print "@ARGV\\n"\'', ":::", "This", "works,", "too"),
    case("t-trim-r", "--trim", "r", "echo", "pre-{}-post", ":::", " A "),
    case("t-trim-l", "--trim", "l", "echo", "pre-{}-post", ":::", " A "),
    case("t-trim-lr", "--trim", "lr", "echo", "pre-{}-post", ":::", " A "),
    case("t-equals", "echo", "={}", ":::", "zsh", "bash", "ls"),
    # Controlling the output.
    case("t-tag", "--tag", "echo", "foo-{}", ":::", "A", "B", "C"),
    case("t-tagstring", "--tagstring", "{}-bar", "echo", "foo-{}", ":::", "A", "B", "C"),
    case("t-dryrun", "--dryrun", "echo", "{}", ":::", "A", "B", "C"),
    case("t-verbose", "--verbose", "echo", "{}", ":::", "A", "B", "C", stderr=True),
    case("t-keep-order", "-j2", "-k", _SLOW_PRINTF, ":::", "0.4", "0.2", "0.1"),
    case("t-grouped", "-j2", _SLOW_PRINTF, ":::", "0.4", "0.2", "0.1"),
    case("t-results", "--results", "outdir", "echo", ":::", "A", "B", "C"),
    case("t-results-header", "--header", ":", "--results", "outdir", "echo", ":::", "f1", "A", "B",
        ":::", "f2", "C", "D"),
    # Control the execution.
    case("t-timeout", "--timeout", "1.1", "sleep {}; echo {}", ":::", "0.2", "3", "0.3"),
    case("t-joblog", "--joblog", "log", "exit", ":::", "1", "2", "3", "0"),
    case("t-halt-soon", "-j1", "--halt", "soon,fail=1", "echo {}; exit {}", ":::", *"00123"),
    case("t-halt-now", "-j1", "--halt", "now,fail=1", "echo {}; exit {}", ":::", *"00123"),
    case("t-halt-percent", "-j1", "--halt", "soon,fail=20%", "echo {}; exit {}", ":::",
        *"0012345678"),
    case("t-halt-success", "-j1", "--halt", "now,success=1", "echo {}; exit {}", ":::", *"1230456"),
    case("t-retries", "-k", "-j1", "--retries", "3",
        "echo tried {} >>runs; echo completed {}; exit {}", ":::", "1", "2", "0"),
    # --pipe (the tutorial's num1000000, a tenth of it).
    case("t-pipe", "-k", "--pipe", "--block", "100k", "wc", stdin=_NUM100000),
    case("t-pipe-records", "-k", "--pipe", "-N14000", "wc", stdin=_NUM100000),
    case("t-pipe-lines", "-k", "--pipe", "-L75", "wc", stdin=lines_of(*range(1, 1001))),
    case("t-pipe-round-robin", "--pipe", "-j4", "--roundrobin", "--block", "100k", "wc",
        stdin=_NUM100000, count=True),
    case("t-pipe-fixed-length", "-k", "--pipe", "--header", ".{4}", "--block", "3", "--recend", "",
        "echo start; cat; echo", stdin=MANUAL_FIXTURES["fixedlen"]),
    case("t-pipe-recend", "-kN1", "--recend", ", ", "--pipe", "echo JOB{#};cat;echo END",
        stdin=b"/foo, bar/, /baz, qux/,"),
    case("t-pipe-recstart", "-kN1", "--recstart", "/", "--pipe", "echo JOB{#};cat;echo END",
        stdin=b"/foo, bar/, /baz, qux/,"),
    case("t-pipe-recend-recstart", "-kN1", "--recend", ", ", "--recstart", "/", "--pipe",
        "echo JOB{#};cat;echo END", stdin=b"/foo, bar/, /baz, qux/,"),
    case("t-pipe-header-regex", "-k", "--header", "(%.*\\n)*", "--pipe", "-N3", "echo JOB{#};cat",
        stdin=MANUAL_FIXTURES["num_%header"]),
    case("t-pipe-header-lines", "-k", "--header", "2", "--pipe", "-N3", "echo JOB{#};cat",
        stdin=MANUAL_FIXTURES["num_%header"]),
]

EXAMPLES = [
    case("e-touch", "touch", "pict{}.jpg", stdin=b"".join(b"%02d\n" % i for i in range(100))),
    case("e-touch-context", "-X", "touch", "pict{}.jpg",
        stdin=b"".join(b"%02d\n" % i for i in range(100))),
    case("e-multi", "-m", "echo", "rm", stdin=b"".join(b"pict%02d.jpg\n" % i for i in range(20))),
    case("e-null-multi", "-0", "-m", "echo", "mv", "{}", "destdir", stdin=b"a.log\x00b c.log\x00"),
    case("e-ls-count", "-k", 'echo -n {}" "; ls {}|wc -l', stdin=b"dir\nabc-file\n"),
    case("e-if", "-k", "if [ ! -e {} ] ; then echo {}; fi", stdin=b"abc-file\nmissing\n"),
    case("e-test-or", "-k", "[", "-f", "{1}:{2}", "]", "||", "echo", "{1}:{2}", "does", "not",
        "exist", ":::", "a", "b", ":::", "1", "2"),
    case("e-combinations", "-k", "echo", ":::", "0", "1", ":::", "0", "1", ":::", "0", "1"),
    case("e-combinations-sorted", "echo", "{1}", "{2}", ":::", "red", "green", "blue", ":::", "S",
        "M", "L", "XL", "XXL"),
    case("e-link-arg-files", "--link", "-a", "six.txt", "-a", "six-reversed.txt", "echo"),
    case("e-link-files", "--link", "echo", "::::", "six.txt", "six-reversed.txt"),
    case("e-linked-files", "echo", "{1}", "-", "{2}", "::::+", "head.txt", "tail.txt"),
    case("e-seq-names", "-k", "echo", "convert", "{}", "{#}.png", stdin=b"b\na\nc\n"),
    case("e-table", "-a", "table_file.tsv", "--colsep", "\\t", "echo", "-o", "{2}", "-i", "{1}"),
    case("e-table-no-trim", "-a", "table_file.tsv", "--trim", "n", "--colsep", "\\t", "echo", "-o",
        "{2}", "-i", "{1}"),
    case("e-results-csv", "--results", "my.csv", "seq", ":::", "10", "20", "30"),
    case("e-no-arguments", "-n0", "echo", "my_args", stdin=lines_of(*range(1, 11))),
    case("e-commands-file", "-j", "100", stdin=b"echo a\necho b; echo c\nexit 3\n"),
    case("e-pipe-no-recend", "--pipe", "--recend", "", "-k", "--block", "100k", "cksum",
        stdin=_NUM100000),
    case("e-quote-variable", "-q", "echo", "two  spaces", ":::", "!"),
    case("e-double-quoted-variable", "echo", '"$VAR"', ":::", "!", env=_VAR),
    case("e-single-quoted", "echo", "'two  spaces'", ":::", "!"),
    case("e-append", "-k", "echo", "{}", "append_string", stdin=b"line 1\nline 2\n"),
    case("e-pairs", "-N2", "cp", "{1}", "{2}", stdin=b"a.es.txt\na.txt\n"),
    case("e-grep-many", "-k", "-j150%", "-n", "1000", "-m", "grep", "-H", "-n", "B", "{}",
        stdin=b"abc-file\ndef-file\nhead.txt\n"),
]
# fmt: on

CASES: list[Case] = [*TUTORIAL, *EXAMPLES]


@pytest.fixture(autouse=True)
def _tutorial_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manuals' input files beside tests/test_cli_differential.py's own."""
    for name, data in MANUAL_FIXTURES.items():
        monkeypatch.setitem(FIXTURES, name, data)


@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_manual_line_agrees_with_gnu_parallel(item: Case, tmp_path: Path) -> None:
    check_same(item, tmp_path)


def test_the_manual_lines_are_many_and_named_once() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 80 and len(set(ids)) == len(ids)
