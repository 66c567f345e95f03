"""How many jobs run and when the machine lets one start: ``-j`` (a number, or a file
holding one that is read again while the batch runs), ``--memfree``, ``--load``,
``--delay``, ``--pressure``, and ``--dask``.

The usable CPUs are counted here as ``loky.cpu_count()`` counts them (the fewest of the
machine's CPUs, the affinity mask, the cgroup's CPU bandwidth and ``LOKY_MAX_CPU_COUNT``),
without loading loky: a plain run starts faster (tests/test_cli_startup.py checks both
agree)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from procexec.cli._values import (
    UsageError,
    parse_duration,
    parse_jobs,
    parse_load,
    parse_pressure,
)

#: ``-j 0`` ("as many as possible", as GNU parallel says) runs at most this many at once.
AS_MANY_AS_POSSIBLE = 1024


def cpu_count() -> int:
    """The CPUs this process may use (cgroup quotas and affinity count)."""
    machine = os.cpu_count() or 1
    counts = [machine, len(os.sched_getaffinity(0)), _cgroup_cpus(machine)]
    counts.append(int(os.environ.get("LOKY_MAX_CPU_COUNT", machine)))
    return max(1, min(counts))


#: Where the cgroup CPU bandwidth is read: v2's ``cpu.max`` ("QUOTA PERIOD" or "max
#: PERIOD"), else v1's quota and period (a quota of -1: none).
CGROUP_V2_CPU_MAX = "/sys/fs/cgroup/cpu.max"
CGROUP_V1_CPU = ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def _cgroup_cpus(machine: int) -> int:
    """The CPUs the cgroup's bandwidth limit allows (rounded up), or ``machine``. The files
    are ASCII, read as UTF-8: that codec is loaded already, the ASCII one is not."""
    try:
        with open(CGROUP_V2_CPU_MAX, encoding="utf-8") as file:
            quota, period = file.read().split()[:2]
    except (OSError, ValueError):
        try:
            quota, period = (_read_first_line(path) for path in CGROUP_V1_CPU)
        except (OSError, ValueError):
            return machine
    if quota in ("max", "-1") or int(period) <= 0:
        return machine
    return max(1, -(-int(quota) // int(period)))


def _read_first_line(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.readline().strip()


def max_jobs(text: str | None, jobs: int | None) -> int:
    """``-j``; with 0, as many as there are jobs (when known), at most 1024."""
    if text is None:
        text = "100%"  # GNU parallel's default: one job per usable CPU
    if text.strip() == "0":
        return max(1, min(AS_MANY_AS_POSSIBLE if jobs is None else jobs, AS_MANY_AS_POSSIBLE))
    return parse_jobs(text, cpu_count())


class JobsFile:
    """``-j FILE``: the job count is the file's content (``4``, ``50%``, ``+2``...), read
    again when a job ends if the file changed, as GNU parallel does: the way to resize a
    running batch."""

    def __init__(self, path: str, jobs: int | None) -> None:
        self.path = path
        self.jobs = jobs
        self.stamp: tuple[int, int] | None = None
        self.current = self._read()

    @classmethod
    def named(cls, text: str | None, jobs: int | None) -> JobsFile | None:
        """A JobsFile if ``-j`` names an existing file, else None."""
        if text is None or not os.path.isfile(text):
            return None
        return cls(text, jobs)

    def reread(self) -> int:
        """The job count now: read again if the file changed (kept if it is unreadable or
        no longer holds a job count)."""
        try:
            if self._stamp() != self.stamp:
                self.current = self._read()
        except (OSError, UsageError):
            pass
        return self.current

    def _stamp(self) -> tuple[int, int]:
        status = os.stat(self.path)
        return status.st_mtime_ns, status.st_size

    def _read(self) -> int:
        self.stamp = self._stamp()
        with open(self.path, encoding="utf-8") as file:
            text = file.read().strip()
        try:
            return max_jobs(text, self.jobs)
        except UsageError as error:
            raise UsageError(f"-j {self.path}: {error}") from None


def admission(options: argparse.Namespace) -> dict[str, Any]:
    """``--memfree``, ``--load``, ``--delay``, ``--pressure``, checked (and probed) now."""
    settings: dict[str, Any] = {}
    if options.memfree is not None:
        settings["memfree"] = options.memfree
    if options.load is not None:
        settings["load"] = parse_load(options.load, cpu_count())
    if options.delay is not None:
        settings["delay"] = parse_duration(options.delay, "--delay")
    if options.pressure is not None:
        settings["pressure"] = parse_pressure(options.pressure)
    if settings:
        from procexec._core import make_admission  # noqa: PLC0415  # only when asked

        try:
            make_admission(**settings)
        except (TypeError, ValueError, OSError) as error:
            raise UsageError(f"--{error}") from None  # its messages begin with the option
    return settings


def dask_address(options: argparse.Namespace) -> str | None:
    """``--dask ADDRESS`` or ``--dask local:N``, checked."""
    address: str | None = options.dask
    if address is None:
        return None
    import importlib.util  # noqa: PLC0415  # only with --dask

    if importlib.util.find_spec("distributed") is None:
        raise UsageError("--dask needs Dask's distributed: pip install 'procexec[dask]'")
    if address.startswith("local:"):
        count = address.partition(":")[2]
        if not count.isdigit() or int(count) < 1:
            raise UsageError(f"--dask local:N needs a number of workers, not {address!r}")
    elif ":" not in address:
        raise UsageError(
            f"--dask takes a scheduler address (tcp://host:8786) or local:N, not {address!r}"
        )
    local_only = [f"--{name}" for name in ("memfree", "load", "pressure") if getattr(options, name)]
    if local_only:
        raise UsageError(
            f"{', '.join(local_only)} watch this machine, not the cluster: with --dask, give "
            "the workers their procexec-slots resource instead"
        )
    streaming = [
        flag for flag, on in (("-u", options.ungroup), ("--line-buffer", options.line_buffer)) if on
    ]
    if streaming:
        raise UsageError(
            f"{streaming[0]} prints from this machine's pipes while jobs run: with --dask, "
            "each job's output comes whole when it ends"
        )
    return address


def dask_timeout(options: argparse.Namespace) -> float | None:
    """``--dask-connect-timeout SECS``, only with ``--dask ADDRESS``."""
    text: str | None = options.dask_connect_timeout
    if text is None:
        return None
    if options.dask is None or options.dask.startswith("local:"):
        raise UsageError("--dask-connect-timeout needs --dask ADDRESS (a scheduler to reach)")
    seconds = parse_duration(text, "--dask-connect-timeout")
    if not seconds > 0:
        raise UsageError(f"--dask-connect-timeout must be more than 0 seconds, not {text!r}")
    return seconds
