"""The same command lines run with GNU parallel and with procexec must agree: standard
output (line order compared only where the case fixes it, with -k or -j1; only the number
of lines where the packing of -X/-m may differ by a few bytes), the exit status, standard
error where a case asks (``parallel:`` read as ``procexec:``), and every file left in the
working directory (job logs compared on their Seq, Exitval, Signal and Command columns,
``--results`` JSON/CSV files without their times, the rest being times, hosts and sizes).
Each tool runs in a directory of its own holding the same input files.

``CASES`` hold the command lines of issues 18 and 32 (each of issue 32's points is a case
named ``p<N>-...``); tests/test_cli_manuals.py runs lines from GNU parallel's own manuals
the same way.

GNU parallel is installed by .ci/run; the module is skipped (with that reason) where it
is not, so the cases run in CI on every push.
"""

from __future__ import annotations

import csv
import io
import json
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
    "three.txt": b"1\n2\n3\n",
    "eleven.txt": b"11\n12\n",
    "nul.bin": b"one two\0three\nfour\0",
    "cols.csv": b"a,b,c\nd,e,f\n",
    "dir/file.txt": b"in a dir\n",
    "crlf.txt": b"x\r\ny\r\n",
    "jobs.txt": b"2\n",
}


@dataclass(frozen=True)
class Case:
    """One command line: its arguments and stdin; ``ordered``: compare the line order;
    ``count``: compare only the number of output lines; ``stderr``: compare it too."""

    id: str
    args: tuple[str, ...]
    stdin: bytes = b""
    ordered: bool = False
    env: tuple[tuple[str, str], ...] = ()
    count: bool = False
    stderr: bool = False


def case(
    id: str,
    *args: str,
    stdin: bytes = b"",
    env: tuple[tuple[str, str], ...] = (),
    count: bool = False,
    stderr: bool = False,
) -> Case:
    """A case; its output order is compared when it runs with -k or -j1."""
    ordered = any(arg in ("-k", "-j1", "--keep-order") or arg.startswith("-k") for arg in args)
    return Case(id, args, stdin, ordered, env, count, stderr)


def lines_of(*values: object) -> bytes:
    """Input of one line per value."""
    return b"".join(f"{value}\n".encode() for value in values)


BASH = (("PARALLEL_SHELL", "/bin/bash"),)

