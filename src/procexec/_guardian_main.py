"""The guardian's own program: kill the registered jobs when the process that started it dies.

Run as ``python -I -S _guardian_main.py`` by ``_guardian.py``, in a session of its own, with
the read end of a pipe as its standard input. Only the parent holds the write end, so the
pipe reaches its end exactly when the parent is gone, however it died (SIGKILL included).
It imports nothing from procexec (and, with ``-S``, nothing from site-packages), so that
it starts fast and keeps working whatever the parent's environment.

The protocol is one ASCII line per change:

- ``g<pgid>``: a job's process group to kill;
- ``p<pid>``: a job (not in a group of its own) to kill;
- ``-<id>``: that job was reaped by its parent: forget it.

At the end of its input it sends SIGTERM to every job still registered, gives them
``GRACE`` seconds to go, then sends SIGKILL to what is left, and exits.
"""

import os
import signal
import sys
import time

#: The process name (``comm``) it takes.
NAME = "procexec-guard"
#: Seconds between SIGTERM and SIGKILL. Short: the jobs' parent is already gone.
GRACE = 0.5
#: How often, during the grace period, it looks whether every job has gone.
STEP = 0.02


def _signal(target: str, signum: int) -> bool:
    """Send ``signum`` to ``target`` ("g<pgid>" or "p<pid>"); False if nothing is there."""
    kill = os.killpg if target[0] == "g" else os.kill
    try:
        kill(int(target[1:]), signum)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    return True


def main() -> None:
    """Read registrations until the end of input, then stop every job still registered."""
    try:  # its name in ps and top (15 bytes at most)
        with open("/proc/self/comm", "w") as comm:
            comm.write(NAME)
    except OSError:
        pass
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    jobs: dict[str, str] = {}  # id -> "g<id>" or "p<id>"
    for raw in sys.stdin.buffer:
        line = raw.strip().decode("ascii", "replace")
        if line[:1] == "-":
            jobs.pop(line[1:], None)
        elif line[:1] in ("g", "p"):
            jobs[line[1:]] = line
    alive = [target for target in jobs.values() if _signal(target, signal.SIGTERM)]
    deadline = time.monotonic() + GRACE
    while alive and time.monotonic() < deadline:
        time.sleep(STEP)
        alive = [target for target in alive if _signal(target, 0)]
    for target in alive:
        _signal(target, signal.SIGKILL)


if __name__ == "__main__":
    main()
