"""How many jobs run: the usable CPUs counted as loky counts them (affinity, the cgroup's
CPU bandwidth in either cgroup version, ``LOKY_MAX_CPU_COUNT``), and ``-j FILE`` read
again only when it changed and still holds a job count."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from procexec.cli import _machine
from procexec.cli._machine import JobsFile, cpu_count
from procexec.cli._values import UsageError


def test_the_cpu_count_is_lokys() -> None:
    from loky import cpu_count as lokys

    assert cpu_count() == lokys()


@pytest.fixture
def cgroup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake cgroup files: v2's cpu.max and v1's quota and period, none written yet."""
    monkeypatch.setattr(_machine, "CGROUP_V2_CPU_MAX", str(tmp_path / "cpu.max"))
    v1 = (str(tmp_path / "cfs_quota_us"), str(tmp_path / "cfs_period_us"))
    monkeypatch.setattr(_machine, "CGROUP_V1_CPU", v1)
    monkeypatch.delenv("LOKY_MAX_CPU_COUNT", raising=False)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({}, 64),  # no cgroup files: the machine's
        ({"cpu.max": "max 100000\n"}, 64),
        ({"cpu.max": "250000 100000\n"}, 3),  # 2.5 CPUs of bandwidth: 3 jobs
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cfs_quota_us": "200000\n", "cfs_period_us": "100000\n"}, 2),
        ({"cfs_quota_us": "-1\n", "cfs_period_us": "100000\n"}, 64),
        ({"cpu.max": "garbage\n"}, 64),
    ],
    ids=["none", "v2-max", "v2-quota", "v2-small", "v1-quota", "v1-none", "unreadable"],
)
def test_the_cgroup_bandwidth_limits_the_cpus(
    cgroup: Path, files: dict[str, str], cpus: int
) -> None:
    for name, text in files.items():
        (cgroup / name).write_text(text)
    assert _machine._cgroup_cpus(64) == cpus


def test_loky_max_cpu_count_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    assert cpu_count() == 1


def test_a_jobs_file_is_read_again_only_when_it_changed(tmp_path: Path) -> None:
    path = tmp_path / "jobs"
    path.write_text("3\n")
    jobs = JobsFile.named(str(path), None)
    assert jobs is not None and jobs.current == 3
    assert jobs.reread() == 3
    path.write_text("5\n\n")  # another size: changed whatever the clock's resolution
    assert jobs.reread() == 5
    path.write_text("lots\n")  # not a job count: the last good one is kept
    assert jobs.reread() == 5
    path.unlink()
    assert jobs.reread() == 5
    assert JobsFile.named("4", None) is None  # a number, not a file


def test_a_jobs_file_without_a_job_count_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "jobs"
    path.write_text("lots\n")
    with pytest.raises(UsageError, match=f"-j {path}: -j/--jobs takes N"):
        JobsFile.named(str(path), None)
    assert os.path.exists(path)
