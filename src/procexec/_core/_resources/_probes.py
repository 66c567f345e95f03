"""The admission probes: the files read to tell whether the machine has room for a job.

Memory (``/proc/meminfo`` and this process's cgroup), running processes
(``/proc/loadavg``), pressure stall information (``/proc/pressure/*``, and its triggers).
Each probe raises OSError (or ValueError) when its file cannot be read or parsed; the
policy (``_admission.py``) decides what that means. Tests point ``PROC`` and ``CGROUP`` at
a directory of fake files.
"""

from __future__ import annotations

import contextlib
import os
import select
from pathlib import Path

#: Where the probes read /proc and the cgroup files (tests point them elsewhere).
PROC = Path("/proc")
CGROUP = Path("/sys/fs/cgroup")
#: The PSI trigger window, in microseconds (unprivileged triggers need a multiple of 2 s).
PSI_WINDOW_US = 2_000_000
PRESSURE_RESOURCES = ("cpu", "io", "memory")

_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a huge number


def mem_available() -> int:
    """Bytes that can be used without swapping: MemAvailable, and no more than the room
    left under this process's cgroup memory limit (v2 ``memory.max``, v1
    ``memory.limit_in_bytes``), when there is one."""
    available = _meminfo_available()
    room = _cgroup_room()
    return available if room is None else min(available, room)


def _meminfo_available() -> int:
    for line in (PROC / "meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no MemAvailable in {PROC / 'meminfo'}")


def _cgroup_room() -> int | None:
    for limit_name, usage_name in (
        ("memory.max", "memory.current"),
        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes"),
    ):
        try:
            limit = (CGROUP / limit_name).read_text().strip()
            usage = int((CGROUP / usage_name).read_text())
        except (OSError, ValueError):
            continue
        if limit != "max" and int(limit) < _UNLIMITED:
            return max(0, int(limit) - usage)
    return None


def running_processes() -> int:
    """Processes (threads) running or runnable now, the reader left out: the 4th field of
    /proc/loadavg ("running/total"). This is GNU parallel's ``--load``: the number of
    running processes, not the 1-minute load average."""
    running = (PROC / "loadavg").read_text().split()[3].split("/")[0]
    return max(0, int(running) - 1)


def pressure(resource: str) -> float:
    """Linux pressure stall information: the "some avg10" percentage of ``resource``."""
    for line in (PROC / "pressure" / resource).read_text().splitlines():
        if line.startswith("some "):
            for word in line.split()[1:]:
                key, _, value = word.partition("=")
                if key == "avg10":
                    return float(value)
    raise OSError(f"no 'some avg10' in {PROC / 'pressure' / resource}")


# ------------------------------------------------------------------ PSI triggers
def open_trigger(resource: str, percent: float) -> int | None:
    """A PSI trigger fd that becomes readable (POLLPRI) whenever, within a window of
    ``PSI_WINDOW_US``, tasks stalled on ``resource`` for ``percent`` of it; None where the
    kernel or the sandbox refuses one."""
    stall_us = max(1, int(PSI_WINDOW_US * percent / 100))
    try:
        fd = os.open(PROC / "pressure" / resource, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        os.write(fd, f"some {stall_us} {PSI_WINDOW_US}\0".encode())
    except OSError:
        os.close(fd)
        return None
    return fd


def quiet_window(fd: int, timeout: float) -> bool:
    """Wait on a PSI trigger: True if ``timeout`` passed without it firing."""
    poller = select.poll()
    poller.register(fd, select.POLLPRI)
    events = poller.poll(timeout * 1000)
    return not any(mask & (select.POLLPRI | select.POLLERR) for _, mask in events)


def close_trigger(fd: int | None) -> None:
    """Close a trigger from :func:`open_trigger` (None: nothing to close)."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)
