"""What a failure becomes: a job's exception, a failed loop's, a logged cleanup step, a
done-callback's error.

procexec's rule: a failure while handling one job is that job's outcome; a failure of a
lane's loop itself fails the jobs that lane holds; a failure while cleaning up after either
is logged and the cleanup goes on; what a done-callback raises on one of procexec's own
threads (:func:`contain_callback_errors`) is logged, and never ends that thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from procexec._core._resources._limits import explain

logger = logging.getLogger("procexec")


def job_error(exc: BaseException) -> BaseException:
    """The error a job's future gets when handling it raised ``exc``: ``exc`` itself (an
    OSError naming the limit that was hit), or a RuntimeError in place of a BaseException
    that is not an Exception, which ``result()`` must not raise in the caller's thread."""
    if isinstance(exc, Exception):
        return explain(exc)
    error = RuntimeError(f"procexec: handling this job raised {exc!r}")
    error.__cause__ = exc
    return error


def loop_failure(exc: BaseException) -> RuntimeError:
    """The error every future of a lane gets when the lane's loop itself failed with
    ``exc``."""
    error = RuntimeError(f"procexec's reaper failed: {exc!r}")
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def logged(what: str) -> Iterator[None]:
    """Run the block; log what it raises instead of raising it, so the cleanup goes on."""
    try:
        yield
    except BaseException:
        logger.exception("procexec: %s failed", what)


def interrupt_behind(exc: BaseException) -> BaseException:
    """The KeyboardInterrupt (or SystemExit) that ``exc`` was raised while handling, else
    ``exc``. An interrupt that lands inside ``Thread.start()``'s wait can make CPython's
    Condition, which is not interrupt-safe, raise ``RuntimeError: release unlocked lock`` in
    its place; the caller must see the interrupt."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, (KeyboardInterrupt, SystemExit)):
            return cause
        cause = cause.__context__
    return exc


#: Set on procexec's own threads (the lanes, the signal watch): there whatever a
#: done-callback raises is logged, since no caller is there to receive it.
_own_thread = threading.local()


def contain_callback_errors() -> None:
    """Mark the calling thread as procexec's own (see :func:`invoke_callbacks`)."""
    _own_thread.contained = True


def invoke_callbacks(future: Future[Any]) -> None:
    """Run every done-callback of ``future`` once, whatever an earlier one raised.

    A future's ``_invoke_callbacks`` calls this in place of ``concurrent.futures.Future``'s
    own hook, which ``set_result``, ``set_exception`` and ``cancel`` all call: that one
    catches only Exception, so a callback raising SystemExit or KeyboardInterrupt skipped
    the callbacks after it and escaped into the thread resolving the future (a lane, the
    reaper, procexec.dask's collector). Here anything a callback raises is logged; on a
    thread of the caller's (``cancel()``), a BaseException that is not an Exception is
    raised again once every callback has run (tests/test_containment.py).
    """
    escaped: BaseException | None = None
    for callback in future._done_callbacks:  # type: ignore[attr-defined]
        try:
            callback(future)
        except BaseException as exc:
            if isinstance(exc, Exception) or getattr(_own_thread, "contained", False):
                logger.exception("procexec: done-callback %r of %r raised", callback, future)
            elif escaped is None:
                escaped = exc
    if escaped is not None:
        raise escaped
