"""Where a job's output goes: printed whole (the default), line by line as it comes
(``--line-buffer``), straight through (``-u``), or saved under ``--results DIR``; with
``--tag`` / ``--tagstring`` each line prefixed, with ``-v`` the command printed first, with
``-k`` in input order."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from procexec.cli._feed import Job
from procexec.cli._sink import OutputError, Sink

Tag = Callable[[Job], str]
Text = Callable[[], str]  # the job's command line, made when asked for


def _tagged(data: bytes, prefix: bytes | None) -> bytes:
    if prefix is None or not data:
        return data
    return b"".join(prefix + line for line in data.splitlines(keepends=True))


class Display:
    """Prints each job's output whole when it ends; in input order with ``keep_order``.

    ``out`` and ``err`` are procexec's stdout and stderr: each job's output is written to
    them whole (see procexec.cli._sink), stdout first.
    """

    def __init__(
        self, keep_order: bool, tag: Tag | None, verbose: bool, out: Sink, err: Sink
    ) -> None:
        self.out = out
        self.err = err
        self.keep_order = keep_order
        self.tag = tag
        self.verbose = verbose
        self.next_index = 0  # the first job (by index) not printed yet
        self.held: dict[int, tuple[Job, Text, bytes, bytes]] = {}

    def run_options(self, job: Job) -> dict[str, Any]:
        """The keywords for ``run()`` that send the job's output where it goes."""
        return {"capture_output": True}

    def started(self, job: Job, text: Text) -> None:
        """A job started (``text()``: its command line)."""

    def ended(self, job: Job, text: Text, stdout: bytes, stderr: bytes) -> None:
        """Print now, or hold until every earlier job has been printed."""
        if not self.keep_order:
            self._print(job, text, stdout, stderr)
            return
        self.held[job.index] = (job, text, stdout, stderr)
        while self.next_index in self.held:
            self._print(*self.held.pop(self.next_index))
            self.next_index += 1

    def skipped(self, job: Job) -> None:
        """A job that will not run (stopped by --halt): later jobs need not wait for it."""
        if self.keep_order:
            self.ended(job, str, b"", b"")

    def close(self) -> None:
        """The run is over: print what is still held (jobs after one that never ended)."""
        for index in sorted(self.held):
            self._print(*self.held.pop(index))

    def _prefix(self, job: Job) -> bytes | None:
        if self.tag is None:
            return None
        return self.tag(job).encode("utf-8", "surrogateescape") + b"\t"

    def _print(self, job: Job, text: Text, stdout: bytes, stderr: bytes) -> None:
        if self.verbose and (line := text()):
            stdout = line.encode("utf-8", "surrogateescape") + b"\n" + stdout
        prefix = self._prefix(job)
        self.out.write(_tagged(stdout, prefix))
        self.err.write(_tagged(stderr, prefix))


class LineDisplay(Display):
    """``--line-buffer``: each complete line printed as soon as the job writes it (on the
    thread that read it; a write that fails is handed to the runner, which raises it)."""

    def __init__(
        self, tag: Tag | None, verbose: bool, out: Sink, err: Sink, wake: Callable[[], None]
    ) -> None:
        super().__init__(False, tag, verbose, out, err)
        self.lock = threading.Lock()  # guards broken and lost
        self.wake = wake  # ends the runner's wait
        self.broken: BaseException | None = None  # stdout closed or full: the runner stops
        self.lost: set[int] = set()  # the jobs (by seq) a line of which could not be written

    def run_options(self, job: Job) -> dict[str, Any]:
        prefix = self._prefix(job) or b""
        return {
            "on_stdout_line": lambda line: self._line(self.out, prefix + line, job.seq),
            "on_stderr_line": lambda line: self._line(self.err, prefix + line, job.seq),
        }

    def started(self, job: Job, text: Text) -> None:
        if self.verbose:
            line = text().encode("utf-8", "surrogateescape")
            self._line(self.out, (self._prefix(job) or b"") + line + b"\n", job.seq)

    def ended(self, job: Job, text: Text, stdout: bytes, stderr: bytes) -> None:
        """Already printed, line by line; raises what stopped the printing if a line of
        this job's was lost (a job that printed nothing since is logged as usual)."""
        with self.lock:
            broken = self.broken if job.seq in self.lost else None
        if broken is not None:
            raise broken

    def _line(self, sink: Sink, line: bytes, seq: int) -> None:
        try:
            sink.write(line)
        except (BrokenPipeError, OutputError) as error:
            with self.lock:
                self.lost.add(seq)
                if self.broken is None:
                    self.broken = error
            self.wake()


class RawDisplay(Display):
    """``-u``: the jobs write to procexec's own stdout and stderr."""

    def run_options(self, job: Job) -> dict[str, Any]:
        return {}

    def started(self, job: Job, text: Text) -> None:
        if self.verbose:
            self.out.text(text() + "\n")

    def ended(self, job: Job, text: Text, stdout: bytes, stderr: bytes) -> None:
        """Already written by the job itself."""


class ResultsDisplay(Display):
    """``--results``: each job's stdout, stderr and number saved in files, at the paths
    ``files(job)`` gives (see procexec.cli._results); nothing printed."""

    def __init__(self, files: Callable[[Job], tuple[str, str, str]], out: Sink, err: Sink) -> None:
        super().__init__(False, None, False, out, err)
        self.files = files

    def ended(self, job: Job, text: Text, stdout: bytes, stderr: bytes) -> None:
        paths = self.files(job)
        try:
            for directory in {os.path.dirname(path) for path in paths} - {""}:
                os.makedirs(directory, exist_ok=True)
            for path, data in zip(paths, (stdout, stderr, str(job.seq).encode()), strict=True):
                with open(path, "wb") as file:
                    file.write(data)
        except OSError as error:  # a value too long for a file name, a full disk...
            self.err.text(
                f"procexec: Warning: cannot save job {job.seq}'s output under "
                f"{os.path.dirname(paths[0])}: {error.strerror}\n"
            )
