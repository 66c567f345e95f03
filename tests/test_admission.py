"""Admission: memfree, load, pressure and delay hold jobs back; memfree stops the youngest
job when memory runs short and runs it again later; why jobs wait is visible.

The probes read a directory of fake /proc and cgroup files (the ``fake`` fixture), so no
test depends on this machine's real memory or load. The watch's PSI triggers need the real
/proc: they are tested on it where the kernel allows them.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from procexec import ExecutorStats, ProcessExecutor
from procexec._core._reaper import Reaper
from procexec._core._resources import _admission, _probes
from tests._helpers import Gate, my_children, py

GIB = 1 << 30
#: A job's first act: create a file named after its pid in the directory argv[1].
MARK = "import os, sys\nopen(os.path.join(sys.argv[1], str(os.getpid())), 'w').close()\n"


def _write(path: Path, text: str) -> None:
    """Replace ``path`` at once, as /proc files change: a reader never sees it half written."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


class FakeProc:
    """Fake /proc/meminfo, /proc/loadavg, /proc/pressure/* and cgroup files."""

    def __init__(self, root: Path) -> None:
        self.proc = root / "proc"
        self.cgroup = root / "cgroup"
        (self.proc / "pressure").mkdir(parents=True)
        self.cgroup.mkdir()
        self.memory(8 * GIB)
        self.load(1)
        for resource in ("cpu", "io", "memory"):
            self.pressure(resource, 0.0)

    def memory(self, available: int) -> None:
        kib = available // 1024
        _write(
            self.proc / "meminfo",
            f"MemTotal:       16000000 kB\nMemFree:         1000 kB\nMemAvailable:   {kib} kB\n",
        )

    def load(self, running: int) -> None:
        _write(self.proc / "loadavg", f"0.50 0.40 0.30 {running + 1}/300 12345\n")

    def pressure(self, resource: str, avg10: float) -> None:
        _write(
            self.proc / "pressure" / resource,
            f"some avg10={avg10:.2f} avg60=0.00 avg300=0.00 total=1\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
        )


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProc]:
    f = FakeProc(tmp_path)
    monkeypatch.setattr(_probes, "PROC", f.proc)
    monkeypatch.setattr(_probes, "CGROUP", f.cgroup)
    monkeypatch.setattr(_probes, "open_trigger", lambda resource, percent: None)
    monkeypatch.setattr(_admission, "SAMPLE_INTERVAL", 0.02)
    monkeypatch.setattr(_admission, "MEMFREE_INTERVAL", 0.02)
    yield f


