"""Admission: start a job only while the machine has room for it (memory, load, pressure),
and no sooner than ``delay`` after the last start.

The reaper asks :meth:`Admission.check` before it hands a lane a job; the answer is why the
job must wait ("memfree", "load", "pressure:memory", "delay"), or None. A probe's reading
serves ``PROBE_TTL`` seconds of starts, so a storm of short jobs reads /proc a few times a
second rather than per job.

While a job is held back, the reaper's watch (:class:`AdmissionWatch`, a thread of its own)
looks again: at the exact end of the delay, every ``SAMPLE_INTERVAL`` seconds for memory
and load, and for pressure on a Linux PSI trigger (it wakes when a whole window passed
without the stall reaching the threshold) where the kernel allows one, else every
``SAMPLE_INTERVAL``. With ``memfree``, the watch also samples MemAvailable every
``MEMFREE_INTERVAL`` seconds while jobs run: under half of ``memfree``, it stops the
youngest job and queues it again (GNU parallel's rule). With nothing held back and no
``memfree``, the watch blocks without a timeout: no sampling at all.

The probes (``_probes.py``) read the files; this module is the policy: what each reading
means for the next start, and the watch that looks again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from procexec._core._resources import _probes
from procexec._core._resources._probes import PRESSURE_RESOURCES, PSI_WINDOW_US
from procexec._sizes import size_in_bytes

logger = logging.getLogger("procexec")

#: Seconds between two looks at memory, load or pressure while a job is held back.
SAMPLE_INTERVAL = 0.25
#: Seconds between two samples of MemAvailable while jobs run under ``memfree``.
MEMFREE_INTERVAL = 0.5
#: Seconds a probe's reading is used for before it is read again.
PROBE_TTL = 0.05


def parse_size(text: str | int, what: str) -> int:
    """Bytes from an int or a string like "1G" or "512M" (powers of 1024)."""
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise TypeError(f"{what} must be a number of bytes or a size like '1G', got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        parsed = size_in_bytes(text)
        if parsed is None:
            raise ValueError(f"{what} must be a size like '512M' or '2G', got {text!r}")
        value = parsed
    if value <= 0:
        raise ValueError(f"{what} must be positive, got {text!r}")
    return value


# --------------------------------------------------------------------- settings
@dataclass
class Admission:
    """What must hold before a job starts; its methods run under the reaper's lock."""

    memfree: int | None = None
    load: float | None = None
    pressure: Mapping[str, float] = field(default_factory=dict)
    delay: float | None = None
    #: A job was stopped to free memory: hold the next start until another job ends, or
    #: the stopped job would start again at once and be stopped again.
    after_stop: bool = False
    _last_start: float = -float("inf")
    _readings: dict[str, tuple[float, float]] = field(default_factory=dict)  # probe: (at, value)
    _failures: dict[str, str] = field(default_factory=dict)  # probe: the cause last warned of

    def check(self, now: float) -> str | None:
        """Why a job may not start now, or None."""
        if self.delay is not None and now < self._last_start + self.delay:
            return "delay"
        if self.memfree is not None and (
            self.after_stop or self._read("memfree", now, _probes.mem_available) < self.memfree
        ):
            return "memfree"
        if (
            self.load is not None
            and self._read("load", now, _probes.running_processes) >= self.load
        ):
            return "load"
        for resource, limit in self.pressure.items():
            if self._read(resource, now, partial(_probes.pressure, resource)) >= limit:
                return f"pressure:{resource}"
        return None

    def started(self, now: float) -> None:
        """A job was started at ``now``."""
        self._last_start = now

    def one_at_a_time(self) -> bool:
        """Whether each start must be checked on its own (a delay between starts)."""
        return self.delay is not None

    def wait_for(self, reason: str, now: float) -> float:
        """Seconds until a job held back for ``reason`` is worth checking again."""
        if reason == "delay" and self.delay is not None:
            return max(0.0, self._last_start + self.delay - now)
        return SAMPLE_INTERVAL

    def memory_low(self) -> bool:
        """Under half of ``memfree`` available: time to stop the youngest job."""
        if self.memfree is None:
            return False
        return (
            self._read("memfree", time.monotonic(), _probes.mem_available, ttl=0.0)
            < self.memfree / 2
        )

    def _read(
        self, name: str, now: float, probe: Callable[[], float], ttl: float = PROBE_TTL
    ) -> float:
        """The probe's value, read at most every ``ttl`` seconds. A probe that fails (it
        read at the constructor) admits the job, with a warning (once per cause, and an
        INFO when it can be read again): a hold that nothing can lift would leave the
        jobs waiting for ever."""
        cached = self._readings.get(name)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
        try:
            value = float(probe())
        except (OSError, ValueError, IndexError) as exc:
            self._failed(name, f"{exc.__class__.__name__}: {exc}")
            value = _ADMITS[name]
        else:
            if self._failures.pop(name, None) is not None:
                logger.info("procexec: %s can be read again", name)
        self._readings[name] = (now, value)
        return value

    def _failed(self, name: str, cause: str) -> None:
        """Warn that a probe failed: once per probe and cause, not at every look."""
        if self._failures.get(name) != cause:
            self._failures[name] = cause
            logger.warning(
                "procexec: cannot read %s (%s); not holding jobs back for it", name, cause
            )


