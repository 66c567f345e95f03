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
    ProcessExecutor,
    ProcessFuture,
    default_max_jobs,
    progress,
)
from procexec._result import JobResult

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
    from procexec._core import (
        CallLost,
        CallTimeout,
        ExecutorStats,
        InitializerError,
        Limits,
        WorkerOptions,
    )
    from procexec._rusage import Rusage

#: Public names loaded on first use, and their modules: the call errors bring
#: multiprocessing in, the others are dataclasses (``dataclasses`` loads ``inspect``); a
#: run of commands needs none of them (``procexec._core`` loads its own on first use).
_ON_FIRST_USE = {
    **dict.fromkeys(
        ("CallLost", "CallTimeout", "ExecutorStats", "InitializerError", "Limits", "WorkerOptions"),
        "procexec._core",
    ),
    "Rusage": "procexec._rusage",
}


def __getattr__(name: str) -> object:
    """The public names of ``_ON_FIRST_USE``, loaded when first asked for."""
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module  # noqa: PLC0415

    return getattr(import_module(module), name)
