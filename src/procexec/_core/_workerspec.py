"""WorkerSpec: how the lanes start the workers of Python calls (from ``WorkerOptions``,
checked). A plain class: the engine makes the default one for every executor, and a run
of commands does not load ``dataclasses`` for it."""

from __future__ import annotations

from collections.abc import Mapping


class WorkerSpec:
    """How the executor's workers are started: what ``WorkerOptions.spec()`` gives, with
    the initializer pickled; read, never changed."""

    __slots__ = ("env", "idle_timeout", "initializer", "max_tasks", "prestart")

    def __init__(
        self,
        *,
        initializer: bytes | None = None,
        env: Mapping[str, str] | None = None,
        max_tasks: int | None = None,
        idle_timeout: float | None = 60.0,
        prestart: int = 0,
    ) -> None:
        self.initializer = initializer
        self.env = env
        self.max_tasks = max_tasks
        self.idle_timeout = idle_timeout
        self.prestart = prestart

    def __repr__(self) -> str:
        return (
            f"WorkerSpec(initializer={'set' if self.initializer else None}, env={self.env!r}, "
            f"max_tasks={self.max_tasks!r}, idle_timeout={self.idle_timeout!r}, "
            f"prestart={self.prestart!r})"
        )