#: What a probe that cannot be read counts as: room for a job.
_ADMITS: dict[str, float] = {
    "memfree": float("inf"),
    "load": 0.0,
    **dict.fromkeys(PRESSURE_RESOURCES, 0.0),
}


def make_admission(
    memfree: int | str | None = None,
    load: float | None = None,
    pressure: Mapping[str, float] | None = None,
    delay: float | None = None,
) -> Admission | None:
    """Check the executor's admission arguments; None when none is set."""
    if memfree is None and load is None and not pressure and delay is None:
        return None
    admission = Admission(
        memfree=None if memfree is None else parse_size(memfree, "memfree"),
        load=None if load is None else _positive(load, "load"),
        pressure=_check_pressure(pressure or {}),
        delay=None if delay is None else _non_negative(delay, "delay"),
    )
    _probe_now(admission)
    return admission


def _positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    return float(value)


def _non_negative(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, got {value!r}")
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"{what} must be a non-negative number of seconds, got {value!r}")
    return float(value)


def _check_pressure(value: object) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise TypeError(f"pressure must be a dict like {{'memory': 10}}, got {value!r}")
    checked: dict[str, float] = {}
    for resource, limit in value.items():
        if resource not in PRESSURE_RESOURCES:
            raise ValueError(
                f"pressure: unknown resource {resource!r}; known: {', '.join(PRESSURE_RESOURCES)}"
            )
        percent = _positive(limit, f"pressure[{resource!r}]")
        if percent > 100:
            raise ValueError(f"pressure[{resource!r}] is a percentage: at most 100, got {limit}")
        checked[resource] = percent
    return checked


def _probe_now(admission: Admission) -> None:
    """Read every probe once, so that a machine without one fails at the constructor with
    a message naming it, not later in a lane."""
    probes: list[tuple[str, Callable[[], float]]] = []
    if admission.memfree is not None:
        probes.append(("memfree (reads /proc/meminfo)", _probes.mem_available))
    if admission.load is not None:
        probes.append(("load (reads /proc/loadavg)", _probes.running_processes))
    for resource in admission.pressure:
        probes.append(
            (f"pressure (reads /proc/pressure/{resource})", partial(_probes.pressure, resource))
        )
    for what, probe in probes:
        try:
            probe()
        except (OSError, ValueError, IndexError) as exc:
            raise OSError(f"{what} is not available on this machine: {exc}") from None


# ------------------------------------------------------------------------ the watch
class WatchHost(Protocol):
    """What the watch needs of the reaper."""

    lock: threading.Lock

    def busy_locked(self) -> bool: ...
    def running_count_locked(self) -> int: ...
    def recheck(self) -> None: ...
    def requeue_youngest(self) -> None: ...


