"""The memory probe reads this process's own cgroup, and the tightest limit above it.

Fake hierarchies (``_probes.PROC`` and ``_probes.CGROUP`` pointed at a temporary directory)
cover cgroup v2 and v1, nested limits, and a mount that shows a cgroup other than the
hierarchy's root. One test creates a real memory cgroup where this machine allows it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from procexec._core._resources import _probes

GIB = 1 << 30
MIB = 1 << 20
V1_NO_LIMIT = "9223372036854771712"


@dataclass
class Fake:
    """A fake /proc (meminfo, self/cgroup, self/mountinfo) and cgroup mount."""

    proc: Path
    cgroup: Path

    def cgroups(self, *lines: str) -> None:
        (self.proc / "self" / "cgroup").write_text("".join(f"{line}\n" for line in lines))

    def v2(self, path: str, limit: int | str, usage: int) -> None:
        self._files(self.cgroup / path, ("memory.max", limit), ("memory.current", usage))

    def v1(self, path: str, limit: int | str, usage: int) -> None:
        self._files(
            self.cgroup / "memory" / path,
            ("memory.limit_in_bytes", limit),
            ("memory.usage_in_bytes", usage),
        )

    @staticmethod
    def _files(directory: Path, *files: tuple[str, int | str]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, value in files:
            (directory / name).write_text(f"{value}\n")


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Fake:
    f = Fake(tmp_path / "proc", tmp_path / "sys fs cgroup")  # a space: mountinfo escapes it
    (f.proc / "self").mkdir(parents=True)
    f.cgroup.mkdir()
    (f.proc / "meminfo").write_text(f"MemTotal: 16000000 kB\nMemAvailable: {8 * GIB // 1024} kB\n")
    monkeypatch.setattr(_probes, "PROC", f.proc)
    monkeypatch.setattr(_probes, "CGROUP", f.cgroup)
    return f


def test_v2_reads_this_process_cgroup_not_the_root(fake: Fake) -> None:
    fake.cgroups("0::/jobs.slice/batch.scope")
    fake.v2("jobs.slice/batch.scope", GIB, GIB - 100 * MIB)
    assert _probes.mem_available() == 100 * MIB
    fake.v2("jobs.slice/batch.scope", "max", GIB)
    assert _probes.mem_available() == 8 * GIB


@pytest.mark.parametrize(
    ("parent", "child", "room"),
    [
        ((2 * GIB, GIB + 512 * MIB), (4 * GIB, 100 * MIB), 512 * MIB),  # the parent's is tighter
        ((2 * GIB, GIB), (GIB, 724 * MIB), 300 * MIB),  # the child's is tighter
        ((2 * GIB, GIB + 512 * MIB), ("max", 100 * MIB), 512 * MIB),  # only the parent's
    ],
)
def test_v2_nested_limits_the_tightest_counts(
    fake: Fake, parent: tuple[int, int], child: tuple[int | str, int], room: int
) -> None:
    fake.cgroups("0::/outer/inner")
    fake.v2("outer", *parent)
    fake.v2("outer/inner", *child)
    fake.v2("outer/sibling", 1, 0)  # not on the way up: not read
    assert _probes.mem_available() == room


def test_v1_reads_the_memory_controller_line(fake: Fake) -> None:
    fake.cgroups(
        "12:pids:/elsewhere",
        "4:memory:/batch/job",
        "3:cpu,cpuacct:/elsewhere",
        "0::/",
    )
    fake.v1("", V1_NO_LIMIT, 3 * GIB)
    fake.v1("batch", 3 * GIB, GIB)
    fake.v1("batch/job", V1_NO_LIMIT, 200 * MIB)
    assert _probes.mem_available() == 2 * GIB
    fake.v1("batch/job", GIB, 200 * MIB)
    assert _probes.mem_available() == GIB - 200 * MIB


def test_v1_memory_named_among_other_controllers(fake: Fake) -> None:
    fake.cgroups("5:cpuset,memory:/a")
    fake.v1("a", GIB, 0)
    assert _probes.mem_available() == GIB


def test_a_mount_rooted_at_the_container_cgroup(fake: Fake) -> None:
    """Without a cgroup namespace, /proc/self/cgroup names the full path while the mount
    shows the container's cgroup as its root: the path is taken below that root."""
    mount = fake.cgroup / "memory"
    escaped = str(mount).replace(" ", "\\040")
    (fake.proc / "self" / "mountinfo").write_text(
        "22 1 0:21 / /proc rw - proc proc rw\n"
        f"35 31 0:32 /docker/abc {escaped} rw,relatime - cgroup cgroup rw,memory\n"
    )
    fake.cgroups("4:memory:/docker/abc/worker")
    fake.v1("", 2 * GIB, GIB)  # the container's cgroup
    fake.v1("worker", 4 * GIB, 3 * GIB + 512 * MIB)
    assert _probes.mem_available() == 512 * MIB
    fake.cgroups("4:memory:/somewhere/else")  # outside the mount: only its root is seen
    assert _probes.mem_available() == GIB


