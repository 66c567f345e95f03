"""What the tests' Python calls run, in worker processes: importable by reference
(``tests._call_targets``) and light, so a worker imports nothing else of the suite."""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


def double(x: int) -> int:
    return 2 * x


def add(a: int, b: int = 0) -> int:
    return a + b


def keywords(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def pid() -> int:
    return os.getpid()


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def exit_with(code: int) -> None:
    sys.exit(code)


def os_exit(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault() -> None:
    faulthandler._sigsegv()  # type: ignore[attr-defined]  # CPython's own test hook


def unpicklable_result() -> threading.Lock:
    return threading.Lock()


def _explode() -> None:
    raise RuntimeError("this object cannot be rebuilt here")


class Unreadable:
    """Pickles in the worker; unpickling it (in the parent) raises."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_explode, ())


def unreadable_result() -> Unreadable:
    return Unreadable()


def sleep_then(value: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return value


def wait_for_file(path: str, value: Any = None) -> Any:
    """Return ``value`` once ``path`` exists (the test creates it); at most 60 s."""
    end = time.monotonic() + 60
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.005)
    return value


def heartbeat(path: str, with_child: bool = False, trap_sigterm: bool = False) -> None:
    """Append a line to ``path`` every few ms, for ever; ``with_child``: first start a
    ``sleep`` child (its pid is the file's first line); ``trap_sigterm``: ignore SIGTERM."""
    if trap_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with open(path, "a", buffering=1) as file:
        if with_child:
            child = subprocess.Popen(["sleep", "300"])
            file.write(f"child {child.pid}\n")
        file.write(f"worker {os.getpid()}\n")
        while True:
            file.write("beat\n")
            time.sleep(0.005)


def burn(seconds: float) -> float:
    """Burn CPU for ``seconds`` of this process's CPU time; the CPU time used."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
    return time.process_time() - start


def allocate(mib: int) -> int:
    """Touch ``mib`` MiB, free them; the MiB touched."""
    block = bytearray(mib * 1024 * 1024)
    block[::4096] = b"x" * len(range(0, len(block), 4096))
    del block
    return mib


def record(directory: str, barrier: int, token: str) -> int:
    """Mark this item running in ``directory``; wait until ``barrier`` items started and
    counted (at most 30 s); write how many it saw running; unmark. Calls and commands
    (``python -c`` running this function) use the same marks."""
    me = os.path.join(directory, f"run-{token}")

    def count(prefix: str) -> int:
        return sum(name.startswith(prefix) for name in os.listdir(directory))

    def wait(prefix: str) -> None:
        end = time.monotonic() + 30
        while count(prefix) < barrier and time.monotonic() < end:
            time.sleep(0.002)

    Path(me).touch()
    Path(directory, f"started-{token}").touch()
    wait("started-")
    seen = count("run-")
    Path(directory, f"seen-{token}").write_text(str(seen))
    Path(directory, f"counted-{token}").touch()
    wait("counted-")
    os.remove(me)
    return seen


def write_pid(path: str) -> None:
    """An initializer: append this worker's pid to ``path``."""
    with open(path, "a") as file:
        file.write(f"{os.getpid()}\n")


def failing_initializer() -> None:
    raise ValueError("error in initializer")


def environment(name: str) -> str | None:
    return os.environ.get(name)


def imported(name: str) -> bool:
    """Whether this worker has imported module ``name``."""
    return name in sys.modules


class FileQueue:
    """What a ``logging.handlers.QueueHandler`` needs of a queue, that can be sent to a
    worker: records put there are appended to a file, and read back here (CPython's
    failing-initializer test hands its initializer a ``multiprocessing.Queue``, which
    only reaches the processes ``multiprocessing`` starts)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._taken = 0

    def put_nowait(self, record: logging.LogRecord) -> None:
        with open(self.path, "a") as file:
            file.write(json.dumps(record.getMessage()) + "\n")

    def get_nowait(self) -> logging.LogRecord:
        """The next record put (by any process); ``queue.Empty`` if there is none."""
        lines = Path(self.path).read_text().splitlines() if os.path.exists(self.path) else []
        if self._taken >= len(lines):
            raise queue.Empty
        self._taken += 1
        return logging.makeLogRecord({"msg": json.loads(lines[self._taken - 1])})


class DelMarker:
    """Creates the file ``path`` when it is garbage-collected (in the worker, once the call
    that took it as an argument is done with it)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __del__(self) -> None:
        Path(self.path).touch()


class Raiser:
    """A class whose classmethod a call runs (sent by reference to the class)."""

    @classmethod
    def fail(cls, message: str) -> None:
        raise RuntimeError(message)  # a line the traceback shows


def failing_initializer_logging(path: str) -> None:
    """An initializer that appends this worker's pid to ``path``, then fails."""
    write_pid(path)
    raise ValueError("error in initializer")


def _report(ready: str, text: str) -> None:
    """Write ``text`` to ``ready``/<this pid>, atomically (a test counts the files)."""
    temporary = os.path.join(ready, f".{os.getpid()}")
    with open(temporary, "w") as file:
        file.write(text)
    os.rename(temporary, os.path.join(ready, str(os.getpid())))


def busy_with_a_child(marker: str, ready: str) -> None:
    """A busy call: start a child with ``marker`` in its argv, report both pids, and wait
    (at most 300 s)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", marker])
    _report(ready, f"{os.getpid()} {child.pid}")
    time.sleep(300)


def report_pid(ready: str) -> None:
    """Report this worker's pid (it then waits idle for the next call)."""
    _report(ready, str(os.getpid()))


class HugeWhenPickled:
    """Small here, but pickling it builds a 4 GiB bytes object: under a memory limit below
    that, pickling this result raises MemoryError in the worker (at once: nothing is
    touched)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (bytes, (bytes(4 * 2**30),))


def huge_result() -> HugeWhenPickled:
    return HugeWhenPickled()
