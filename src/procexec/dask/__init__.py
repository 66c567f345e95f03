"""Run the same jobs on a Dask cluster: ``DaskExecutor`` (``pip install procexec[dask]``).

Dask places the jobs; procexec runs and stops them on each worker. A worker plugin the
client registers gives every worker one :class:`procexec.ProcessExecutor` (guarded: its jobs
die with the worker, SIGKILL included), whose ``max_jobs`` is the worker's
``procexec-slots`` resource. Each job is one Dask task with a unique key (``pure=False``)
that needs one slot; the task, a coroutine on the worker's event loop, hands the command to
the worker's executor and awaits it.

```
 client (this process)                      each worker
 DaskExecutor.submit/run ── task ──────────►  the task: the worker's ProcessExecutor runs
   DaskFuture (concurrent.futures.Future)       the command (process group, timeout,
                                                capture, rusage as locally)
   ◄── the outcome, pushed as an event ────   an ordinary failure is a value, not a
       (a large one: fetched); released         task error
 terminate()/kill()/cancel() ── client.run ─►  stop the job by its key (or never start it)
```

Results are fetched and released as soon as they arrive, so a worker lost later never makes
Dask compute a finished job again. A job whose worker is lost while it runs is re-run when
``retries`` allows, else it fails with :class:`WorkerLostError`: runs are at-least-once. A
job whose outcome has not come back when the client loses the scheduler fails with
:class:`SchedulerLostError`.

Client and workers must run the same procexec (the worker plugin, the task functions and
the outcomes cross the wire pickled by their module paths): ``_wire.py`` says what crosses.
"""

from __future__ import annotations

try:
    import dask  # noqa: F401  # the extra: checked here, used by the modules below
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise ImportError(
        "procexec.dask needs Dask's distributed: pip install 'procexec[dask]'"
    ) from exc

from procexec.dask._client import DaskExecutor
from procexec.dask._connect import SchedulerUnreachableError
from procexec.dask._future import DaskFuture, SchedulerLostError, WorkerLostError
from procexec.dask._wire import PLUGIN as PLUGIN  # the worker plugin's name and event topic
from procexec.dask._wire import SLOTS as SLOTS  # the worker resource: procexec-slots

__all__ = (
    "DaskExecutor",
    "DaskFuture",
    "SchedulerLostError",
    "SchedulerUnreachableError",
    "WorkerLostError",
)
