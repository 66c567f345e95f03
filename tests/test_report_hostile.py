"""``procexec report`` on logs nobody should have written (issue 31): non-finite and huge
numbers, JSON nested 50,000 deep, wrong types. Every one is read into a report or refused
with one line naming the file (and the line, for a bad row); none is a traceback."""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from procexec.cli import main
from tests._joblogs import HEADER

ROW = "1\t:\t{start}\t{runtime}\t0\t0\t0\t0\techo a\n"
GOOD = {"seq": 1, "command": "x", "start": 1.0, "end": 2.0}


def report(*files: tuple[str, str]) -> tuple[int, str]:
    """Run ``procexec report --summary`` over files (name, content) in a fresh directory:
    (status, stderr)."""
    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for name, content in files:
            path = Path(directory) / name
            path.write_text(content, encoding="utf-8", errors="surrogateescape")
            paths.append(str(path))
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            status = main(["report", "--summary", *paths, "-o", f"{directory}/r.html"])
        if status == 0:
            assert Path(f"{directory}/r.html").stat().st_size > 0
        return status, err.getvalue()


def assert_refused(status: int, err: str, where: str) -> None:
    """Status 255 and one line naming the file and ``where`` (a line number...)."""
    assert status == 255, err
    assert err.count("\n") == 1 and err.startswith("procexec report: "), err
    assert where in err, err


def nested_attempts(depth: int) -> str:
    """A sidecar line whose ``earlier`` attempts nest ``depth`` deep."""
    attempt = '[{"seq": 1, "command": "x", "start": 1, "end": 2, "earlier": '
    inner = attempt * depth + "[]" + "}]" * depth
    return f'{{"seq": 1, "command": "x", "start": 1, "end": 2, "earlier": {inner}}}\n'


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e308", "-1e308", "1e400", "1e13"])
@pytest.mark.parametrize("column", ["start", "runtime"])
def test_a_job_log_time_that_is_not_a_time_is_refused(column: str, value: str) -> None:
    fields = {"start": "1000.5", "runtime": "1.0", column: value}
    status, err = report(("log", HEADER + ROW.format(**fields)))
    assert_refused(status, err, "log line 2: not a job log row")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ('{"seq": 1, "command": "x", "start": Infinity, "end": 2}', "Infinity"),
        ('{"seq": 1, "command": "x", "start": 1, "end": NaN}', "NaN"),
        ('{"seq": 1, "command": "x", "start": 1, "end": 1e400}', "end must be"),
        ('{"seq": 1, "command": "x", "start": -1e300, "end": 1}', "start must be"),
        ('{"seq": 1, "command": "x", "start": 1, "end": 2, "cpu": -Infinity}', "Infinity"),
        ('{"seq": 1, "command": "x", "start": 1, "end": 2, "cpu": 1e400}', "cpu must be"),
        ('{"seq": 1e400, "command": "x", "start": 1, "end": 2}', "seq must be"),
        ('{"seq": 1, "command": "x", "start": 1, "end": 2, "pid": 1' + "0" * 30 + "}", "pid"),
    ],
)
def test_a_sidecar_number_that_is_not_finite_or_too_large_is_refused(line: str, why: str) -> None:
    status, err = report(("good.jsonl", json.dumps(GOOD) + "\n" + line + "\n"))
    assert_refused(status, err, "good.jsonl line 2: not a job record")
    assert why in err


@pytest.mark.parametrize("depth", [2, 1_000, 50_000])
def test_attempts_nested_in_attempts_are_refused(depth: int) -> None:
    status, err = report(("s.jsonl", json.dumps(GOOD) + "\n" + nested_attempts(depth)))
    assert_refused(status, err, "s.jsonl line 2: not a job record")


def test_json_nested_50000_deep_is_refused() -> None:
    deep = '{"seq": 1, "command": "x", "start": 1, "end": 2, "host": ' + "[" * 50_000
    status, err = report(("s.jsonl", deep + "]" * 50_000 + "}\n"))
    assert_refused(status, err, "s.jsonl line 1: not a job record (nested too deeply)")


