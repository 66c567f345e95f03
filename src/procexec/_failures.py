"""What a failure becomes: a job's exception, a failed loop's, a logged cleanup step.

procexec's rule: a failure while handling one job is that job's outcome; a failure of a
lane's loop itself fails the jobs that lane holds; a failure while cleaning up after either
is logged and the cleanup goes on.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from procexec._limits import explain

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