#: Issue 32: each numbered point's smallest command line (GNU parallel's newer test suite
#: and manuals), and the forms around it.
_SEQ5 = lines_of(*range(1, 6))
_BARRIER = 'touch started.{#}; while [ "$(ls started.* | wc -l)" -lt 2 ]; do sleep 0.01; done; '
# fmt: off
ISSUE_32 = [
    # 1. --verbose is -t: the command on stderr; -v prints it on stdout.
    case("p01-verbose-on-stderr", "-k", "--verbose", "echo", ":::", "A", stderr=True),
    case("p01-t-on-stderr", "-k", "-t", "echo", ":::", "A", "b c", stderr=True),
    case("p01-v-on-stdout", "-k", "-v", "echo", ":::", "A"),
    # 2. A replacement string in the command word is not quoted: the value is the command.
    case("p02-value-is-the-command", "-k", "{}", stdin=b"ls dir/file.txt\n"),
    case("p02-value-in-the-command-word", "-k", "l{}", stdin=b"s dir/file.txt\n"),
    case("p02-positional-command", "-k", "{1} {2}", ":::", "echo a", ":::", "b;echo c"),
    # 3. Without a shell, a missing value is no argument (a shell drops it too).
    case("p03-missing-column-no-shell", "--colsep", ",", "echo", "{1}", "{3}", "{2}", ":::", "a,b"),
    case("p03-no-arguments-no-shell", "-k", "-N0", "echo", "x", "{}", "y", ":::", "a"),
    # 4. -q runs an exported function through the shell.
    case("p04-quote-mode-function", "-k", "-q", "f", ":::", "a b", env=BASH),
    # 5. --pipe -n N: N records a block.
    case("p05-pipe-max-args", "-k", "-n2", "--pipe", "cat;echo -", stdin=lines_of(1, 2, 3)),
    # 6. --pipe -r: blank lines dropped, no job for nothing.
    case("p06-pipe-no-run-if-empty", "-r", "-N1", "--pipe", "echo job", stdin=b"\n"),
    case("p06-pipe-blank-lines", "-k", "-r", "-N1", "--pipe", "cat;echo -", stdin=b"a\n \n\nb\n"),
    # 7. --recstart alone: --recend is empty.
    case("p07-recstart-alone", "-k", "--recstart", "/", "--pipe", "-N1", "echo J;cat",
        stdin=b"/a,/b\n"),
    case("p07-recstart-blocks", "-k", "--recstart", "/", "--pipe", "--block", "6", "cat; echo",
        stdin=b"/aaaa/bbbb/cccc"),
    # 8. Blocks end at the last record end before --block; k is 1000, K 1024.
    case("p08-block-boundaries", "-k", "--block", "3", "--pipe", "wc", "-l", stdin=_SEQ5),
    case("p08-block-1k", "-k", "--block", "1k", "--pipe", "wc", "-c", stdin=lines_of(*range(600))),
    case("p08-block-1K", "-k", "--block", "1K", "--pipe", "wc", "-c", stdin=lines_of(*range(600))),
    case("p08-first-record-empty", "-k", "--pipe", "-N1", "cat; echo -", stdin=b"\na\nb\n"),
    # 9. {%} in --tagstring with --pipe (both jobs wait until both run: slots 1 and 2).
    case("p09-slot-in-pipe-tagstring", "-j2", "-k", "--pipe", "-N2", "--tagstring", "{%}",
        _BARRIER + "cat", stdin=lines_of(1, 2, 3, 4)),
    # 10. A record longer than the block: a warning, the block grows.
    case("p10-record-longer-than-block", "-k", "--block", "10", "--pipe", "wc", "-c",
        stdin=b"x" * 100 + b"\n" + b"y\n", stderr=True),
    case("p10-lines-longer-than-block", "-k", "--pipe", "-L", "2", "--block", "3", "cat;echo -",
        stdin=_SEQ5, stderr=True),
    # 11. --tagstring understands \t and the like.
    case("p11-tagstring-escapes", "-k", "--tagstring", "a\\tb", "echo", ":::", "x"),
    # 12. -X repeats a --tagstring word for each argument.
    case("p12-context-tagstring", "-j1", "-X", "--tagstring", "a{}b", "echo", ":::", "3", "4"),
    # 13. -X/-m pack each job's line within the limit (GNU parallel's), past one argument.
    case("p13-multi-packs", "-m", "-j1", "echo", "a{}b{}c", stdin=lines_of(*range(1, 30001)),
        count=True),
    case("p13-context-packs", "-Xj1", "echo" + " {}" * 14 + " | wc -l",
        stdin=lines_of(*range(1, 3851)), count=True),
    # 14. -j0 with -X: whole combinations, one a job.
    case("p14-jobs-zero-context", "-j0", "-kX", "echo", "{1}-{2}", ":::", "a", "b", ":::", "c",
        "d"),
    case("p14-context-combinations", "-j2", "-kX", "echo", "{1}-{2}", ":::", "a", "b", ":::", "c",
        "d"),
    case("p14-multi-combinations", "-j1", "-km", "echo", "x{}y", ":::", "a", "b", ":::", "c", "d"),
    case("p14-spread-the-rest", "-j2", "-kX", "-n3", "echo", ":::", *"abcdefgh"),
    # 15. -n caps -m.
    case("p15-one-per-job-multi", "-k", "-n1", "-m", "echo", stdin=b"l1\nl2\nl3\n"),
    # 16. ::::+ pairs each file with the source before it.
    case("p16-linked-files", "-k", "echo", "::::+", "three.txt", "three.txt"),
    case("p16-linked-files-after-values", "-k", "echo", ":::", "a", "b", "::::+", "more.txt",
        "eleven.txt"),
    case("p16-linked-first", "-k", "echo", ":::+", "a", "b"),
    # 17. -E leaving every source empty: no job.
    case("p17-eof-empties-every-source", "-E", "3", "echo", ":::", "3", "4", ":::", "3", "5"),
    case("p17-eof-empties-one-source", "-k", "-E", "3", "echo", ":::", "3", ":::", "a", "b"),
    # 18. ::: values are cut at the delimiter (-d, or a newline).
    case("p18-delimiter-on-values", "-k", "-d", " ", "echo", ":::", "1 done"),
    case("p18-newline-in-a-value", "-k", "echo", "{#}", "{}", ":::", "a\nb", "c\n"),
    case("p18-delimiter-keeps-empty", "-k", "-d", ",", "echo", "[{}]", ":::", "a,,b", "c,"),
    # 19. --header names take the modifiers; a CRLF header loses its CR.
    case("p19-header-modifiers", "-k", "--header", ":", "echo", "{v/.}", "{v//}", "{v/}", "{v.}",
        ":::", "v", "dir/a.b.c"),
    case("p19-header-crlf", "-k", "--colsep", ",", "--header", ":", "echo", "{foo}",
        stdin=b"foo\r\nbar\r\n"),
    case("p19-header-crlf-no-colsep", "-k", "--header", ":", "echo", "{foo}",
        stdin=b"foo\r\nbar\r\n"),
    case("p19-header-regex", "-k", "--header", ".*", "echo", "{f1}-{f2}", ":::", "f1", "A", ":::",
        "f2", "B"),
    case("p19-header-tagstring", "-k", "--header", ":", "--tagstring", "<{f1}>", "echo", ":::",
        "f1", "A", "B"),
    # 20. --results: a template, header names, a value too long, JSON and CSV.
    case("p20-results-template", "--results", "out_{}", "echo", ":::", "a", "b"),
    case("p20-results-template-dir", "--results", "o/{}/", "echo", ":::", "a"),
    case("p20-results-header-names", "--header", ":", "--results", "out", "echo", ":::", "col", "A",
        "B"),
    case("p20-results-header-order", "--header", ":", "--results", "q", "echo", ":::", "h", "a",
        ":::", "g", "b"),
    case("p20-results-long-value", "--results", "long", "echo", ":::", "x" * 300),
    case("p20-results-json", "--results", "r.json", "echo {}; echo e >&2; exit {#}", ":::", "a",
        'b"\tc'),
    case("p20-results-csv", "--results", "r.csv", "printf", "'%s\n'", ":::", "a b", "c,d", ":::",
        "x"),
    case("p20-results-tsv", "--results", "r.tsv", "echo", ":::", "a", "b"),
    # 21. After a halt no job starts (the second waits 300 s for its --delay turn).
    case("p21-no-start-after-halt", "--delay", "300", "-j2", "--halt", "now,fail=1",
        "touch f{}; exit {}", ":::", "1", "2"),
    # 22. Values GNU parallel takes: a leading -, sizes, 0, a file, N%, an empty --recend.
    case("p22-tagstring-dash", "-k", "--tagstring", "-{}-", "echo", ":::", "a"),
    case("p22-replace-dash", "-k", "-I", "-X-", "echo", "-X-", ":::", "a"),
    case("p22-jobs-minus", "-k", "-j", "-1", "echo", ":::", "a"),
    case("p22-count-suffix", "-k", "-N", "1k", "echo", ":::", "a", "b"),
    case("p22-n-zero", "-k", "-n0", "echo", "x", ":::", "a", "b"),
    case("p22-L-zero", "-k", "-L0", "echo", "x", ":::", "a", "b"),
    case("p22-jobs-file", "-k", "-j", "jobs.txt", "echo", ":::", "a", "b"),
    case("p22-halt-percent", "-k", "--halt", "20%", "exit {}", ":::", *"010000"),
    case("p22-halt-percent-not-reached", "-j1", "--halt", "soon,fail=50%", "exit {}", ":::",
        *"0100"),
    case("p22-recend-empty", "-k", "--pipe", "--recend", "", "-n", "1", "cat;echo", stdin=b"abc"),
    case("p22-blanks-in-braces", "-k", "echo", "{1 }", "{-1 /}", "{ 1 }", ":::", "a/b"),
    case("p22-bundled-options", "-kj1", "-N2", "echo", ":::", "a", "b", "c"),
    case("p22-attached-values", "--jobs=1", "-n1", "--tagstring=t", "echo", ":::", "a", "b"),
    # -L n: n lines, a line ending in a blank continued by the next.
    case("L-continued", "-k", "-L1", "echo", stdin=b"a \nb\nc\nd\n"),
    case("L-lines", "-k", "-L", "2", "echo", stdin=b"a\n\nb\nc\n"),
    case("L-context", "-k", "-L2", "echo", "x{}y", stdin=b"a\nb\nc\n"),
    case("L-positional", "-k", "-L2", "echo", "{1}-{2}-{3}", stdin=b"a b\nc d\ne\n"),
    case("L-crlf-continued", "-k", "-L1", "printf", "'<%s>'", "::::", "crlf.txt"),
    case("L-pipe-lines", "-k", "--pipe", "-L", "3", "cat;echo -", stdin=lines_of(*range(8))),
    case("L-pipe-records", "-k", "--pipe", "-L", "2", "-N", "2", "cat;echo -",
        stdin=lines_of(*range(9))),
    # --header REGEX with --pipe: the header goes to every job first.
    case("header-pipe-lines", "-k", "--pipe", "--header", "2", "-N2", "cat;echo -",
        stdin=b"h1\nh2\n1\n2\n3\n"),
    case("header-pipe-regex", "-k", "--pipe", "--header", "h.\\n", "-N2", "cat;echo -",
        stdin=b"h1\nh2\n1\n2\n3\n"),
    case("header-pipe-first-line", "-k", "--pipe", "--header", ":", "-N1", "cat;echo -",
        stdin=b"h\n1\n2\n"),
    case("header-pipe-no-match", "-k", "--pipe", "--header", "X", "cat;echo -", stdin=b"a\nb\n"),
    case("header-zero-file-names", "-k", "--header", "0", "echo", "{more.txt}-{three.txt}", "::::",
        "more.txt", "three.txt"),
    # -r drops blank values from each source (then an empty source gives one empty value).
    case("no-run-if-empty-sources", "-r", "-k", "echo", "{1}-{2}", ":::", "a", "", "c", ":::", "b",
        " ", "d"),
    case("no-run-if-empty-a-source-empties", "-r", "-k", "echo", "{1}-{2}", ":::", "", ":::", "b"),
    case("no-run-if-empty-linked", "-r", "-k", "--link", "echo", "{1}-{2}", ":::", "a", " ", "c",
        ":::", "", "x", "y"),
    case("trim-cr", "-k", "--colsep", ",", "echo", "<{1}>", ":::", "a\r,b"),
    case("delimiter-empty-paragraphs", "-k", "-d", "", "echo", "[{}]", stdin=b"a\nb\n\n\nc\n"),
    case("delimiter-many-bytes", "-k", "-d", "ab", "echo", "[{}]", stdin=b"1ab2aab3a"),
]
# fmt: on

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
    *ISSUE_32,
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


