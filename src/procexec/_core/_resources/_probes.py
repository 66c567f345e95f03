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
import re
import select
from pathlib import Path, PurePosixPath

#: Where the probes read /proc and the cgroup files (tests point them elsewhere).
PROC = Path("/proc")
CGROUP = Path("/sys/fs/cgroup")
#: The PSI trigger window, in microseconds (unprivileged triggers need a multiple of 2 s).
PSI_WINDOW_US = 2_000_000
PRESSURE_RESOURCES = ("cpu", "io", "memory")

_UNLIMITED = 1 << 60  # cgroup v1 reports "no limit" as a huge number


def mem_available() -> int:
    """Bytes that can be used without swapping: MemAvailable, and no more than the least
    room left under a memory limit of this process's cgroup or of one of its ancestors
    (see :func:`_cgroup_room`)."""
    available = _meminfo_available()
    room = _cgroup_room()
    return available if room is None else min(available, room)


def _meminfo_available() -> int:
    for line in (PROC / "meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no MemAvailable in {PROC / 'meminfo'}")


#: The limit and usage files of a memory cgroup: v2, then v1.
_V2_FILES = ("memory.max", "memory.current")
_V1_FILES = ("memory.limit_in_bytes", "memory.usage_in_bytes")


def _cgroup_room() -> int | None:
    """The least room (limit - usage) left under a memory limit of this process's cgroup
    or of an ancestor, None where none has a limit.

    The cgroups are those ``/proc/self/cgroup`` names: the v2 unified one (``0::/path``,
    under ``CGROUP``) and the v1 memory controller's (``N:...memory...:/path``, under
    ``CGROUP/memory``). Each is read from the process's own directory up to the mount's
    root, a level whose files are missing (a cgroup outside this mount namespace's view)
    skipped; the tightest room of all counts, since any limit on the way up can run out.
    Where ``/proc/self/cgroup`` cannot be read, the mounts' roots are read.
    """
    rooms = [
        room for mount, path, files in _memory_cgroups() for room in _rooms_up(mount, path, files)
    ]
    return min(rooms, default=None)


def _memory_cgroups() -> list[tuple[Path, str, tuple[str, str]]]:
    """(mount point, cgroup path, its limit and usage files) of this process's memory
    cgroups, v2 and v1, as ``/proc/self/cgroup`` lists them."""
    try:
        lines = (PROC / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return [(CGROUP, "/", _V2_FILES), (CGROUP / "memory", "/", _V1_FILES)]
    found: list[tuple[Path, str, tuple[str, str]]] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            found.append((CGROUP, path, _V2_FILES))
        elif "memory" in controllers.split(","):
            found.append((CGROUP / "memory", path, _V1_FILES))
    return found


def _rooms_up(mount: Path, path: str, files: tuple[str, str]) -> list[int]:
    """The room under each limit from the cgroup ``path`` up to the root of ``mount``."""
    relative = _relative_to_mount_root(PurePosixPath(path), _mount_root(mount))
    levels = (mount.joinpath(*relative.parts[:depth]) for depth in range(len(relative.parts) + 1))
    return [room for level in levels if (room := _room_at(level, *files)) is not None]


def _room_at(directory: Path, limit_name: str, usage_name: str) -> int | None:
    try:
        limit = (directory / limit_name).read_text().strip()
        usage = int((directory / usage_name).read_text())
    except (OSError, ValueError):  # not a memory cgroup of this mount, or no limit file
        return None
    if limit == "max" or int(limit) >= _UNLIMITED:
        return None
    return max(0, int(limit) - usage)


def _mount_root(mount: Path) -> PurePosixPath:
    """The cgroup a mount shows as its root (``/proc/self/mountinfo``'s 4th field): not
    ``/`` in a container that sees its own cgroup at ``/sys/fs/cgroup`` without a cgroup
    namespace."""
    with contextlib.suppress(OSError):
        for line in (PROC / "self" / "mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4 and _unescape(fields[4]) == str(mount):
                return PurePosixPath(_unescape(fields[3]))
    return PurePosixPath("/")


def _relative_to_mount_root(path: PurePosixPath, root: PurePosixPath) -> PurePosixPath:
    """``path`` below the mount's ``root``; a path outside it (only the root is visible)
    is the root itself."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        return PurePosixPath()
    return PurePosixPath(*(part for part in relative.parts if part not in {"..", "/"}))


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are written as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


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