def test_missing_levels_are_skipped(fake: Fake) -> None:
    """A cgroup directory this mount does not show is skipped; the ancestors still count."""
    fake.cgroups("0::/not/visible/here")
    fake.v2("not", GIB, 0)
    assert _probes.mem_available() == GIB


def test_unreadable_proc_self_cgroup_reads_the_mount_roots(fake: Fake) -> None:
    fake.v2("", GIB, 0)
    assert _probes.mem_available() == GIB


# ------------------------------------------------------------------- a real cgroup
SYS_CGROUP = Path("/sys/fs/cgroup")
#: A child that moves itself into the cgroup argv[1], then reports the probe and the usage
#: of argv[2] (the limited cgroup) read just before and after it.
PROBE_INSIDE = """
import json, os, sys
from pathlib import Path
from procexec._core._resources import _probes
inner, outer, usage_name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
(inner / "cgroup.procs").write_text(str(os.getpid()))
before = int((outer / usage_name).read_text())
room, available = _probes._cgroup_room(), _probes.mem_available()
after = int((outer / usage_name).read_text())
print(json.dumps([room, available, before, after]))
"""


def _real_memory_cgroup_parent() -> tuple[Path, str, str]:
    """(a directory in which to create memory cgroups, limit file, usage file), or skip
    saying why this machine does not allow it."""
    if os.geteuid() != 0:
        pytest.skip("creating a cgroup needs root")
    controllers = SYS_CGROUP / "cgroup.subtree_control"
    if controllers.exists():  # v2 at /sys/fs/cgroup: children of the root, if memory is on
        if "memory" not in controllers.read_text().split():
            pytest.skip(f"cgroup v2 without the memory controller in {controllers}")
        return SYS_CGROUP, "memory.max", "memory.current"
    v1 = SYS_CGROUP / "memory"
    if not (v1 / "memory.limit_in_bytes").exists():
        pytest.skip(f"no cgroup v2 memory controller at {SYS_CGROUP} and no v1 one at {v1}")
    own = next(
        (
            line.split(":", 2)[2]
            for line in Path("/proc/self/cgroup").read_text().splitlines()
            if "memory" in line.split(":", 2)[1].split(",")
        ),
        "/",
    )
    parent = v1 / own.lstrip("/")  # our own cgroup (v1 allows children of one with tasks)
    if not parent.is_dir():
        parent = v1
    return parent, "memory.limit_in_bytes", "memory.usage_in_bytes"


@contextlib.contextmanager
def _cgroup(directory: Path) -> Iterator[Path]:
    try:
        directory.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create the cgroup {directory}: {exc}")
    try:
        yield directory
    finally:
        directory.rmdir()


def test_a_real_nested_memory_cgroup() -> None:
    """A child in a cgroup without a limit, inside one limited to 256 MiB: the probe sees
    the parent's limit, not the host's memory."""
    parent, limit_name, usage_name = _real_memory_cgroup_parent()
    limit = 256 * MIB
    with _cgroup(parent / f"procexec-test-{uuid.uuid4().hex[:8]}") as outer:
        try:
            (outer / limit_name).write_text(str(limit))
        except OSError as exc:
            pytest.skip(f"cannot set {outer / limit_name}: {exc}")
        with _cgroup(outer / "inner") as inner:
            child = subprocess.run(
                [sys.executable, "-c", PROBE_INSIDE, str(inner), str(outer), usage_name],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
    assert child.returncode == 0, child.stderr
    room, available, before, after = json.loads(child.stdout)
    assert room is not None, "no limit seen"
    # The usage moves a little while the probe reads it: the room lies between the two.
    assert limit - max(before, after) - MIB <= room <= limit - min(before, after) + MIB
    assert available <= room