class Held:
    """An on_held callback that lets a test wait for a reason."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []
        self._changed = threading.Condition()

    def __call__(self, reason: str | None) -> None:
        with self._changed:
            self.seen.append(reason)
            self._changed.notify_all()

    def wait_for(self, reason: str | None, timeout: float = 30) -> None:
        with self._changed:
            ok = self._changed.wait_for(lambda: self.seen and self.seen[-1] == reason, timeout)
        assert ok, f"never held by {reason!r}: {self.seen}"


def wait_until(predicate: object, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


@pytest.mark.parametrize(
    ("option", "hold", "release", "reason"),
    [
        ({"memfree": "2G"}, lambda f: f.memory(GIB), lambda f: f.memory(4 * GIB), "memfree"),
        ({"load": 4}, lambda f: f.load(9), lambda f: f.load(1), "load"),
        (
            {"pressure": {"memory": 10}},
            lambda f: f.pressure("memory", 55.5),
            lambda f: f.pressure("memory", 2.0),
            "pressure:memory",
        ),
        (
            {"pressure": {"io": 20, "cpu": 50}},
            lambda f: f.pressure("cpu", 60),
            lambda f: f.pressure("cpu", 10),
            "pressure:cpu",
        ),
    ],
)
def test_jobs_wait_while_the_machine_has_no_room(  # noqa: PLR0917  # parametrized
    fake: FakeProc,
    reaper_path: str,
    option: dict[str, Any],
    hold: object,
    release: object,
    reason: str,
) -> None:
    hold(fake)  # type: ignore[operator]
    held = Held()
    with ProcessExecutor(2, on_held=held, **option) as ex:
        futures = [ex.submit(["true"]) for _ in range(3)]
        held.wait_for(reason)
        assert ex.stats() == ExecutorStats(running=0, queued=3, held_by=reason)
        assert not any(f.running() or f.done() for f in futures)
        release(fake)  # type: ignore[operator]
        held.wait_for(None)
    assert [f.result() for f in futures] == [0, 0, 0]
    assert ex.stats() == ExecutorStats(running=0, queued=0, held_by=None)


def test_cgroup_memory_limit_counts(fake: FakeProc) -> None:
    fake.memory(8 * GIB)
    (fake.cgroup / "memory.max").write_text(f"{GIB}\n")
    (fake.cgroup / "memory.current").write_text(f"{GIB - 100 * 1024 * 1024}\n")
    assert _probes.mem_available() == 100 * 1024 * 1024
    (fake.cgroup / "memory.max").write_text("max\n")
    assert _probes.mem_available() == 8 * GIB


def test_cgroup_v1_memory_limit_counts(fake: FakeProc) -> None:
    v1 = fake.cgroup / "memory"
    v1.mkdir()
    (v1 / "memory.limit_in_bytes").write_text(f"{2 * GIB}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{GIB}\n")
    assert _probes.mem_available() == GIB
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # no limit
    assert _probes.mem_available() == 8 * GIB


def test_load_counts_running_processes_other_than_the_reader(fake: FakeProc) -> None:
    fake.load(7)
    assert _probes.running_processes() == 7


def test_delay_spaces_the_starts(reaper_path: str) -> None:
    held = Held()
    with ProcessExecutor(4, delay=0.1, on_held=held) as ex:
        futures = [ex.submit(["true"]) for _ in range(4)]
    starts = sorted(f.started_at for f in futures)  # type: ignore[type-var]
    gaps = [b - a for a, b in itertools.pairwise(starts)]  # type: ignore[operator]
    # A lower bound, not a wall time. The delay runs from when each job is handed to its
    # lane; the spawn after that can take a few ms longer for one job than for the next
    # on a loaded machine (CI saw 0.095 s), hence the margin. Without the delay the gaps
    # are about a millisecond.
    assert all(gap >= 0.1 - 0.02 for gap in gaps), gaps
    assert "delay" in held.seen


def test_memfree_stops_the_youngest_job_and_runs_it_again_later(
    fake: FakeProc, reaper_path: str, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Two jobs start while memory is free; then it falls under half of memfree: the
    younger is stopped and queued again, and it starts again only once the other ended."""
    first_gate, second_gate = Gate(), Gate()
    marks = tmp_path / "marks"
    marks.mkdir()
    job = MARK + "sys.stdin.read()"
    try:
        with ProcessExecutor(2, memfree="2G") as ex:
            older = ex.submit([*py(job), str(marks)], stdin=first_gate.read_fd)
            assert older.wait_started(30)
            younger = ex.submit([*py(job), str(marks)], stdin=second_gate.read_fd)
            assert younger.wait_started(30)
            wait_until(lambda: len(os.listdir(marks)) == 2)
            fake.memory(GIB // 2)  # under half of 2G
            wait_until(lambda: ex.stats().queued == 1)
            assert ex.stats() == ExecutorStats(running=1, queued=1, held_by="memfree")
            assert younger.running() and not younger.done()  # its future is still running
            fake.memory(4 * GIB)
            assert ex.stats().queued == 1  # held until another job ends
            first_gate.open()
            assert older.result(timeout=30) == 0
            wait_until(lambda: len(os.listdir(marks)) == 3)  # started again
            second_gate.open()
        assert younger.result() == 0
        assert younger.requeues == 1 and older.requeues == 0
        assert "stopping the youngest job" in caplog.text
    finally:
        first_gate.close()
        second_gate.close()
    assert not my_children() - {os.getpid()}


def test_run_result_says_it_was_requeued(fake: FakeProc, tmp_path: Path) -> None:
    first_gate, second_gate = Gate(), Gate()
    marks = tmp_path / "marks"
    marks.mkdir()
    job = MARK + "print(sys.stdin.read())"
    try:
        with ProcessExecutor(2, memfree="2G") as ex:
            older = ex.submit([*py(job), str(marks)], stdin=first_gate.read_fd)
            wait_until(lambda: len(os.listdir(marks)) == 1)
            younger = ex.run([*py(job), str(marks)], stdin=second_gate.read_fd, capture_output=True)
            wait_until(lambda: len(os.listdir(marks)) == 2)
            fake.memory(GIB // 2)
            wait_until(lambda: ex.stats().queued == 1)
            fake.memory(4 * GIB)
            first_gate.open()
            second_gate.open()
        result = younger.result()
        assert result.returncode == 0 and result.requeues == 1
        assert older.result() == 0
    finally:
        first_gate.close()
        second_gate.close()


def test_memory_hungry_children_under_a_lowered_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Real children that allocate real memory, on a virtual machine of 650 MiB: the probe
    is 650 MiB minus what the running children really use (VmRSS). Each child takes 300
    MiB; memfree is 300 MiB: the second starts (about 340 MiB are left), but its growth
    takes memory under 150 MiB, so it is stopped, and it runs again (to the end) after the
    first has ended."""
    mib = 1 << 20
    monkeypatch.setattr(_admission, "MEMFREE_INTERVAL", 0.02)
    monkeypatch.setattr(_admission, "SAMPLE_INTERVAL", 0.02)

    def rss_of_children() -> int:
        total = 0
        for pid in my_children():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    monkeypatch.setattr(_probes, "mem_available", lambda: 650 * mib - rss_of_children())
    hungry = (
        "import os, sys, time\n"
        "b = bytearray(300 << 20)\n"
        "b[::4096] = b'x' * len(b[::4096])\n"
        "open(os.path.join(sys.argv[1], str(os.getpid())), 'w').close()\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.01)\n"
    )
    marks, release = tmp_path / "marks", tmp_path / "release"
    marks.mkdir()
    with ProcessExecutor(2, memfree=300 * mib) as ex:
        first = ex.submit([*py(hungry), str(marks), str(release / "first")])
        wait_until(lambda: len(os.listdir(marks)) == 1)
        second = ex.submit([*py(hungry), str(marks), str(release / "second")])
        wait_until(lambda: second.requeues == 1)
        release.mkdir()
        (release / "first").touch()
        assert first.result(timeout=60) == 0
        wait_until(lambda: len(os.listdir(marks)) >= 2)
        (release / "second").touch()
    assert second.result() == 0 and second.requeues == 1 and first.requeues == 0


def test_no_sampling_while_nothing_is_held(fake: FakeProc, gate: Gate) -> None:
    """With nothing held back (and no memfree watch), the watch waits without a timeout."""
    timeouts: list[float | None] = []

    class Recording(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            timeouts.append(timeout)
            return super().wait(timeout)

    with ProcessExecutor(2, load=1000) as ex:
        ex._reaper._admission._poke = Recording()  # type: ignore[union-attr]
        future = ex.submit(["cat"], stdin=gate.read_fd)
        assert future.wait_started(30)
        wait_until(lambda: bool(timeouts))
        assert timeouts == [None]
        gate.open()


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"memfree": "lots"}, ValueError, "memfree must be a size like '512M'"),
        ({"memfree": 0}, ValueError, "memfree must be positive"),
        ({"memfree": 1.5}, TypeError, "memfree must be a number of bytes"),
        ({"load": 0}, ValueError, "load must be a positive number"),
        ({"load": "2"}, TypeError, "load must be a number"),
        ({"pressure": {"disk": 5}}, ValueError, "unknown resource 'disk'; known: cpu, io"),
        ({"pressure": {"memory": 150}}, ValueError, "a percentage: at most 100"),
        ({"pressure": 10}, TypeError, "pressure must be a dict"),
        ({"delay": -1}, ValueError, "delay must be a non-negative number"),
        ({"delay": "1s"}, TypeError, "delay must be a number of seconds"),
    ],
)
def test_bad_admission_arguments(options: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        ProcessExecutor(1, **options)


def test_a_missing_probe_fails_at_the_constructor(fake: FakeProc) -> None:
    (fake.proc / "pressure" / "io").unlink()
    with pytest.raises(OSError, match=r"pressure \(reads /proc/pressure/io\) is not available"):
        ProcessExecutor(1, pressure={"io": 5})


def test_a_failing_on_held_is_logged_and_jobs_still_run(
    fake: FakeProc, caplog: pytest.LogCaptureFixture
) -> None:
    fake.memory(GIB)
    calls: list[str | None] = []

    def broken(reason: str | None) -> None:
        calls.append(reason)
        if reason is not None:
            fake.memory(4 * GIB)
        raise RuntimeError("callback bug")

    with caplog.at_level(logging.ERROR, logger="procexec"):
        with ProcessExecutor(1, memfree="2G", on_held=broken) as ex:
            future = ex.submit(["true"])
        assert future.result() == 0
    assert "memfree" in calls and "the on_held callback failed" in caplog.text


def _psi_triggers_allowed() -> bool:
    fd = _probes.open_trigger("memory", 100)
    _probes.close_trigger(fd)
    return fd is not None


@pytest.mark.skipif(
    not _psi_triggers_allowed(),
    reason="this kernel or sandbox refuses PSI triggers; the sampling path covers the watch",
)
def test_psi_trigger_on_the_real_proc() -> None:
    """A real trigger is accepted, and one that needs tasks stalled for the whole window
    stays quiet through a short wait."""
    fd = _probes.open_trigger("memory", 100)
    assert fd is not None
    try:
        assert _probes.quiet_window(fd, 0.05) is True
    finally:
        _probes.close_trigger(fd)


def test_pressure_wait_uses_the_trigger_when_there_is_one(
    fake: FakeProc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Held by pressure, the watch waits on the trigger for a window, not on a timer."""
    waited: list[tuple[int, float]] = []
    read_end, write_end = os.pipe()
    trigger = os.dup(read_end)  # the watch's own fd: its thread closes it when it ends
    monkeypatch.setattr(_probes, "open_trigger", lambda resource, percent: trigger)

    def quiet(fd: int, timeout: float) -> bool:
        waited.append((fd, timeout))
        fake.pressure("memory", 1.0)  # the window passed quietly
        return True

    monkeypatch.setattr(_probes, "quiet_window", quiet)
    fake.pressure("memory", 50)
    with ProcessExecutor(1, pressure={"memory": 10}) as ex:
        assert ex.submit(["true"]).result(timeout=30) == 0
    assert waited and waited[0] == (trigger, _probes.PSI_WINDOW_US / 1e6)
    os.close(read_end)
    os.close(write_end)


def test_sizes() -> None:
    assert _admission.parse_size("1.5G", "x") == 3 << 29
    assert _admission.parse_size("512m", "x") == 512 << 20
    assert _admission.parse_size("2KiB", "x") == 2048
    assert _admission.parse_size(10, "x") == 10
    assert _admission.parse_size("1P", "x") == 1 << 50


def test_executors_without_admission_have_no_watch() -> None:
    with ProcessExecutor(1) as ex:
        assert ex._reaper._admission is None
        assert ex.submit([sys.executable, "-c", "pass"]).result() == 0
        assert ex.stats().held_by is None


def test_a_probe_that_fails_later_admits_with_a_warning(
    fake: FakeProc, caplog: pytest.LogCaptureFixture
) -> None:
    fake.memory(GIB)
    held = Held()
    with ProcessExecutor(1, memfree="2G", on_held=held) as ex:
        future = ex.submit(["true"])
        held.wait_for("memfree")
        (fake.proc / "meminfo").unlink()
    assert future.result() == 0
    assert "cannot read memfree" in caplog.text


def test_the_watch_survives_its_own_failure(
    fake: FakeProc, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake.memory(GIB)
    failures = iter([RuntimeError("injected watch bug")])

    def flaky_recheck(self: Reaper) -> None:
        error = next(failures, None)
        if error is not None:
            raise error
        fake.memory(4 * GIB)
        real_recheck(self)

    real_recheck = Reaper.recheck
    monkeypatch.setattr(Reaper, "recheck", flaky_recheck)
    with ProcessExecutor(1, memfree="2G") as ex:
        future = ex.submit(["true"])
    assert future.result() == 0
    assert "the admission watch failed" in caplog.text


def test_a_failing_probe_warns_once_per_cause(
    fake: FakeProc, caplog: pytest.LogCaptureFixture
) -> None:
    """Read a thousand times, a broken probe warns once; again when the cause changes, and
    when it fails again after it could be read."""
    admission = _admission.make_admission(memfree="1G", load=100)
    assert admission is not None

    def look(times: int) -> None:
        for _ in range(times):
            admission.check(time.monotonic() + 3600 * next(clock))

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    clock = itertools.count(1)
    with caplog.at_level(logging.INFO, logger="procexec"):
        (fake.proc / "meminfo").unlink()
        (fake.proc / "loadavg").write_text("garbage\n")
        look(1000)
        assert len(warnings()) == 2, warnings()
        assert "memfree (FileNotFoundError" in warnings()[0]
        assert "load (IndexError" in warnings()[1]
        (fake.proc / "meminfo").write_text("MemTotal: 1 kB\n")  # another cause
        look(1000)
        assert len(warnings()) == 3 and "no MemAvailable" in warnings()[2]
        fake.memory(8 * GIB)
        look(10)
        assert "memfree can be read again" in caplog.text
        (fake.proc / "meminfo").unlink()
        look(1000)
    assert len(warnings()) == 4, warnings()
