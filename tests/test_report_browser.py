"""The report rendered by a real browser: headless Chromium loads the page of a 2,000-job log,
runs its script without errors, draws the timeline (pixels of the screenshot), and answers
hover, zoom and reset.

Chromium is Debian's ``chromium`` package, which .ci/run installs; where it is absent these
tests are skipped with that reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup, Tag
from PIL import Image

from procexec.cli import main
from tests._helpers import assert_dies, my_children
from tests._joblogs import Row, batch_rows, write_log

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (.ci/run installs it with apt-get)"
)
JOBS = 2000
SLOTS = 8
WINDOW = (1280, 1600)

#: Appended to a copy of the page: drives the page's own handlers as a user would and
#: writes what it saw into attributes of <html>, which --dump-dom then shows.
DRIVER = """<script>
(function () {
  var root = document.documentElement, bars = document.getElementById("bars").children;
  try {
    var bar = bars[5].getBoundingClientRect();
    bars[5].dispatchEvent(new MouseEvent("mousemove", {bubbles: true,
        clientX: bar.left + bar.width / 2, clientY: bar.top + bar.height / 2}));
    var tip = document.getElementById("tip");
    root.setAttribute("data-test-tip", tip.hidden ? "(hidden)" : tip.textContent);
    var timeline = document.getElementById("timeline"), box = timeline.getBoundingClientRect();
    timeline.dispatchEvent(new WheelEvent("wheel", {deltaY: -600, bubbles: true,
        cancelable: true, clientX: box.left + box.width / 2, clientY: box.top + 5}));
    root.setAttribute("data-test-zoomed", timeline.getAttribute("viewBox"));
    root.setAttribute("data-test-concurrency",
                      document.getElementById("concurrency").getAttribute("viewBox"));
    document.getElementById("zoom-reset").click();
    root.setAttribute("data-test-reset", timeline.getAttribute("viewBox"));
    root.setAttribute("data-test-ticks", String(document.querySelectorAll("#axis text").length));
  } catch (error) {
    root.setAttribute("data-test-error", String(error));
  }
})();
</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium to its end, and reap the helpers it leaves behind: they are
    orphaned to this process, which the test session makes a subreaper."""
    assert CHROMIUM is not None
    before = my_children()
    try:
        return _run_chromium(tmp_path, *args)
    finally:
        for pid in my_children() - before:
            assert_dies(pid)


def _run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # tests may run as root, where the sandbox refuses to start
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("browser")
    log = write_log(directory / "run.log", batch_rows(JOBS, SLOTS))
    assert main(["report", str(log), "-o", str(directory / "report.html")]) == 0
    yield directory / "report.html"


def dumped(tmp_path: Path, page: Path) -> Tag:
    result = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    html = BeautifulSoup(result.stdout, "html.parser").find("html")
    assert isinstance(html, Tag), result.stdout[:500]
    return html


def test_page_runs_its_script_without_errors(tmp_path: Path, report: Path) -> None:
    html = dumped(tmp_path, report)
    assert html.get("data-script-error") is None
    assert html.get("data-ready") == str(JOBS)  # the script ran to its end over every bar
    assert len(html.select("#axis text")) >= 2  # and drew the time axis


def test_hover_zoom_and_reset_work(tmp_path: Path, report: Path) -> None:
    driven = tmp_path / "driven.html"
    driven.write_text(report.read_text().replace("</body>", DRIVER + "</body>"))
    html = dumped(tmp_path, driven)
    assert html.get("data-script-error") is None and html.get("data-test-error") is None
    tip = str(html.get("data-test-tip"))
    assert "convert img-00006.png" in tip and "#6 " in tip and "slot " in tip
    x0, _, width, rows = map(float, str(html.get("data-test-zoomed")).split())
    assert 0 < width < 1_000_000 and rows == SLOTS and 0 <= x0 < 1_000_000
    assert (
        str(html.get("data-test-concurrency")).split()[:3]
        == str(html.get("data-test-zoomed")).split()[:3]
    )  # the two charts zoom together
    assert str(html.get("data-test-reset")) == f"0 0 1000000 {SLOTS}"
    assert int(str(html.get("data-test-ticks"))) >= 2


def test_timeline_is_drawn(tmp_path: Path, report: Path) -> None:
    html = dumped(tmp_path, report)
    left, top, width, height = map(int, str(html.get("data-timeline-box")).split(","))
    shot = tmp_path / "shot.png"
    result = chromium(tmp_path, f"--screenshot={shot}", report.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == WINDOW
        area = image.convert("RGB").crop((left + 2, top + 2, left + width - 2, top + height - 2))
        data = area.tobytes()
    pixels = [(data[i], data[i + 1], data[i + 2]) for i in range(0, len(data), 3)]
    assert len(pixels) > 10_000

    def near(colour: tuple[int, int, int], pixel: tuple[int, int, int]) -> bool:
        return sum(abs(a - b) for a, b in zip(colour, pixel, strict=True)) < 60

    green = sum(near((0x3F, 0x9A, 0x5B), p) for p in pixels)  # "ok" bars
    red = sum(near((0xD6, 0x45, 0x3D), p) for p in pixels)  # "failed" bars
    blank = sum(min(p) > 235 for p in pixels)
    # The batch keeps every slot busy: the area is mostly bars, most of them ok.
    assert green > 0.5 * len(pixels)
    assert red > 0
    assert blank < 0.2 * len(pixels)


# ------------------------------------------------------ what the page shows, measured
#: Appended to a copy of a page: the boxes (left, top, right, bottom, in pixels) of the
#: histogram's marker labels, of the concurrency chart, its dashed max_jobs line and the
#: labels of its scale, written as JSON into an attribute of <html>.
MEASURE = """<script>
(function () {
  function box(el) {
    var r = el.getBoundingClientRect();
    return [r.left, r.top, r.right, r.bottom];
  }
  function labels(selector) {
    return Array.prototype.map.call(document.querySelectorAll(selector), function (el) {
      return {text: el.textContent, box: box(el)};
    });
  }
  document.documentElement.setAttribute("data-test-geometry", JSON.stringify({
    marks: labels("#histogram text.mark-label"),
    lines: labels("#histogram line.mark"),
    scale: labels("#concurrency-yaxis span"),
    chart: box(document.getElementById("concurrency")),
    limit: box(document.querySelector("#concurrency line.limit"))
  }));
})();
</script>"""
#: Slot 1 runs ten 1 s jobs end to end; two 10 s jobs run beside them, so p95 = max.
END_TO_END = [Row(k + 1, 1_800_000_000.0 + k, 1.0, 0, 0, f"short {k}") for k in range(10)] + [
    Row(11 + k, 1_800_000_000.0, 10.0, 0, 0, f"long {k}") for k in range(2)
]
#: Every job takes as long: p50 = p95 = max.
EQUAL = [Row(k + 1, 1_800_000_000.0 + k, 2.0, 0, 0, f"same {k}") for k in range(5)]


def page_of(directory: Path, name: str, rows: list[Row]) -> Path:
    log = write_log(directory / f"{name}.log", rows)
    assert main(["report", str(log), "-o", str(directory / f"{name}.html")]) == 0
    return directory / f"{name}.html"


def geometry(tmp_path: Path, page: Path) -> dict[str, Any]:
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text().replace("</body>", MEASURE + "</body>"))
    html = dumped(tmp_path, measured)
    assert html.get("data-script-error") is None
    result: dict[str, Any] = json.loads(str(html.get("data-test-geometry")))
    return result


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("rows", [END_TO_END, EQUAL], ids=["p95-is-max", "all-equal"])
def test_histogram_mark_labels_never_overlap(tmp_path: Path, rows: list[Row]) -> None:
    found = geometry(tmp_path, page_of(tmp_path, "marks", rows))
    marks = found["marks"]
    assert [m["text"] for m in marks] == ["p50", "p95", "max"]
    for k, mark in enumerate(marks):
        assert mark["box"][2] > mark["box"][0]  # drawn
        for other in marks[k + 1 :]:
            assert not overlap(mark["box"], other["box"]), (mark, other)
    # each label stays near its line, in the same order
    centres = [(m["box"][0] + m["box"][2]) / 2 for m in marks]
    assert centres == sorted(centres)
    for centre, line in zip(centres, found["lines"], strict=True):
        assert abs(centre - (line["box"][0] + line["box"][2]) / 2) < 60


def test_concurrency_chart_has_a_labelled_scale(tmp_path: Path) -> None:
    found = geometry(tmp_path, page_of(tmp_path, "scale", END_TO_END))
    left, top, _, bottom = found["chart"]
    at = {label["text"]: label["box"] for label in found["scale"]}
    assert set(at) == {"0", "3"}  # 0, and max_jobs: the dashed line
    for box in at.values():
        assert box[2] <= left + 1 and box[2] > box[0]  # beside the chart, not over it
    assert abs((at["0"][1] + at["0"][3]) / 2 - bottom) <= 3
    limit_y = (found["limit"][1] + found["limit"][3]) / 2
    assert top < limit_y < bottom
    assert abs((at["3"][1] + at["3"][3]) / 2 - limit_y) <= 3


def test_bars_end_to_end_in_a_row_stay_apart(tmp_path: Path) -> None:
    """Ten bars end to end in slot 1: along the row, ten separate stretches of green."""
    page = page_of(tmp_path, "row", END_TO_END)
    html = dumped(tmp_path, page)
    left, top, width, height = map(int, str(html.get("data-timeline-box")).split(","))
    shot = tmp_path / "row.png"
    result = chromium(tmp_path, f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    middle = top + height // 6  # the middle of the first of three rows
    with Image.open(shot) as image:
        line = image.convert("RGB").crop((left, middle, left + width, middle + 1)).tobytes()
    green = [
        sum(abs(a - b) for a, b in zip(line[i : i + 3], (0x3F, 0x9A, 0x5B), strict=True)) < 60
        for i in range(0, len(line), 3)
    ]
    stretches = sum(1 for k, g in enumerate(green) if g and (k == 0 or not green[k - 1]))
    assert stretches == 10


def test_retries_not_given_read_none(tmp_path: Path) -> None:
    page = tmp_path / "run.html"
    assert main(["--report", str(page), "true", ":::", "a"]) == 0
    html = dumped(tmp_path, page)
    rows = {
        row.select_one("th").get_text(): row.select_one("td").get_text()  # type: ignore[union-attr]
        for row in html.select("#settings tr")
    }
    assert rows["retries"] == "none"
