r"""Per-job resource limits: ``limits=`` of ``submit()`` and ``run()``.

The limits bind the command and whatever it starts, and nothing else. A job with limits
runs as ``prlimit --as=... -- COMMAND`` (util-linux, on every Linux distribution): the
limits are set by that program before it ``exec``\ s the command, and the job keeps
CPython's fast vfork start. Where ``prlimit`` is missing, or the command cannot be found
here (so that its start fails with FileNotFoundError as usual), or ``executable=`` is
given, a ``preexec_fn`` sets them in the child instead; CPython then starts the child
with ``fork()``, whose cost grows with this process's memory (docs/benchmarks.md). A job
without limits starts as before.

What ran into a limit is not reported by the kernel. A job stopped by SIGXCPU (or by
SIGKILL at the hard CPU limit, one second later) certainly hit its CPU limit. A job that
failed while it had a memory limit most likely ran out of it: allocations fail, and the
program exits with an error or a signal. ``limit_hit`` names that limit.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeAlias

from procexec._sizes import size_in_bytes

#: A size: bytes, or a string with a K, M, G or T suffix (powers of 1024).
Size: TypeAlias = int | str


@dataclass(frozen=True)
class Limits:
    """Resource limits for one job, applied in its child before ``exec``.

    Attributes:
        memory: address space (``RLIMIT_AS``): the most virtual memory the command may map.
        data: data segment and heap (``RLIMIT_DATA``; on Linux 4.7+ all private writable
            mappings): nearer to the memory a program allocates than ``memory``.
        cpu: CPU seconds (``RLIMIT_CPU``): SIGXCPU when they are used up, SIGKILL one
            second later.
        open_files: open file descriptors (``RLIMIT_NOFILE``).
        processes: processes and threads of this user (``RLIMIT_NPROC``; on Linux the
            count is per user, not per job).

    Sizes are bytes, or strings such as ``"512M"`` or ``"2G"``. None leaves a limit as
    this process has it. A limit may not exceed this process's hard limit.
    """

    memory: Size | None = None
    data: Size | None = None
    cpu: float | None = None
    open_files: int | None = None
    processes: int | None = None

    def rlimits(self) -> tuple[tuple[int, tuple[int, int]], ...]:
        """``(resource, (soft, hard))`` pairs to set; raises ValueError or TypeError."""
        pairs: list[tuple[int, tuple[int, int]]] = []
        for name, (which, parse) in _RESOURCES.items():
            value = getattr(self, name)
            if value is None:
                continue
            soft = parse(name, value)
            hard = soft + 1 if which == resource.RLIMIT_CPU else soft  # SIGXCPU, then SIGKILL
            pairs.append((which, (soft, _within_hard_limit(name, which, hard))))
        return tuple(pairs)

    def memory_limited(self) -> bool:
        """Whether a memory limit (``memory`` or ``data``) is set."""
        return self.memory is not None or self.data is not None


def _size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"limits: {name} must be a number of bytes or a size like '512M'")
    if isinstance(value, str):
        parsed = size_in_bytes(value, units="KMGT")
        if parsed is None:
            raise ValueError(f"limits: {name}={value!r} is not a size like '512M' or '2G'")
        value = parsed
    if value <= 0:
        raise ValueError(f"limits: {name} must be positive, got {value}")
    return value


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"limits: {name} must be an integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"limits: {name} must be positive, got {value}")
    return value


def _seconds(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"limits: {name} must be a number of seconds, got {value!r}")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"limits: {name} must be a positive number of seconds, got {value}")
    return max(1, round(value))  # the kernel counts whole seconds


_RESOURCES: dict[str, tuple[int, Callable[[str, object], int]]] = {
    "memory": (resource.RLIMIT_AS, _size),
    "data": (resource.RLIMIT_DATA, _size),
    "cpu": (resource.RLIMIT_CPU, _seconds),
    "open_files": (resource.RLIMIT_NOFILE, _count),
    "processes": (resource.RLIMIT_NPROC, _count),
}


def _within_hard_limit(name: str, which: int, value: int) -> int:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY and value > hard:
        raise ValueError(
            f"limits: {name}={value} is above this process's hard limit ({hard}), which "
            "only root can raise"
        )
    return value


def check_limits(value: object) -> Limits | None:
    """A Limits from ``limits=`` (a Limits, a mapping of its fields, or None), or raise."""
    if value is None or isinstance(value, Limits):
        limits = value
    elif isinstance(value, Mapping):
        known = {field.name for field in fields(Limits)}
        unknown = set(value) - known
        if unknown:
            raise TypeError(
                f"limits: unknown limit(s) {', '.join(sorted(map(str, unknown)))}; "
                f"known: {', '.join(sorted(known))}"
            )
        limits = Limits(**value)
    else:
        raise TypeError(f"limits must be a procexec.Limits or a dict, got {type(value).__name__}")
    if limits is not None:
        limits.rlimits()  # check every value now, in the caller, not in the child
    return limits


class SetLimits:
    """The ``preexec_fn`` that sets a job's limits, then runs the caller's own, if any."""

    def __init__(
        self, pairs: tuple[tuple[int, tuple[int, int]], ...], then: Callable[[], Any] | None
    ) -> None:
        self._pairs = pairs
        self._then = then

    def __call__(self) -> None:
        for which, pair in self._pairs:
            resource.setrlimit(which, pair)
        if self._then is not None:
            self._then()


def add_limits(popen_kwargs: dict[str, Any], limits: Limits) -> None:
    """Make the child set ``limits`` before ``exec`` (the caller's preexec_fn still runs)."""
    popen_kwargs["preexec_fn"] = SetLimits(limits.rlimits(), popen_kwargs.get("preexec_fn"))


_PRLIMIT_OPTION = {
    resource.RLIMIT_AS: "--as",
    resource.RLIMIT_DATA: "--data",
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_NOFILE: "--nofile",
    resource.RLIMIT_NPROC: "--nproc",
}


@functools.lru_cache(maxsize=1)
def _prlimit() -> str | None:
    return shutil.which("prlimit")


def limited(command: Any, popen_kwargs: dict[str, Any], limits: Limits) -> Any:
    """The command to start for a job with ``limits``: ``prlimit ... -- COMMAND`` where
    that can be used, else ``command`` itself with a preexec_fn added to
    ``popen_kwargs`` (see the module docstring)."""
    prlimit = _prlimit()
    argv = _argv(command, popen_kwargs)
    if prlimit is None or argv is None or popen_kwargs.get("executable") is not None:
        add_limits(popen_kwargs, limits)
        return command
    popen_kwargs.pop("shell", None)
    options = [
        f"{_PRLIMIT_OPTION[which]}={soft}:{hard}" for which, (soft, hard) in limits.rlimits()
    ]
    return [prlimit, *options, "--", *argv]


def _argv(command: Any, popen_kwargs: dict[str, Any]) -> list[Any] | None:
    """``command`` as the argv Popen would run, or None if its program is not found here."""
    if popen_kwargs.get("shell"):
        return ["/bin/sh", "-c", command]
    argv = [command] if isinstance(command, (str, bytes, os.PathLike)) else list(command)
    program = os.fsdecode(argv[0])
    env = popen_kwargs.get("env")
    if os.sep in program:
        cwd = popen_kwargs.get("cwd")
        path = os.path.join(os.fsdecode(cwd), program) if cwd is not None else program
        return argv if os.access(path, os.X_OK) and not os.path.isdir(path) else None
    search = os.pathsep.join(os.get_exec_path(env))
    return argv if shutil.which(program, path=search) is not None else None


def limit_hit(limits: Limits | None, returncode: int, cpu_seconds: float | None) -> str | None:
    """The limit a finished job most likely ran into, or None (see the module docstring)."""
    if limits is None or returncode == 0:
        return None
    if limits.cpu is not None and (
        returncode == -signal.SIGXCPU
        or (returncode == -signal.SIGKILL and cpu_seconds is not None and cpu_seconds >= limits.cpu)
    ):
        return "cpu"
    if limits.memory_limited():
        return "memory" if limits.memory is not None else "data"
    return None
