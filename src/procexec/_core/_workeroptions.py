"""How an executor's worker processes for Python callables are set up
(:class:`WorkerOptions`). Loaded when ``workers=`` is given or the class is named: the
default spec needs neither this module nor ``dataclasses``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from procexec._core._worker_main import dumps_call
from procexec._core._workerspec import WorkerSpec


@dataclass(frozen=True)
class WorkerOptions:
    """The worker processes that run :meth:`~procexec.ProcessExecutor.submit_call` and its
    kin; ``ProcessExecutor(workers=...)`` also takes these as a dict.

    Attributes:
        initializer: called as ``initializer(*initargs)`` once in each worker before its
            first call. If it raises, the call given to that worker fails with
            :class:`~procexec.InitializerError`; the executor goes on.
        initargs: the initializer's arguments.
        max_tasks: calls a worker runs before it is replaced by a fresh one (CPython's
            ``max_tasks_per_child``); None: no limit.
        idle_timeout: seconds an idle worker waits for a call before it exits; None: it
            waits until the executor is shut down.
        prestart: workers started when the executor is made, so that the first calls do
            not wait for an interpreter to start (at most ``max_jobs``).
        env: environment variables set (over this process's) in the workers.
    """

    initializer: Callable[..., object] | None = None
    initargs: tuple[Any, ...] = ()
    max_tasks: int | None = None
    idle_timeout: float | None = 60.0
    prestart: int = 0
    env: Mapping[str, str] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.initializer is not None and not callable(self.initializer):
            raise TypeError(f"initializer must be callable, got {self.initializer!r}")
        if not isinstance(self.initargs, tuple):
            raise TypeError(f"initargs must be a tuple, got {type(self.initargs).__name__}")
        _check_count(self.max_tasks, "max_tasks", allow_none=True, least=1)
        _check_count(self.prestart, "prestart", allow_none=False, least=0)
        timeout = self.idle_timeout
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not timeout > 0
            or math.isnan(timeout)
        ):
            raise ValueError(
                f"idle_timeout must be a positive number of seconds or None, got {timeout!r}"
            )
        if self.env is not None:
            _check_env(self.env)

    def spec(self) -> WorkerSpec:
        """What the lanes start workers with (the initializer pickled once, here)."""
        return WorkerSpec(
            initializer=self.initializer_payload(),
            env=self.env,
            max_tasks=self.max_tasks,
            idle_timeout=self.idle_timeout,
            prestart=self.prestart,
        )

    def initializer_payload(self) -> bytes | None:
        """The initializer and its arguments as the workers read them (cloudpickled once);
        PicklingError (or what pickling raised) if they cannot be sent."""
        if self.initializer is None:
            return None
        return dumps_call((self.initializer, self.initargs))


def worker_options(value: WorkerOptions | Mapping[str, Any] | None) -> WorkerOptions:
    """``ProcessExecutor(workers=...)`` checked: a WorkerOptions, a dict of its fields, or
    None (the defaults)."""
    if value is None:
        return WorkerOptions()
    if isinstance(value, WorkerOptions):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"workers must be a WorkerOptions or a dict, got {type(value).__name__}")
    known = {f.name for f in fields(WorkerOptions)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise TypeError(
            f"workers: unknown option {unknown[0]!r}; known: {', '.join(sorted(known))}"
        )
    return WorkerOptions(**value)


def _check_count(value: object, name: str, *, allow_none: bool, least: int) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int{' or None' if allow_none else ''}, got {value!r}")
    if value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")


def _check_env(env: object) -> None:
    if not isinstance(env, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in env.items()
    ):
        raise TypeError("env must be a dict of str to str")
