"""A lane's deadlines: job timeouts, and the steps of termination sequences.

Only the lane's thread uses a ``Stops``. A job is *timed* while it has a deadline: its
timeout, or the end of the grace period after the stop signal last sent. The lane waits
no longer than the nearest deadline (:meth:`Stops.wait_timeout`), then hands each job
whose deadline has passed to :meth:`Stops.deadline_passed`:

```
 timeout passed, child still running ──► timed_out; first step of the sequence
 timeout passed, child already exited ─► nothing: its exit is on its way
 grace period passed ──────────────────► next step (SIGKILL last)
```

Signals go to the job's process group (or to the child alone if it runs in ours), never
to a child already reaped, whose pid may have been reused.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque

from procexec._core._job import Job
from procexec._core._procstate import has_exited, signal_kills
from procexec._validate import TermSequence

logger = logging.getLogger("procexec")


class Stops:
    """The timed jobs of one lane, and how it stops a job.

    Attributes:
        timed: the jobs with a deadline; the lane reads it to skip this work when empty.
    """

    __slots__ = ("_term_sequence", "timed")

    def __init__(self, term_sequence: TermSequence) -> None:
        self._term_sequence = term_sequence
        self.timed: set[Job] = set()

    def watch(self, job: Job) -> None:
        """Time ``job`` if it has a deadline (a started job with a timeout)."""
        if job.deadline is not None:
            self.timed.add(job)

    def forget(self, job: Job) -> None:
        """``job`` has ended: no deadline of its matters any more."""
        self.timed.discard(job)

    def wait_timeout(self) -> float:
        """Seconds until the nearest deadline (0 if one has passed); ``timed`` not empty."""
        nearest = min(job.deadline for job in self.timed if job.deadline is not None)
        return max(0.0, nearest - time.monotonic())

    def due(self) -> list[Job]:
        """The jobs whose deadline has passed."""
        now = time.monotonic()
        return [job for job in self.timed if job.deadline is not None and job.deadline <= now]

    def begin(self, job: Job, *, kill: bool) -> None:
        """Start stopping ``job``: the termination sequence, or SIGKILL at once."""
        if kill:
            job.stop_steps = deque([(int(signal.SIGKILL), 0.0)])
        elif job.stop_steps is None:
            job.stop_steps = deque(self._term_sequence)
        else:
            return  # already being stopped
        self._next_step(job)

    def deadline_passed(self, job: Job) -> None:
        """``job``'s deadline has passed: the next stop step, or its timeout's first."""
        if job.stop_steps is not None:
            self._next_step(job)
            return
        assert job.popen is not None
        if has_exited(job.popen.pid):  # its exit is on its way: it did not time out
            job.deadline = None
            self.timed.discard(job)
            return
        first_signal = self._term_sequence[0][0]
        job.expired(stop_is_fatal=signal_kills(job.popen.pid, first_signal))
        self.begin(job, kill=False)

    def _next_step(self, job: Job) -> None:
        assert job.stop_steps is not None
        signum, grace = job.stop_steps.popleft()
        send_signal(job, signum)
        if job.stop_steps:
            job.deadline = time.monotonic() + grace
            self.timed.add(job)
        else:
            job.deadline = None
            self.timed.discard(job)


def send_signal(job: Job, signum: int) -> None:
    """Signal the job's process group (or the child alone if it shares ours)."""
    assert job.popen is not None
    if job.popen.returncode is not None:
        return  # reaped behind our back (a caller's wait()): the pid may be reused
    try:
        if job.own_group:
            os.killpg(job.popen.pid, signum)
        else:
            os.kill(job.popen.pid, signum)
    except ProcessLookupError:
        pass
    except PermissionError as exc:  # e.g. the child became set-user-ID
        logger.warning("procexec: cannot send signal %d to %r: %s", signum, job.argv, exc)
