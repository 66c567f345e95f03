"""The HTML run report: records from logs and futures, the figures, and the page's content
checked against the log by parsing it (tests/test_report_browser.py renders it)."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import math
import re
import signal
import statistics
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any, cast

import pytest
from bs4 import BeautifulSoup, Tag
from hypothesis import given, settings
from hypothesis import strategies as st

from procexec import CallFuture, ProcessExecutor
from procexec.report import JobRecord, ReportError, analyse, read_records, write_html
from procexec.report._stats import (
    assign_slots,
    concurrency,
    failure_groups,
    peak_concurrency,
    percentile,
)
from procexec.report._summary import summary_lines
from tests._helpers import Gate, py
from tests._joblogs import HEADER, Row, batch_rows, write_log


def soup_of(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def bars(soup: BeautifulSoup) -> list[Tag]:
    group = soup.find(id="bars")
    assert isinstance(group, Tag)
    return group.find_all("rect")


def card(soup: BeautifulSoup, key: str) -> float:
    element = soup.find("dd", attrs={"data-key": key})
    assert isinstance(element, Tag)
    return float(str(element["data-value"]))


def page_data(soup: BeautifulSoup) -> dict[str, object]:
    script = soup.find("script", id="jobs-data")
    assert isinstance(script, Tag) and script.string is not None
    data = json.loads(script.string)
    assert isinstance(data, dict)
    return data


# ------------------------------------------------------------------- the page content
def test_page_has_one_bar_per_job_coloured_by_outcome(tmp_path: Path) -> None:
    rows = batch_rows(300, slots=4)
    out = tmp_path / "r.html"
    write_html(read_records(str(write_log(tmp_path / "log", rows))), out, max_jobs=4)
    soup = soup_of(out)
    drawn = bars(soup)
    assert len(drawn) == len(rows)
    assert [rect["class"] for rect in drawn] == [[row.outcome] for row in rows]
    counts = Counter(row.outcome for row in rows)
    for item in soup.select("#legend li"):
        assert int(str(item["data-count"])) == counts.get(str(item["data-outcome"]), 0)
    assert {o for o in counts} >= {"ok", "failed", "signal", "timeout"}  # the mix is there


def test_bars_span_each_job_from_start_to_end(tmp_path: Path) -> None:
    rows = batch_rows(200, slots=3)
    out = tmp_path / "r.html"
    write_html(read_records(str(write_log(tmp_path / "log", rows))), out)
    soup = soup_of(out)
    t0 = min(r.start for r in rows)
    wall = max(r.start + r.runtime for r in rows) - t0
    span = int(str(soup.find(id="timeline")["viewbox"]).split()[2])  # type: ignore[index]
    for row, rect in zip(rows, bars(soup), strict=True):
        x, width = float(str(rect["x"])), float(str(rect["width"]))
        assert x == pytest.approx((row.start - t0) / wall * span, abs=1)
        assert x + width == pytest.approx((row.start + row.runtime - t0) / wall * span, abs=1.5)
    # Slots inferred from the times: no two bars of a row overlap, and rows <= peak.
    by_row: dict[str, list[tuple[float, float]]] = {}
    for rect in bars(soup):
        x, w = float(str(rect["x"])), float(str(rect["width"]))
        by_row.setdefault(str(rect["y"]), []).append((x, x + w))
    assert len(by_row) == 3
    for spans in by_row.values():
        spans.sort()
        assert all(a[1] <= b[0] + 2 for a, b in itertools.pairwise(spans))


def test_colours_are_distinct_and_match_the_legend(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    write_html([], out)
    css = soup_of(out).style.string  # type: ignore[union-attr]
    assert css is not None
    colours = {}
    for outcome in ("ok", "retried", "failed", "signal", "timeout"):
        colours[outcome] = re.search(rf"--{outcome}: (#[0-9a-f]{{6}})", css).group(1)  # type: ignore[union-attr]
        rule = re.search(rf"\.swatch\.{outcome}, rect\.{outcome} \{{([^}}]*)\}}", css)
        assert rule is not None and f"fill: var(--{outcome})" in rule.group(1)
        assert f"background: var(--{outcome})" in rule.group(1)
    assert len(set(colours.values())) == 5


def test_totals_and_utilization_match_an_independent_computation(tmp_path: Path) -> None:
    rows = batch_rows(500, slots=6, seed=3)
    out = tmp_path / "r.html"
    write_html(read_records(str(write_log(tmp_path / "log", rows))), out, max_jobs=8)
    soup = soup_of(out)
    t0 = min(r.start for r in rows)
    wall = max(r.start + r.runtime for r in rows) - t0
    busy = sum(r.runtime for r in rows)
    assert card(soup, "utilization") == pytest.approx(busy / (8 * wall), rel=1e-9)
    assert card(soup, "wall") == pytest.approx(wall)
    assert card(soup, "busy") == pytest.approx(busy)
    assert card(soup, "jobs") == 500 and card(soup, "max_jobs") == 8
    assert card(soup, "failed") == sum(r.outcome != "ok" for r in rows)
    assert card(soup, "rate") == pytest.approx(500 / wall)
    assert "unknown" in soup.find("dd", attrs={"data-key": "cpu"}).text  # type: ignore[union-attr]
    ordered = sorted(r.runtime for r in rows)
    # Durations are end - start at epoch magnitudes: exact to about a microsecond.
    assert card(soup, "p50") == pytest.approx(statistics.median(ordered), abs=1e-6)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    assert card(soup, "p95") == pytest.approx(cuts[94], abs=1e-6)
    assert card(soup, "max") == pytest.approx(ordered[-1])


def test_slowest_ten_and_failures_grouped(tmp_path: Path) -> None:
    rows = batch_rows(400, slots=4, seed=11)
    out = tmp_path / "r.html"
    write_html(read_records(str(write_log(tmp_path / "log", rows))), out)
    soup = soup_of(out)
    expected = sorted(rows, key=lambda r: (-r.runtime, r.seq))[:10]
    listed = [int(tr.find("td").text) for tr in soup.select("#slowest tbody tr")]  # type: ignore[union-attr]
    assert listed == [r.seq for r in expected]

    def kind(row: Row) -> str:
        if row.exitval == -1:
            return "timed out"
        return "killed by SIGKILL" if row.signum == 9 else f"exit {row.exitval}"

    groups = Counter(kind(r) for r in rows if r.outcome != "ok")
    shown = {
        str(d["data-kind"]): int(str(d["data-count"])) for d in soup.select("#failures details")
    }
    assert shown == dict(groups)
    for details in soup.select("#failures details"):
        commands = {code.text for code in details.find_all("code")}
        assert commands == {
            r.command for r in rows if r.outcome != "ok" and kind(r) == details["data-kind"]
        }


def test_hover_data_matches_the_log(tmp_path: Path) -> None:
    rows = batch_rows(50, slots=2)
    out = tmp_path / "r.html"
    write_html(read_records(str(write_log(tmp_path / "log", rows))), out)
    data = page_data(soup_of(out))
    cmd = data["cmd"]
    assert isinstance(cmd, dict)
    commands = [cmd["prefix"] + middle + cmd["suffix"] for middle in cmd["middle"]]
    assert commands == [r.command for r in rows]
    assert data["seq"] == [r.seq for r in rows]
    assert data["dur"] == [round(r.runtime * 1e6) for r in rows]
    assert data["timed_out"] == [k for k, r in enumerate(rows) if r.exitval == -1]


def test_page_is_self_contained_and_escapes_commands(tmp_path: Path) -> None:
    evil = "echo '</script><script>alert(1)</script>' & <b>\"x\"</b>"
    rows = [Row(1, 1e9, 1.0, 1, 0, evil), Row(2, 1e9 + 0.5, 1.0, 0, 0, "true")]
    out = tmp_path / "r.html"
    write_html(read_records(str(write_log(tmp_path / "log", rows))), out)
    text = out.read_text()
    soup = BeautifulSoup(text, "html.parser")
    assert len(soup.find_all("script")) == 2  # the data and the page's own script
    assert not soup.find_all("b", string='"x"')  # not markup
    assert evil in {code.text for code in soup.find_all("code")}
    data = page_data(soup)
    assert data["cmd"]["prefix"] + data["cmd"]["middle"][0] + data["cmd"]["suffix"] == evil  # type: ignore[index]
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<link" not in text and "@import" not in text and "url(" not in text


def test_ten_thousand_jobs_fit_in_about_a_megabyte(tmp_path: Path) -> None:
    rows = batch_rows(10_000, slots=8)
    out = tmp_path / "r.html"
    records = [
        JobRecord(
            seq=r.seq,
            command=r.command,
            start=r.start,
            end=r.start + r.runtime,
            exit=r.exitval,
            slot=None,
            pid=100_000 + r.seq,
            cpu=r.runtime / 2,
            max_rss=2**25,
        )
        for r in rows
    ]
    write_html(records, out)
    assert out.stat().st_size < 1_100_000
    assert len(bars(soup_of(out))) == 10_000


# ------------------------------------------------------------------ logs and sidecars
def test_gnu_parallel_columns_read(tmp_path: Path) -> None:
    rows = [
        Row(1, 100.0, 2.5, 0, 0, "ok\tcmd"),
        Row(2, 100.1, 1.0, -1, 15, "sleep 9"),
        Row(3, 100.2, 0.1, 0, 9, "kill -9 $$"),
        Row(4, 100.3, 0.2, 3, 0, "exit 3"),
    ]
    records = read_records(str(write_log(tmp_path / "log", rows)))
    assert [r.outcome for r in records] == ["ok", "timeout", "signal", "failed"]
    assert records[0].command == "ok\tcmd" and records[0].duration == pytest.approx(2.5)
    assert [r.status_text for r in records] == [
        "exit 0",
        "timed out (SIGTERM)",
        "SIGKILL",
        "exit 3",
    ]
    assert all(r.host == "" and r.slot is None for r in records)


def test_a_row_cut_off_by_a_crash_is_left_out(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text(HEADER + Row(1, 1.0, 1.0, 0, 0, "a").line() + "2\t:\t2.0\t  ")
    assert [r.seq for r in read_records(str(log))] == [1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("hello\n", "neither a GNU parallel job log"),
        ("", "neither a GNU parallel job log"),
        (HEADER + "1\t:\tnot-a-time\t1\t0\t0\t0\t0\tx\n", "line 2: not a job log row"),
        (HEADER + "1\t:\t1.0\t1.0\n", "line 2: not a job log row (4 columns, not 9)"),
        ('{"seq": 1, "command": "x", "start": 1, "end": 2}\n[1]\n', "line 2: not a job record"),
        ('{"seq": "one", "command": "x", "start": 1, "end": 2}\n', "line 1: not a job record"),
        ('{"seq": 1, "start": 1, "end": 2}\n', "line 1: not a job record (no command)"),
        (
            '{"seq": 1, "command": "x", "start": 1, "end": 2, "cpu": "lots"}\n',
            "line 1: not a job record (cpu must be a number or null, not 'lots')",
        ),
        (
            '{"seq": 1, "command": "x", "start": 1, "end": 2, "exit": true}\n',
            "line 1: not a job record (exit must be an integer or null, not True)",
        ),
        (
            '{"seq": 1, "command": "x", "start": 1, "end": 2, "earlier": [{"seq": 1}]}\n',
            "line 1: not a job record (no command, end, start)",
        ),
    ],
)
def test_bad_logs_are_one_clear_error(tmp_path: Path, content: str, message: str) -> None:
    log = tmp_path / "log"
    log.write_text(content)
    with pytest.raises(ReportError, match=re.escape(message)):
        read_records(str(log))
    with pytest.raises(ReportError, match=r"cannot read .*missing: No such file"):
        read_records(str(tmp_path / "missing"))


def test_sidecar_completes_the_log_rows(tmp_path: Path) -> None:
    log = write_log(tmp_path / "log", [Row(1, 10.0, 1.0, 0, 0, "a"), Row(2, 10.5, 1.0, 4, 0, "b")])
    extra = JobRecord(
        seq=2,
        command="b",
        start=10.5,
        end=11.5,
        exit=4,
        slot=2,
        pid=42,
        attempts=3,
        cpu=0.25,
        max_rss=2**20,
        host="node7",
    )
    sidecar = tmp_path / "log.jsonl"
    sidecar.write_text(json.dumps(extra.to_json()) + "\n")
    records = read_records(str(log), str(sidecar))
    assert records[0].seq == 1 and records[0].pid is None
    assert records[1] == extra
    assert read_records(str(sidecar)) == [extra]


def test_retried_attempts_are_drawn_and_counted(tmp_path: Path) -> None:
    first = JobRecord(seq=1, command="x", start=0.0, end=2.0, exit=1, slot=1, attempts=1)
    job = JobRecord(seq=1, command="x", start=2.5, end=3.0, slot=1, attempts=2, earlier=(first,))
    other = JobRecord(seq=2, command="y", start=0.0, end=3.0, slot=2)
    assert JobRecord.from_json(json.loads(json.dumps(job.to_json()))) == job
    out = tmp_path / "r.html"
    batch = write_html([job, other], out, max_jobs=2)
    assert [run.kind for run in batch.runs] == ["retried", "ok", "ok"]
    assert batch.failed == 0 and batch.counts["retried"] == 1
    assert batch.utilization == pytest.approx((2.0 + 0.5 + 3.0) / (2 * 3.0))
    soup = soup_of(out)
    assert [rect["class"] for rect in bars(soup)] == [["retried"], ["ok"], ["ok"]]
    assert card(soup, "jobs") == 2 and card(soup, "runs") == 3
    assert page_data(soup)["att"] == {"1": 2}


# ----------------------------------------------------------------- from Python futures
def test_write_html_from_futures_knows_every_ending(tmp_path: Path, gate: Gate) -> None:
    with ProcessExecutor(2, term_sequence=[(signal.SIGTERM, 5)]) as ex:
        futures = [
            ex.submit(py("pass")),
            ex.run(py("raise SystemExit(3)"), capture_output=True),
            ex.submit(["sleep", "60"], timeout=0.05),
            ex.submit(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")),
            ex.submit(["/no/such/program"]),
            ex.run(
                py("import sys; sys.stdout.buffer.write(b'\\xff')"),
                capture_output=True,
                text=True,
                encoding="utf-8",
            ),
            ex.run(py("raise SystemExit(5)"), check=True),
        ]
        blocker = ex.submit(["cat"], stdin=gate.read_fd)
        assert blocker.wait_started(30)
        blocker2 = ex.submit(["cat"], stdin=gate.read_fd)
        cancelled = ex.submit(py("pass"))
        assert cancelled.cancel()
        gate.open()
    out = tmp_path / "r.html"
    batch = write_html([*futures, blocker, blocker2, cancelled], out, max_jobs=2)
    outcomes = [r.outcome for r in batch.records]
    assert outcomes == [
        "ok",
        "failed",
        "timeout",
        "signal",
        "failed",
        "failed",
        "failed",
        "ok",
        "ok",
    ]
    not_found, undecodable, checked = batch.records[4], batch.records[5], batch.records[6]
    assert not_found.exit == 127 and not_found.error is not None
    assert not_found.error.startswith("FileNotFoundError") and not_found.pid is None
    assert undecodable.exit == 0 and undecodable.error is not None
    assert undecodable.error.startswith("UnicodeDecodeError")
    assert checked.exit == 5 and checked.error is None
    assert all(r.cpu is not None and r.max_rss_upper for r in batch.records if r.pid is not None)
    assert len(bars(soup_of(out))) == 9  # the cancelled job never ran: no bar


def test_python_calls_show_in_the_report_by_their_functions_name(tmp_path: Path) -> None:
    from tests import _call_targets as targets

    with ProcessExecutor(2) as ex:
        futures: list[concurrent.futures.Future[Any]] = [
            ex.submit(py("pass")),
            ex.submit_call(targets.burn, 0.05),
            ex.submit_call(targets.raise_value_error, "bad mesh"),
            ex.run_call(targets.sleep_then, (1, 30), timeout=0.2),
            ex.submit_call(targets.kill_self),
        ]
        for future in futures:
            future.exception(timeout=60)
    out = tmp_path / "r.html"
    batch = write_html(futures, out, max_jobs=2)
    _, burnt, raised, slow, killed = batch.records
    assert [r.kind for r in batch.records] == ["command", *["call"] * 4]
    assert (burnt.command, burnt.outcome, burnt.pid) == (
        "burn",
        "ok",
        cast(CallFuture[Any], futures[1]).pid,
    )
    assert burnt.cpu is not None and burnt.cpu >= 0.04 and burnt.max_rss
    assert raised.outcome == "failed" and raised.error == "ValueError: bad mesh"
    assert slow.outcome == "timeout" and slow.command == "sleep_then"
    assert killed.outcome == "signal" and killed.signal == signal.SIGKILL
    assert JobRecord.from_json(json.loads(json.dumps(burnt.to_json()))) == burnt
    assert burnt.to_json()["kind"] == "call"
    assert page_data(soup_of(out))["calls"] == [1, 2, 3, 4]


def test_write_html_refuses_what_it_cannot_report(tmp_path: Path, gate: Gate) -> None:
    with ProcessExecutor(1) as ex:
        running = ex.submit(["cat"], stdin=gate.read_fd)
        with pytest.raises(ReportError, match="job 1 is not done"):
            write_html([running], tmp_path / "r.html")
        gate.open()
    with pytest.raises(ReportError, match="job 1: expected a future"):
        write_html(["ls"], tmp_path / "r.html")
    completed = subprocess.run(["true"], check=True)
    with pytest.raises(ReportError, match="expected a future"):
        write_html([completed], tmp_path / "r.html")


# --------------------------------------------------------------------------- figures
spans_strategy = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 500)).map(
        lambda t: (t[0] / 100, (t[0] + t[1]) / 100)
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(spans_strategy)
def test_inferred_slots_never_overlap_and_are_as_few_as_possible(
    spans: list[tuple[float, float]],
) -> None:
    slots = assign_slots(spans)
    by_slot: dict[int, list[tuple[float, float]]] = {}
    for span, slot in zip(spans, slots, strict=True):
        by_slot.setdefault(slot, []).append(span)
    for runs in by_slot.values():
        runs.sort()
        assert all(a[1] <= b[0] + 0.001 for a, b in itertools.pairwise(runs))
    records = [JobRecord(seq=1, command="", start=a, end=b) for a, b in spans]
    # Greedy by start time is optimal: exactly as many slots as jobs ever overlapped.
    assert max(slots, default=0) == peak_concurrency(records)
    assert sorted(set(slots)) == list(range(1, max(slots, default=0) + 1))


@settings(max_examples=200, deadline=None)
@given(spans_strategy.filter(bool), st.integers(1, 50))
def test_concurrency_buckets_add_up_to_the_busy_time(
    spans: list[tuple[float, float]], buckets: int
) -> None:
    records = [JobRecord(seq=k, command="", start=a, end=b) for k, (a, b) in enumerate(spans)]
    batch = analyse(records)
    levels = concurrency(batch, buckets)
    if batch.wall > 0:
        assert math.fsum(levels) * batch.wall / buckets == pytest.approx(batch.busy, abs=1e-6)
        assert max(levels) <= batch.peak + 1e-9
    assert batch.utilization <= 1 + 1e-9


@given(st.lists(st.floats(0, 1e6), min_size=2, max_size=50), st.integers(1, 99))
def test_percentiles_interpolate_like_statistics_inclusive(values: list[float], p: int) -> None:
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    assert percentile(ordered, p) == pytest.approx(cuts[p - 1], rel=1e-9, abs=1e-6)


def test_empty_batch_and_single_job() -> None:
    empty = analyse([])
    assert empty.utilization == 0 and empty.peak == 0 and empty.wall == 0
    assert summary_lines(empty) == ["procexec: no job ran"]
    one = analyse([JobRecord(seq=1, command="x", start=5.0, end=5.0)])
    assert one.peak == 1 and one.max_jobs == 1 and one.utilization == 0


def test_summary_lines(tmp_path: Path) -> None:
    rows = batch_rows(100, slots=4, seed=5)
    batch = analyse(read_records(str(write_log(tmp_path / "log", rows))), 4)
    lines = summary_lines(batch)
    failed = sum(r.outcome != "ok" for r in rows)
    assert lines[0].startswith("procexec: 100 jobs in ")
    assert f": {100 - failed} ok, {failed} failed; 4 slots, " in lines[0]
    assert "p50 " in lines[1] and "p95 " in lines[1] and "max " in lines[1]
    slow = sorted(rows, key=lambda r: (-r.runtime, r.seq))[:3]
    assert [int(re.search(r"#(\d+)", line).group(1)) for line in lines[2:5]] == [  # type: ignore[union-attr]
        r.seq for r in slow
    ]
    kind, members = failure_groups(batch.records)[0]
    assert lines[5].startswith(f"  most common failure: {kind} ({len(members)} jobs)")
