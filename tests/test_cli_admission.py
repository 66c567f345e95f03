"""The command line's admission options (--memfree, --load, --delay, --pressure) and
--no-guardian: parsed, checked with a one-line message, passed to the executor, shown on
the progress bar."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from procexec import ProcessExecutor
from procexec._core._resources import _admission, _probes
from procexec.cli import main
from procexec.cli._values import UsageError, parse_duration, parse_load, parse_pressure
from tests._helpers import log_rows, run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memfree", "lots"], "--memfree must be a size like '512M' or '2G', got 'lots'"),
        (["--memfree", "0"], "--memfree must be positive"),
        (["--load", "x"], "--load takes N or N% (of the CPUs), not 'x'"),
        (["--delay", "1x"], "--delay takes seconds, optionally with s, m, h or d, not '1x'"),
        (["--pressure", "disk=5"], "--pressure: unknown resource 'disk'; known: cpu, io, memory"),
        (["--pressure", "memory"], "--pressure takes RESOURCE=PERCENT[,...], not 'memory'"),
        (["--pressure", "memory=500"], "--pressure['memory'] is a percentage: at most 100"),
    ],
)
def test_bad_admission_options_are_one_line_errors(args: list[str], message: str) -> None:
    result = run_cli(*args, "echo", ":::", "1")
    assert result.returncode == 255
    assert result.stderr.strip() == f"procexec: {message}" or message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


@pytest.mark.parametrize(
    ("text", "seconds"), [("1.5", 1.5), ("30s", 30), ("2m", 120), ("1h", 3600), ("1m30s", 90)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text, "--delay") == seconds


def test_load_forms() -> None:
    assert parse_load("3", 8) == 3
    assert parse_load("50%", 8) == 4
    assert parse_load("0", 8) == 0.01  # GNU parallel: 0 means 0.01


def test_pressure_form() -> None:
    assert parse_pressure("memory=10,cpu=50.5") == {"memory": 10, "cpu": 50.5}
    with pytest.raises(UsageError):
        parse_pressure("memory=lots")


def test_delay_spaces_the_starts_in_the_job_log(tmp_path: Path) -> None:
    result = run_cli(
        "-j", "4", "--delay", "0.2", "--joblog", str(tmp_path / "log"), "true", ":::", "1", "2", "3"
    )
    assert result.returncode == 0, result.stderr
    starts = sorted(float(row[2]) for row in log_rows(tmp_path / "log"))
    # The margin: spawn jitter on a loaded machine (see test_admission's delay test).
    assert all(b - a >= 0.2 - 0.02 for a, b in itertools.pairwise(starts)), starts


def test_generous_limits_run_everything() -> None:
    result = run_cli("--load", "1000", "--memfree", "1K", "echo", ":::", "a", "b")
    assert result.returncode == 0 and sorted(result.stdout.split()) == ["a", "b"]


def test_the_bar_shows_why_jobs_wait(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Memory is short for the first looks, then plentiful: the bar says "held: memfree"."""
    looks = iter([1 << 40] + [1024] * 3)  # the first look checks the option is usable
    monkeypatch.setattr(_probes, "mem_available", lambda: next(looks, 1 << 40))
    monkeypatch.setattr(_admission, "SAMPLE_INTERVAL", 0.01)
    monkeypatch.setattr(_admission, "PROBE_TTL", 0.0)
    assert main(["--bar", "--memfree", "1G", "true", ":::", "1", "2"]) == 0
    assert "held: memfree" in capsys.readouterr().err


def test_no_guardian_is_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    import procexec.cli._runner as runner

    real = ProcessExecutor

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("guardian"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "ProcessExecutor", spy)
    assert main(["--no-guardian", "true", ":::", "1"]) == 0
    assert main(["true", ":::", "1"]) == 0
    assert seen == [False, None]
