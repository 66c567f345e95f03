"""Progress bars (tqdm.auto: a terminal bar, or a widget in a notebook) that count finished
jobs and failures: ``procexec.progress(futures)`` and ``ProcessExecutor(progress=True)``."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, as_completed
from typing import Any, TypeVar

F = TypeVar("F", bound=Future[Any])  # not a string: a ForwardRef is compiled at import


def failed(future: Future[Any]) -> bool:
    """Whether a finished job failed: it raised, or its exit status is not 0. The value of
    a future whose ``value_is_exit_status`` is False (a Python call's) is no status."""
    if future.cancelled():
        return False
    if future.exception() is not None:
        return True
    if not getattr(future, "value_is_exit_status", True):
        return False
    result = future.result()
    status = result if isinstance(result, int) else getattr(result, "returncode", 0)
    return status != 0


def progress(
    futures: Iterable[F],
    *,
    total: int | None = None,
    desc: str | None = None,
    **tqdm_options: Any,
) -> Iterator[F]:
    """Yield ``futures`` as their jobs end (``as_completed``), with a bar counting them.

    Args:
        futures: the jobs' futures (an iterable is read to its end first).
        total: the bar's total; default: how many futures there are.
        desc: the bar's label.
        **tqdm_options: passed to ``tqdm.auto.tqdm`` (``file``, ``disable``, ``leave``...).

    The bar's postfix counts the failures: a job that raised (it could not start, timed
    out under ``run()``, failed its check...) or ended with a status other than 0.
    """
    from tqdm.auto import tqdm  # noqa: PLC0415  # loaded only when a bar is asked for

    waiting = list(futures)
    size = len(waiting) if total is None else total
    bar = tqdm(total=size, desc=desc, unit="job", **tqdm_options)
    failures = 0
    try:
        for finished in as_completed(waiting):
            future: F = finished  # type: ignore[assignment]  # one of ``waiting``
            if failed(future):
                failures += 1
                bar.set_postfix(failed=failures, refresh=False)
            bar.update(1)
            yield future
    finally:
        bar.close()


class ExecutorBar:
    """The bar of ``ProcessExecutor(progress=True)``: its total grows as jobs are queued,
    and each job's done-callback (on a lane) counts it. Closed at shutdown."""

    def __init__(self, **tqdm_options: Any) -> None:
        from tqdm.auto import tqdm  # noqa: PLC0415  # loaded only when a bar is asked for

        self._bar = tqdm(total=0, unit="job", **tqdm_options)
        self._lock = threading.Lock()
        self._failures = 0

    def queued(self, future: Future[Any]) -> None:
        """Count a queued job in the total, and have it counted when it ends."""
        with self._lock:
            self._bar.total += 1
            self._bar.refresh()
        future.add_done_callback(self._ended)

    def _ended(self, future: Future[Any]) -> None:
        with self._lock:
            if failed(future):
                self._failures += 1
                self._bar.set_postfix(failed=self._failures, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        """Close the bar (idempotent)."""
        with self._lock:
            self._bar.close()
