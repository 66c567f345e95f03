"""The guardian: no job outlives this process, even when it is killed with SIGKILL.

A process's own code cannot run when it is SIGKILLed (the OOM killer, ``kill -9``, a CI
runner's timeout), so its jobs, each in a process group of its own, would run on. The
guardian is a small helper process (``_guardian_main.py``), one per process, started when
the first guarded job starts. It reads a pipe of which only this process holds the write
end: each guarded job is registered when it starts and forgotten when it is reaped. When
this process dies, by any means, the kernel closes the write end; the guardian reads the
end of the pipe, and stops every job still registered: SIGTERM to its process group, then
SIGKILL half a second later to whatever remains.

The guardian runs in a session of its own, so a signal sent to this process's group or
session (a terminal's Ctrl-C, a ``kill -- -PGID`` of a CI runner) does not reach it.

Why not ``PR_SET_PDEATHSIG``: it fires when the *thread* that started the child ends, not
the process (a lane's thread ends whenever it runs out of work), it needs a ``preexec_fn``
(which costs the fast vfork start) and it reaches only the child, not its process group.

Cost: one helper process per process (a few MB, started once, about 20 ms), and two
writes of a few bytes to a pipe per job (docs/benchmarks.md measures it on storm).

A job that starts in the instant before this process is killed, between its start and its
registration (microseconds), is not covered; nor are processes a job moved into another
process group or session of their own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from pathlib import Path

logger = logging.getLogger("procexec")

_PROGRAM = Path(__file__).with_name("_guardian_main.py")


class Guardian:
    """This process's guardian helper; its methods are safe to call from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None  # write end of the pipe to the helper
        self._pid: int | None = None  # the helper's
        self._failed = False  # it could not be started, or died: jobs run unguarded

    def watch(self, pid: int, *, group: bool) -> None:
        """Register a job that just started (its process group if ``group``)."""
        fd = self._fd if self._fd is not None else self._start()
        if fd is not None:
            self._send(fd, b"g%d\n" % pid if group else b"p%d\n" % pid)

    def forget(self, pid: int) -> None:
        """The job ``pid`` was reaped: its id may be reused, so the guardian forgets it."""
        fd = self._fd
        if fd is not None:
            self._send(fd, b"-%d\n" % pid)

    @property
    def pid(self) -> int | None:
        """The helper's pid, once it runs."""
        return self._pid

    def _send(self, fd: int, line: bytes) -> None:
        try:
            os.write(fd, line)  # under PIPE_BUF: atomic among the lanes' threads
        except OSError as exc:  # the helper is gone (killed by someone)
            self._lost(fd, exc)

    def _start(self) -> int | None:
        with self._lock:
            if self._fd is not None or self._failed:
                return self._fd
            try:
                read_end, write_end = os.pipe()  # both close on exec; dup2 keeps stdin open
                try:
                    self._pid = _spawn(read_end)
                finally:
                    os.close(read_end)
            except OSError as exc:
                self._failed = True
                logger.warning("procexec: cannot start the guardian (%s); jobs run unguarded", exc)
                return None
            self._fd = write_end
            return write_end

    def _lost(self, fd: int, exc: OSError) -> None:
        with self._lock:
            if self._fd != fd:
                return
            self._fd, self._failed = None, True
            os.close(fd)
            if self._pid is not None:  # reap it if it has gone, rather than leave a zombie
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self._pid, os.WNOHANG)
        logger.warning("procexec: the guardian has gone (%s); jobs run unguarded", exc)

    def after_fork_in_child(self) -> None:
        """In a child made by ``os.fork()``: the parent's jobs are not this process's, and
        holding the pipe would keep the parent's guardian from seeing the parent die."""
        self._lock = threading.Lock()
        if self._fd is not None:
            with contextlib.suppress(OSError):  # closed already
                os.close(self._fd)
        self._fd, self._pid, self._failed = None, None, False


def _spawn(read_end: int) -> int:
    """Start the helper in a session of its own with ``read_end`` as its standard input.

    ``posix_spawn`` rather than Popen: the helper outlives every Popen object (it is reaped
    by init after this process), so a Popen would warn at exit that it still runs.
    """
    return os.posix_spawn(
        sys.executable,
        [sys.executable, "-I", "-S", str(_PROGRAM)],
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, read_end, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ],
        setsid=True,
    )


#: The one guardian of this process.
GUARDIAN = Guardian()
os.register_at_fork(after_in_child=GUARDIAN.after_fork_in_child)
