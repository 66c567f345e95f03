"""The items of ``python -m bench.calls``: what the calls and commands do, and how their
stamps are read.

The functions here run in worker processes (procexec's, loky's, CPython's, pebble's), so
they live in an importable module of their own: each pool pickles them by reference. Each
timed item writes its own start and end instants (``time.monotonic()``, one clock for the
whole machine on Linux) to a file, from which the bench reads how many items ran at once
and how long each took.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

#: The command of the ``mixed`` workload: ``python -S -c BURN SECONDS STAMP_FILE`` burns
#: SECONDS of CPU and writes its start and end instants.
BURN = (
    "import sys, time\n"
    "start = time.monotonic()\n"
    "end = time.process_time() + float(sys.argv[1])\n"
    "while time.process_time() < end:\n"
    "    pass\n"
    "open(sys.argv[2], 'w').write(f'{start} {time.monotonic()}')\n"
)


def burn_command(seconds: float, stamp: Path) -> list[str]:
    """The argv of a command burning ``seconds`` of CPU that stamps ``stamp``."""
    return [sys.executable, "-S", "-c", BURN, str(seconds), str(stamp)]


def burn(seconds: float, stamp: str) -> None:
    """A call burning ``seconds`` of CPU in its worker; stamps ``stamp`` as the command does."""
    start = time.monotonic()
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    Path(stamp).write_text(f"{start} {time.monotonic()}")


def identity(value: object) -> object:
    """The call of ``tiny`` and ``map``."""
    return value


def nap(seconds: float) -> None:
    """Untimed warm-up: holding a worker a moment makes the pool start the next one."""
    time.sleep(seconds)


#: How often ``heartbeat`` writes: the resolution of the ``stop`` figures.
BEAT = 0.0002


def heartbeat(path: str) -> None:
    """Busy for ever (``stop`` stops it), appending the time to ``path`` every BEAT s."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    last = 0.0
    while True:
        now = time.monotonic()
        if now - last >= BEAT:
            os.write(fd, b"%.6f\n" % now)
            last = now


def announce_and_sleep(path: str) -> None:
    """Write this worker's pid to ``path``, then sleep (``recover`` kills it meanwhile)."""
    Path(path + ".tmp").write_text(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(60)


def intervals(folder: Path) -> list[tuple[float, float]]:
    """The ``(start, end)`` stamps of the items that wrote into ``folder``."""
    found = []
    for stamp in folder.iterdir():
        start, end = stamp.read_text().split()
        found.append((float(start), float(end)))
    return found


def peak_concurrency(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant (one ending as another starts counts once)."""
    starts = sorted(s for s, _ in spans)
    ends = sorted(e for _, e in spans)
    peak = open_now = j = 0
    for start in starts:
        while j < len(ends) and ends[j] <= start:
            open_now -= 1
            j += 1
        open_now += 1
        peak = max(peak, open_now)
    return peak


def wait_for_file(path: Path, timeout: float = 60.0) -> str:
    """The text of ``path`` once it exists (items write it whole with a rename)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.001)
    return path.read_text()


def last_beat_after_quiet(path: Path, quiet: float = 0.3, timeout: float = 10.0) -> float:
    """The last instant ``heartbeat`` wrote to ``path``, once the file has not grown for
    ``quiet`` seconds (the call has stopped); TimeoutError if it keeps growing."""
    deadline = time.monotonic() + timeout
    size, since = path.stat().st_size, time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the heartbeat in {path} did not stop within {timeout} s")
        time.sleep(0.005)
        now = path.stat().st_size
        if now != size:
            size, since = now, time.monotonic()
    lines = path.read_bytes().split()
    return float(lines[-1])
