"""What crosses between the client and the workers: resource and plugin names, the
outcome of a job, and its pushed form.

A task's outcome is ``("ok", value, worker, pid)``, ``("error", exception, worker, pid)``
or ``("cancelled",)``; a small one is pushed with the worker's events on the ``PLUGIN``
topic as ``{"key": key, "outcome": pickle.dumps(outcome)}``, a large one announced as
``{"key": key}`` and fetched as the task's result.

Client and workers must run the same procexec: the worker plugin, the task functions
(``procexec.dask._worker``) and the outcomes are pickled by their module paths.
"""

from __future__ import annotations

import pickle
from typing import Any

from distributed import KilledWorker

#: The worker resource that caps how many commands a worker runs at once.
SLOTS = "procexec-slots"
#: The name of the worker plugin, and the topic of the events that carry outcomes.
PLUGIN = "procexec"
#: What a task runs: a command's exit status (submit), its JobResult (run), a Python call.
SUBMIT, RUN, CALL = "submit", "run", "call"
#: run()'s own keywords, sent with the Popen ones.
RUN_KEYWORDS = ("input", "capture_output", "check", "text", "encoding", "errors")
#: Outcomes up to this size (pickled) travel with the events rather than be fetched. The
#: scheduler keeps the last ``distributed.admin.low-level-log-length`` (1,000) events of a
#: topic: at most 8 MB here.
PUSH_LIMIT = 8 * 1024


def pushed(outcome: tuple[Any, ...]) -> bytes | None:
    """``outcome`` pickled for an event, or None when it is to be fetched instead: too
    large, or not picklable here (Dask's own serialisation will then say why)."""
    try:
        payload = pickle.dumps(outcome)
    except Exception:
        return None
    return payload if len(payload) <= PUSH_LIMIT else None


def read_outcome(payload: bytes) -> Any:
    """A pushed outcome, or the error of reading it (a class the worker's procexec or
    Python has and this one lacks): that job fails with it, the others go on."""
    try:
        return pickle.loads(payload)
    except Exception as exc:
        return RuntimeError(
            f"procexec.dask: cannot read the outcome the worker sent ({exc!r}); are procexec "
            "and Python the same version here and on the workers?"
        )


def intact(error: BaseException) -> BaseException:
    """``error`` with its message, as it was raised on the worker.

    distributed installs tblib's exception pickling, which rebuilds a UnicodeError
    (UnicodeDecodeError of undecodable output, UnicodeEncodeError of ``input``) without
    calling its constructor: the copy keeps its ``args`` but its message is empty. It is
    made again from those ``args``.
    """
    if not isinstance(error, UnicodeError) or str(error) or not error.args:
        return error
    try:
        made = type(error)(*error.args)
    except Exception:  # not the constructor's arguments: keep what came
        return error
    made.__cause__, made.__context__ = error.__cause__, error.__context__
    made.__suppress_context__ = error.__suppress_context__
    notes = getattr(error, "__notes__", None)
    if notes is not None:
        made.__notes__ = list(notes)  # type: ignore[attr-defined]  # 3.11: no stub
    return made.with_traceback(error.__traceback__)


def outcome_of(result: Any) -> tuple[Any, ...]:
    """What a task gave back: its outcome tuple, or Dask's own error as one (a task that
    raised comes as ``(type, exception, traceback)``, a cancelled one as CancelledError)."""
    if isinstance(result, tuple) and result[:1] in (("ok",), ("error",), ("cancelled",)):
        return result
    if isinstance(result, tuple) and len(result) == 3 and isinstance(result[1], BaseException):
        result = result[1]
    if isinstance(result, KilledWorker):
        return ("lost", _worker_of(result))
    return ("dask-error", result)


def _worker_of(exc: KilledWorker) -> str:
    worker = getattr(exc, "last_worker", None)
    return str(getattr(worker, "address", worker) or "unknown")
