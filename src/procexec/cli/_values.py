"""Option values read as GNU parallel reads them: job counts, durations, sizes and counts
with their suffixes, ``--halt``, ``--term-seq``, and the escapes of separators and tags."""

from __future__ import annotations

import re
import signal


class UsageError(Exception):
    """Bad command-line input: reported in one line, exit status 255."""


class Halt:
    """When to stop early: ``when`` is "soon" or "now"; ``kind`` fail/success/done."""

    __slots__ = ("count", "kind", "percent", "when")

    when: str
    kind: str
    count: int
    percent: bool

    def __init__(self, when: str, kind: str, count: int, percent: bool) -> None:
        self.when = when
        self.kind = kind
        self.count = count
        self.percent = percent

    def __repr__(self) -> str:
        return f"Halt({self.when!r}, {self.kind!r}, {self.count}, percent={self.percent})"

    def reached(self, failed: int, succeeded: int, total: int) -> bool:
        """Whether the condition holds after these outcomes (of ``total`` jobs)."""
        value = {"fail": failed, "success": succeeded, "done": failed + succeeded}[self.kind]
        if self.percent:
            return total > 0 and value * 100 >= self.count * total
        return value >= self.count


def parse_jobs(text: str, cpus: int) -> int:
    """``-j``: N, N% of the CPUs, +N or -N relative to the CPUs; at least 1."""
    match = re.fullmatch(r"([+-]?)(\d+)(%?)", text.strip())
    if match is None:
        raise UsageError(f"-j/--jobs takes N, N%, +N or -N, not {text!r}")
    sign, number, percent = match.group(1), int(match.group(2)), match.group(3)
    if percent:
        jobs = cpus * number // 100
    elif sign == "+":
        jobs = cpus + number
    elif sign == "-":
        jobs = cpus - number
    else:
        jobs = number
    if jobs < 1:
        raise UsageError(f"-j/--jobs {text} gives {jobs} jobs; it must give at least 1")
    return jobs


def parse_load(text: str, cpus: int) -> float:
    """``--load``: N processes, or N% of the CPUs (100% is one per CPU); 0 means 0.01."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(%?)", text.strip())
    if match is None:
        raise UsageError(f"--load takes N or N% (of the CPUs), not {text!r}")
    load = float(match.group(1)) * (cpus / 100 if match.group(2) else 1)
    return load if load > 0 else 0.01


_DURATION = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> float:
    """Seconds from ``1.5``, ``30s``, ``2m``, ``1h``, ``1d`` or a sum such as ``1m30s``."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip().lower())
    if not parts or "".join(a + b for a, b in parts) != text.strip().lower():
        raise UsageError(f"{option} takes seconds, optionally with s, m, h or d, not {text!r}")
    return sum(float(number) * _DURATION[unit] for number, unit in parts)


def parse_timeout(text: str) -> tuple[float | None, float | None]:
    """``--timeout``: seconds (with s/m/h/d), or N% of the median runtime of the jobs that
    succeeded; returns (seconds, percent), one of them None."""
    if text.strip().endswith("%"):
        number = text.strip()[:-1]
        if not re.fullmatch(r"\d+(?:\.\d+)?", number) or not float(number) > 0:
            raise UsageError(f"--timeout N% takes a positive percentage, not {text!r}")
        return None, float(number)
    seconds = parse_duration(text, "--timeout")
    if not seconds > 0:
        raise UsageError(f"--timeout must be more than 0 seconds, not {text!r}")
    return seconds, None


def parse_pressure(text: str) -> dict[str, float]:
    """``--pressure``: ``memory=10,cpu=50,io=20`` (percentages of "some avg10")."""
    limits: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            limits[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"--pressure takes RESOURCE=PERCENT[,...], not {text!r}")
    return limits


_SHORT_HALTS = {
    "1": "soon,fail=1",
    "2": "now,fail=1",
    "-1": "soon,success=1",
    "-2": "now,success=1",
}


def parse_halt(text: str) -> Halt | None:
    """``--halt``: never (or 0), soon|now,fail|success|done=N or N%, or GNU parallel's
    short forms 1 (soon,fail=1), 2 (now,fail=1), -1 and -2 (the same for success), and N%
    (soon,fail=N%)."""
    if text in ("never", "0"):
        return None
    text = _SHORT_HALTS.get(text, text)
    if re.fullmatch(r"\d+%", text):
        text = f"soon,fail={text}"
    match = re.fullmatch(r"(soon|now),(fail|success|done)=(\d+)(%?)", text)
    if match is None:
        raise UsageError(
            f"--halt takes never, 0, 1, 2, N% or soon|now,fail|success|done=N[%], not {text!r}"
        )
    count = int(match.group(3))
    if count < 1:
        raise UsageError(f"--halt {text}: the count must be at least 1")
    return Halt(match.group(1), match.group(2), count, bool(match.group(4)))


#: This pattern and _PRINTF_ESCAPE are compiled when first used (by re's cache): only
#: some options need them.
_GNU_SIZE = r"(\d+(?:\.\d*)?)(?:([kmgtpKMGTP])(i?))?"


def parse_size(text: str, option: str) -> int:
    """A size or count as GNU parallel reads it: ``k``, ``m``, ``g``, ``t``, ``p`` are powers
    of 1000, ``K``, ``M``... and ``ki``, ``Mi``... powers of 1024 (``1k`` is 1000, ``1K`` and
    ``1ki`` 1024)."""
    match = re.fullmatch(_GNU_SIZE, text.strip())
    if match is None:
        raise UsageError(
            f"{option} takes a number, optionally with k, K, m, M, g, G..., not {text!r}"
        )
    number, unit, binary = match.groups()
    if unit is None:
        return int(float(number))
    power = "kmgtp".index(unit.lower()) + 1
    base = 1024 if binary or unit.isupper() else 1000
    return int(float(number) * base**power)


def parse_term_seq(text: str) -> list[tuple[int, float]]:
    """``--term-seq``: GNU parallel's ``TERM,200,KILL,25`` (signal names, milliseconds)."""
    parts = text.split(",")
    if len(parts) % 2:
        parts.append("0")
    steps: list[tuple[int, float]] = []
    for name, millis in zip(parts[::2], parts[1::2], strict=True):
        try:
            signum = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
        except KeyError:
            raise UsageError(f"--term-seq: {name} is not a signal name (TERM, KILL...)") from None
        if not millis.isdigit():
            raise UsageError(f"--term-seq: {millis} is not a number of milliseconds (0 or more)")
        steps.append((int(signum), int(millis) / 1000))
    return steps


def unquote_printf(text: str) -> str:
    """GNU parallel's reading of ``--tagstring`` and ``-d``: ``\\t``, ``\\n``, ``\\r`` and
    octal ``\\NNN`` or ``\\N`` become the characters they name."""
    return re.sub(_PRINTF_ESCAPE, _printf_character, text)


_PRINTF_ESCAPE = r"\\([tnr]|[0-7]{3}|[0-9])"


def _printf_character(match: re.Match[str]) -> str:
    code = match.group(1)
    named = {"t": "\t", "n": "\n", "r": "\r"}.get(code)
    if named is not None:
        return named
    return chr(int(code, 8)) if code[0] < "8" else code  # \8, \9: not octal, the digit


def unescape(text: str) -> bytes:
    """A separator given on the command line as bytes (``\\n``, ``\\0``, ``\\t`` understood)."""
    return text.encode("utf-8", "surrogateescape").decode("unicode_escape").encode("latin-1")
