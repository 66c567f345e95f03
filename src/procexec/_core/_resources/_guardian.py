"""The guardian: no job outlives this process, even when it is killed with SIGKILL.

A process's own code cannot run when it is SIGKILLed (the OOM killer, ``kill -9``, a CI
runner's timeout), so its jobs, each in a process group of its own, would run on. The
guardian is a small helper process (``_guardian_main.py``), one per process, started
before the first guarded job can start: when an executor with ``guardian=True`` is made,
or a ``with`` block of a default one begins (:meth:`Guardian.start`). It holds the read
end of a pipe whose write end only this process holds, and it shares a small memory region
with this process: the registry of the running guarded jobs. A job is written into the
registry when it has started and cleared from it when it has been reaped: two stores to
shared memory, no system call, nothing for the guardian to do. When this process dies, by
any means, the kernel closes the pipe's write end; the guardian reads the end of the pipe,
then stops every job still in the registry: SIGTERM to its process group, then SIGKILL
half a second later to whatever remains.

The guardian runs in a session of its own, so a signal sent to this process's group or
session (a terminal's Ctrl-C, a ``kill -- -PGID`` of a CI runner) does not reach it.

Why not ``PR_SET_PDEATHSIG``: it fires when the *thread* that started the child ends, not
the process (a lane's thread ends whenever it runs out of work), it needs a ``preexec_fn``
(which costs the fast vfork start) and it reaches only the child, not its process group.

Cost: one helper process per process (a few MB, started once, about 20 ms on another
core), and a slot write at each job's start and end (docs/benchmarks.md measures it).

Not covered: a job whose start is under way when this process dies, from the fork to
the store that registers it just after ``Popen`` returns (that is the fork and exec: well
under a millisecond on an idle machine, some milliseconds on a loaded one; the lane
registers the job at once, never waiting for the helper); processes a job moved into
another process group or session; and jobs beyond the registry's ``SLOTS`` running at
once (they run unguarded, with a warning).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import mmap
import os
import sys
import threading

logger = logging.getLogger("procexec")

_PROGRAM = os.path.join(os.path.dirname(__file__), "_guardian_main.py")
#: Jobs that can be guarded at once (the registry is 4 bytes a slot).
SLOTS = 65536


class Guardian:
    """This process's guardian helper and its registry; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: memoryview | None = None  # the registry, once the helper runs
        self._region: mmap.mmap | None = None
        self._free: list[int] = []  # slots given back (list.pop and append are atomic)
        self._fresh = itertools.count(1)  # slots never used yet
        self._pipe: int | None = None  # write end of the pipe the helper waits on
        self._pid: int | None = None  # the helper's
        self._failed = False  # it could not be started: jobs run unguarded
        self._full_warned = False

    @property
    def pid(self) -> int | None:
        """The helper's pid, once it runs."""
        return self._pid

    def watch(self, pid: int, *, group: bool) -> int:
        """Register a job that just started (its process group if ``group``); the slot to
        give to :meth:`forget`, or 0 if it is not guarded."""
        slots = self._slots if self._slots is not None else self.start()
        if slots is None:
            return 0
        try:
            slot = self._free.pop()
        except IndexError:  # none given back: a slot never used yet
            slot = next(self._fresh)  # atomic in CPython, as list.pop and append are
            if slot > SLOTS:
                self._registry_full()
                return 0
        slots[slot] = pid if group else -pid
        return slot

    def forget(self, slot: int) -> None:
        """The job in ``slot`` was reaped: its id may be reused, so it leaves the registry."""
        slots = self._slots
        if slot and slots is not None:
            slots[slot] = 0
            self._free.append(slot)

    def start(self) -> memoryview | None:
        """Start the helper if it does not run yet (a guarded executor does so before
        its first job can start); the registry, or None if the helper cannot run."""
        if self._slots is not None or self._failed:
            return self._slots
        with self._lock:
            if self._slots is not None or self._failed:
                return self._slots
            try:
                self._spawn()
            except OSError as exc:
                self._failed = True
                logger.warning("procexec: cannot start the guardian (%s); jobs run unguarded", exc)
                return None
            return self._slots

    def _spawn(self) -> None:
        size = (SLOTS + 1) * 4
        registry = _shared_file(size)
        try:
            read_end, write_end = os.pipe()  # both close on exec; dup2 keeps fd 0 open
            try:
                self._pid = _posix_spawn(read_end, registry)
            except OSError:
                os.close(write_end)
                raise
            finally:
                os.close(read_end)
            region = mmap.mmap(registry, size)
        finally:
            os.close(registry)
        slots = memoryview(region).cast("i")
        slots[0] = SLOTS  # the helper scans every slot: the count is fixed
        self._free, self._fresh = [], itertools.count(1)
        self._region, self._pipe, self._slots = region, write_end, slots

    def _registry_full(self) -> None:
        if not self._full_warned:
            self._full_warned = True
            logger.warning("procexec: more than %d jobs at once; the others are unguarded", SLOTS)

    def after_fork_in_child(self) -> None:
        """In a child made by ``os.fork()``: the parent's jobs are not this process's, and
        holding the pipe would keep the parent's guardian from seeing the parent die. The
        shared registry is left alone (it is the parent's): this process starts its own
        guardian if it runs guarded jobs."""
        self._lock = threading.Lock()
        if self._pipe is not None:
            with contextlib.suppress(OSError):  # closed already
                os.close(self._pipe)
        self._slots = self._region = None
        self._free, self._fresh = [], itertools.count(1)
        self._pipe = self._pid = None
        self._failed = self._full_warned = False


def _shared_file(size: int) -> int:
    """An anonymous file of ``size`` bytes of zeros to share with the helper."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("procexec-guardian", os.MFD_CLOEXEC)
    else:  # pragma: no cover - not Linux
        import tempfile  # noqa: PLC0415

        with tempfile.TemporaryFile() as file:
            fd = os.dup(file.fileno())
    os.ftruncate(fd, size)
    return fd


def _posix_spawn(read_end: int, registry: int) -> int:
    """Start the helper in a session of its own: ``read_end`` as its standard input and the
    registry as fd 3.

    ``posix_spawn`` rather than Popen: the helper outlives every Popen object (it is reaped
    by init after this process), so a Popen would warn at exit that it still runs.
    """
    return os.posix_spawn(
        sys.executable,
        [sys.executable, "-I", "-S", _PROGRAM],
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, read_end, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, registry, 3),
        ],
        setsid=True,
    )


#: The one guardian of this process.
GUARDIAN = Guardian()
os.register_at_fork(after_in_child=GUARDIAN.after_fork_in_child)