class AdmissionWatch:
    """The thread that looks again while jobs are held back and, with ``memfree``, watches
    memory while jobs run. It runs while the reaper has work, and ends with it."""

    def __init__(
        self, admission: Admission, host: WatchHost, on_held: Callable[[str | None], object] | None
    ) -> None:
        self.admission = admission
        self._host = host
        self._on_held = on_held
        self._poke = threading.Event()
        # Guarded by host.lock.
        self.held_by: str | None = None  # why the next job waits, if it waits for admission
        self._thread: threading.Thread | None = None
        # Owned by the watch's thread.
        self._told: str | None = None  # what on_held was last told
        self._triggers: dict[str, int | None] = {}

    def hold_locked(self, reason: str) -> None:
        """A job was held back for ``reason`` (called under host.lock)."""
        if self.held_by != reason:
            self.held_by = reason
            self._poke.set()

    def started_locked(self, running: int) -> None:
        """A job is being started, ``running`` now hold a slot (called under host.lock).
        With ``memfree``, the second one begins the memory watch."""
        self.admission.started(time.monotonic())
        if running == 2 and self.admission.memfree is not None:
            self._poke.set()

    def watching_locked(self) -> bool:
        """Whether the watch's thread runs (called under host.lock)."""
        return self._thread is not None

    def ensure_running_locked(self, name: str) -> None:
        """Start the watch's thread if it does not run (called under host.lock); raises
        RuntimeError if a thread cannot be started."""
        if self._thread is not None:
            return
        thread = threading.Thread(target=self._main, name=f"{name}-admission", daemon=True)
        self._thread = thread
        try:
            thread.start()
        except BaseException:
            self._thread = None
            raise

    def poke(self) -> None:
        """Have the thread look at the state now (a hold began, or the work ended)."""
        self._poke.set()

    def _main(self) -> None:
        try:
            while True:
                try:
                    if not self._turn():
                        return
                except Exception:  # a bug here must not leave held jobs waiting for ever
                    logger.exception("procexec: the admission watch failed; it goes on")
                    self._poke.wait(SAMPLE_INTERVAL)
        finally:
            for fd in self._triggers.values():
                _probes.close_trigger(fd)
            self._tell(None)

    def _turn(self) -> bool:
        """One look; False when the reaper has no work left."""
        with self._host.lock:
            if not self._host.busy_locked():
                self._thread = None
                self.held_by = None
                return False
            reason = self.held_by
            running = self._host.running_count_locked()
        self._tell(reason)
        self._wait(reason, running)
        if running > 1 and self.admission.memory_low():
            self._host.requeue_youngest()
        if reason is not None:
            self._host.recheck()
        return True

    def _wait(self, reason: str | None, running: int) -> None:
        memory_watch = self.admission.memfree is not None and running > 1
        if reason is None:
            timeout = MEMFREE_INTERVAL if memory_watch else None  # None: until poked
        else:
            timeout = self.admission.wait_for(reason, time.monotonic())
            if memory_watch:
                timeout = min(timeout, MEMFREE_INTERVAL)
            if reason.startswith("pressure:") and not memory_watch:
                resource = reason.partition(":")[2]
                if resource not in self._triggers:
                    self._triggers[resource] = _probes.open_trigger(
                        resource, self.admission.pressure[resource]
                    )
                fd = self._triggers[resource]
                if fd is not None:
                    _probes.quiet_window(fd, PSI_WINDOW_US / 1e6)
                    return
        self._poke.wait(timeout)
        self._poke.clear()

    def _tell(self, reason: str | None) -> None:
        """Call ``on_held`` when the reason jobs wait has changed."""
        if reason == self._told:
            return
        self._told = reason
        if self._on_held is not None:
            try:
                self._on_held(reason)
            except Exception:  # the caller's callback: logged, the watch goes on
                logger.exception("procexec: the on_held callback failed")