def test_keys_some_objects_lack_are_read() -> None:
    lines = [{**GOOD, "cpu": 0.5, "slot": None}, {**GOOD, "seq": 2}, {**GOOD, "seq": 3, "cpu": 2}]
    status, err = report(("s.jsonl", "".join(json.dumps(line) + "\n" for line in lines)))
    assert status == 0, err


def test_odd_but_valid_records_make_a_report() -> None:
    """A lone surrogate escape in a command, a wall time of 5e-324 s, a slot of 10**9:
    drawn, not refused, and quickly (no stripe per slot)."""
    lines = [
        {"seq": 1, "command": "bad \ud800 text", "start": 0.0, "end": 5e-324, "slot": 10**9},
        {"seq": 2, "command": "x", "start": 0.0, "end": 0.0, "slot": 1},
    ]
    status, err = report(("s.jsonl", "".join(json.dumps(line) + "\n" for line in lines)))
    assert status == 0, err


# ------------------------------------------------------------------------------ fuzz
NUMBER_TEXTS = ["inf", "-inf", "nan", "NaN", "1e308", "1e400", "-1e308", "9" * 5000, "1_0",
                "0x10", "", " 1", "1e-400", "5e-324", "-0"]  # fmt: skip
field = st.one_of(
    st.sampled_from(NUMBER_TEXTS),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(exclude_characters="\t\n\r"), max_size=20),
)
number = st.one_of(st.sampled_from(NUMBER_TEXTS), st.floats().map(repr), st.integers().map(str))
whole = st.one_of(st.integers(-2, 300).map(str), number)
#: Rows with the job log's nine columns, hostile numbers in them; and rows of any shape.
log_row = st.one_of(
    st.tuples(whole, st.just(":"), number, number, whole, whole, whole, whole, field),
    st.lists(field, min_size=0, max_size=11),
).map(lambda fields: "\t".join(fields) + "\n")


def sane_seconds(text: str) -> bool:
    try:
        return abs(float(text)) <= 1e12
    except ValueError:
        return False


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
KEYS = ["seq", "command", "start", "end", "exit", "signal", "timed_out", "slot", "host",
        "pid", "attempts", "cpu", "max_rss", "max_rss_upper", "error", "earlier"]  # fmt: skip
sidecar_object = st.dictionaries(st.sampled_from(KEYS), json_value).map(
    lambda extra: {**GOOD, **extra}
)


def sidecar_line(data: Any) -> str:
    return json.dumps(data, allow_nan=True) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(log_row, max_size=6))
def test_fuzz_job_log_rows(rows: list[str]) -> None:
    status, err = report(("fuzz.log", HEADER + "".join(rows)))
    if status != 0:
        assert_refused(status, err, "fuzz.log line ")
    else:  # every row was read: each time was a time
        assert all(sane_seconds(f) for row in rows for f in row.split("\t")[2:4])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    objects=st.lists(sidecar_object, min_size=1, max_size=5),
    depth=st.sampled_from([0, 0, 0, 3, 2_000, 50_000]),
)
def test_fuzz_sidecar_objects(objects: list[dict[str, Any]], depth: int) -> None:
    lines = [sidecar_line(data) for data in objects]
    if depth:
        lines.append(nested_attempts(depth))
    status, err = report(("fuzz.jsonl", "".join(lines)))
    if status != 0:
        assert_refused(status, err, "fuzz.jsonl line ")
    else:  # every object was read: each number was in bounds
        assert all(sane_object(data) for data in objects)


def sane_object(data: dict[str, Any]) -> bool:
    """Whether the numbers of a sidecar object are finite and within the bounds."""
    for key, value in data.items():
        if key in KEYS and type(value) in (int, float):
            limit = 1e12 if key in ("start", "end", "cpu") else 2**63
            if not (math.isfinite(value) and abs(value) <= limit):
                return False
    return all(sane_object(e) for e in data.get("earlier", []) if isinstance(e, dict))
