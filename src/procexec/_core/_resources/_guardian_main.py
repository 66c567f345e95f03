"""The guardian's own program: kill the registered jobs when the process that started it dies.

Run as ``python -I -S _guardian_main.py`` by ``_guardian.py``, in a session of its own, with
the read end of a pipe as its standard input and a shared memory region (the registry) as
fd 3. Only the parent holds the pipe's write end and never writes to it, so reading the
pipe returns exactly when the parent is gone, however it died (SIGKILL included). It
imports nothing from procexec (and, with ``-S``, nothing from site-packages), so that it
starts fast and keeps working whatever the parent's environment.

The registry is an array of signed 32-bit ints in the machine's byte order. Slot 0 holds
how many slots after it have ever been used; in each of those, 0 is a free slot, a
positive number a job's process group, a negative one a job's pid (a job that runs in its
parent's group). The parent writes a job's slot when it has started it and clears it when
it has reaped it: no system call, and nothing for this process to do until the end.

At the end of its input it sends SIGTERM to every job still registered, gives them
``GRACE`` seconds to go, then sends SIGKILL to what is left, and exits.
"""

import mmap
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
#: The registry's file descriptor.
REGISTRY_FD = 3


def _signal(target: int, signum: int) -> bool:
    """Send ``signum`` to a registered job; False if nothing is there any more."""
    try:
        if target > 0:
            os.killpg(target, signum)
        else:
            os.kill(-target, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def registered() -> list[int]:
    """The jobs in the registry now."""
    size = os.fstat(REGISTRY_FD).st_size
    with mmap.mmap(REGISTRY_FD, size, prot=mmap.PROT_READ) as region:
        slots = memoryview(region).cast("i")
        try:
            used = min(slots[0], len(slots) - 1)
            return [value for value in slots[1 : used + 1] if value]
        finally:
            slots.release()


def main() -> None:
    """Wait for the end of input, then stop every job still registered."""
    try:  # its name in ps and top (15 bytes at most)
        with open("/proc/self/comm", "w") as comm:
            comm.write(NAME)
    except OSError:
        pass
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    while sys.stdin.buffer.read(65536):
        pass  # nothing is ever written; only the end counts
    alive = [target for target in registered() if _signal(target, signal.SIGTERM)]
    deadline = time.monotonic() + GRACE
    while alive and time.monotonic() < deadline:
        time.sleep(STEP)
        alive = [target for target in alive if _signal(target, 0)]
    for target in alive:
        _signal(target, signal.SIGKILL)


if __name__ == "__main__":
    main()
