"""The engine: queue, limit, lanes, children, futures. Front ends and backends (``cli``,
``report``, ``dask``, ``aio``, ``compat``) use :mod:`procexec`'s public names or the few
this package exports below, never a module of it.

Its modules in order, each importing only modules listed after it (``tests/test_layers.py``
checks it, counting imports inside functions and under ``TYPE_CHECKING``):

```
 _executor     ProcessExecutor: the public face (submit, run, map, *_call, max_jobs, stats)
 _calls        queueing Python calls; map in input order; ex.calls, an Executor of calls
 _lifecycle    with / async with, interpreter exit, abort: sync and async side by side
 _reaper       the queue, the limit, the lanes; knows which lane holds which job
 _lane         one thread's loop: start, watch, feed, stop, reap (its docstring draws it)
 _lanehost     LaneHost and LaneControl: the two halves of the lane <-> reaper conversation
 _workers      a lane's worker processes for Python calls (a worker is a lane child)
 _stops        a lane's deadlines: timeouts and termination sequences
 _procstate    what the kernel says of an unreaped child
 _callfuture   CallFuture: a call's future (cancel stops a running call)
 _callerrors   CallLost, InitializerError, CallTimeout (loaded when a call fails)
 _future       ProcessFuture and the base of both futures; JobControl: what a future
               may ask of its executor
 _awaiting     await future: its outcome in asyncio, a cancellation that stops the job
 _calljob      CallJob: a call as the engine's second kind of job
 _job          Job, and JobFuture: what the engine calls on a job's future
 _options      run()/submit() keywords: Popen pipes, text mode, the process group
 _types        the keyword TypedDicts of submit() and run()
 _workeroptions  WorkerOptions: how the workers of calls are set up
 _workerspec   WorkerSpec: what the lanes start workers with (the default, or from those)
 _stats        ExecutorStats: a look at an executor (loaded on the first look)
 _worker_main  the worker process's own program (imports nothing of procexec)
 _streams      a child's output and input pipes
 _signals      SIGTERM/SIGHUP as SystemExit in a with-block; the signal watch thread
 _failures     what a failure becomes; done-callbacks contained on procexec's threads
 _progress     progress bars (tqdm)
 _platform     how a child's exit is seen: pidfd, or the portable fallback
 _poller       the lanes' poll(2) loop
 _resources    admission, per-job limits, fd limits, the guardian (its own docstring)
```

Below the engine, leaves that import nothing of procexec but one another:
``procexec._result`` and ``procexec._rusage`` (their paths are pickled across Dask: keep
them), ``procexec._status``, ``procexec._validate``, ``procexec._sizes``.
"""

from typing import TYPE_CHECKING

from procexec._core._callfuture import CallFuture
from procexec._core._calljob import call_name
from procexec._core._calls import map_in_order
from procexec._core._executor import ProcessExecutor
from procexec._core._failures import contain_callback_errors, invoke_callbacks
from procexec._core._future import ProcessFuture
from procexec._core._options import DEFAULT_TERM_SEQUENCE, default_max_jobs
from procexec._core._progress import progress
from procexec._core._signals import EXIT_SIGNALS, SignalWatch, exit_status

__all__ = (
    "DEFAULT_TERM_SEQUENCE",
    "EXIT_SIGNALS",
    "CallFuture",
    "CallLost",
    "CallTimeout",
    "ExecutorStats",
    "InitializerError",
    "Limits",
    "ProcessExecutor",
    "ProcessFuture",
    "SignalWatch",
    "WorkerOptions",
    "call_name",
    "contain_callback_errors",
    "default_max_jobs",
    "exit_status",
    "invoke_callbacks",
    "make_admission",
    "map_in_order",
    "progress",
)

if TYPE_CHECKING:
    from procexec._core._callerrors import CallLost, CallTimeout, InitializerError
    from procexec._core._resources._admission import make_admission
    from procexec._core._resources._rlimits import Limits
    from procexec._core._stats import ExecutorStats
    from procexec._core._workeroptions import WorkerOptions

#: Names loaded on first use, and their modules. The errors subclass
#: concurrent.futures.process.BrokenProcessPool, whose module loads multiprocessing (and
#: socket); the others are dataclasses (``dataclasses`` loads ``inspect``) or, for
#: ``make_admission``, the probes and ``pathlib``: a run of commands needs none of them.
_ON_FIRST_USE = {
    "CallLost": "procexec._core._callerrors",
    "CallTimeout": "procexec._core._callerrors",
    "InitializerError": "procexec._core._callerrors",
    "ExecutorStats": "procexec._core._stats",
    "Limits": "procexec._core._resources._rlimits",
    "WorkerOptions": "procexec._core._workeroptions",
    "make_admission": "procexec._core._resources._admission",
}


def __getattr__(name: str) -> object:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module  # noqa: PLC0415

    return getattr(import_module(module), name)