#: The columns of a --results JSON/CSV row that hold times (they never agree).
_TIMES = ("Starttime", "JobRuntime")


def _files(root: Path) -> dict[str, object]:
    """Every file under ``root`` and its content (a job log: the columns that can agree;
    a --results JSON or CSV file: its rows without their times)."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            name = str(path.relative_to(root))
            if path.name == "log":
                rows = [line.split(b"\t") for line in data.splitlines()]
                found[name] = sorted((r[0], r[6], r[7], r[8]) for r in rows)
            elif path.suffix == ".json":
                found[name] = sorted(_without_times(json.loads(line)) for line in data.splitlines())
            elif path.suffix in (".csv", ".tsv"):
                found[name] = _table_without_times(data, "," if path.suffix == ".csv" else "\t")
            else:
                found[name] = data
    return found


def _without_times(row: dict[str, object]) -> str:
    return json.dumps({key: value for key, value in row.items() if key not in _TIMES})


def _table_without_times(data: bytes, separator: str) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(data.decode()), delimiter=separator))
    drop = {rows[0].index(column) for column in _TIMES if rows and column in rows[0]}
    kept = [[field for i, field in enumerate(row) if i not in drop] for row in rows]
    return kept[:1] + sorted(kept[1:])


def _lines(output: bytes, ordered: bool) -> list[bytes]:
    lines = output.splitlines()
    return lines if ordered else sorted(lines)


def _stderr(output: bytes) -> list[bytes]:
    return sorted(output.replace(b"parallel: ", b"procexec: ").splitlines())


def check_same(item: Case, tmp_path: Path) -> None:
    """Run ``item`` with GNU parallel and with procexec; assert they agree."""
    (tmp_path / "gnu").mkdir()
    (tmp_path / "ours").mkdir()
    theirs = _run([str(PARALLEL), "--will-cite"], item, tmp_path / "gnu")
    ours = _run([sys.executable, "-m", "procexec"], item, tmp_path / "ours")
    if item.count:
        assert len(ours.stdout.splitlines()) == len(theirs.stdout.splitlines())
    else:
        assert _lines(ours.stdout, item.ordered) == _lines(theirs.stdout, item.ordered), (
            ours.stderr.decode()
        )
    assert ours.returncode == theirs.returncode, ours.stderr.decode()
    if item.stderr:
        assert _stderr(ours.stderr) == _stderr(theirs.stderr)
    assert _files(tmp_path / "ours") == _files(tmp_path / "gnu")


@pytest.mark.parametrize("item", CASES, ids=[c.id for c in CASES])
def test_same_as_gnu_parallel(item: Case, tmp_path: Path) -> None:
    check_same(item, tmp_path)


def test_enough_cases() -> None:
    assert len(CASES) >= 60
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids)
    points = {int(i[1:3]) for i in ids if i[0] == "p" and i[1:3].isdigit()}
    assert points >= set(range(1, 24)) - {10, 23}  # 10: bench.cli; 23: test_cli's bad input


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
