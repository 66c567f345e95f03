"""procexec: run external commands in parallel under a limit, as concurrent.futures futures.

```python
from concurrent.futures import as_completed
from procexec import ProcessExecutor

with ProcessExecutor(max_jobs=4) as ex:
    futures = {ex.submit(["gzip", "-k", path]): path for path in paths}
    for future in as_completed(futures):
        print(futures[future], "exit status", future.result())
```
"""

from typing import TYPE_CHECKING

from procexec._core import (
    DEFAULT_TERM_SEQUENCE,
    CallFuture,
    ExecutorStats,
    Limits,
    ProcessExecutor,
    ProcessFuture,
    WorkerOptions,
    default_max_jobs,
    progress,
)
from procexec._result import JobResult, Rusage

__all__ = (
    "DEFAULT_TERM_SEQUENCE",
    "CallFuture",
    "CallLost",
    "CallTimeout",
    "ExecutorStats",
    "InitializerError",
    "JobResult",
    "Limits",
    "ProcessExecutor",
    "ProcessFuture",
    "Rusage",
    "WorkerOptions",
    "default_max_jobs",
    "progress",
)

__version__ = "0.1.0"

if TYPE_CHECKING:
    from procexec._core import CallLost, CallTimeout, InitializerError


def __getattr__(name: str) -> object:
    """``CallLost``, ``CallTimeout`` and ``InitializerError``, loaded on first use (they
    bring multiprocessing in: a run of commands does not need it)."""
    if name in ("CallLost", "CallTimeout", "InitializerError"):
        import procexec._core  # noqa: PLC0415

        return getattr(procexec._core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
