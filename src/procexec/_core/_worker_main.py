"""The worker process of Python callables: it runs the calls its parent sends, one at a time.

A lane (``_workers.py``) starts it by path, as a fresh interpreter in a process group of
its own: ``python .../_worker_main.py TASKS RESULTS LIFELINE REPORT``. It imports nothing of
procexec, so that it starts quickly; the parent imports this module for what both sides
share: the framing (:func:`frame`, :class:`FrameReader`) and how a call is pickled
(:func:`dumps_call`).

```
 parent (a lane)                          this worker
 tasks pipe ─── init: sys.path, initializer, measure ──► set up, run initializer
            ─── call: cloudpickled (fn, args, kwargs, chunked) ► run it (chunked: fn over
                                                   each tuple of args, a list back)
 results pipe ◄── ("ok", result, usage)                  result and exception pickled
              ◄── ("error", exception, traceback, usage)   with pickle (cloudpickle when
              ◄── ("lost", why)  the call could not be read, or  pickle cannot)
                                 its result not pickled for lack of memory
              ◄── ("init-failed", traceback), then exit 3
 lifeline ─── held by the parent only; its end of file: kill this process group and exit
 report ◄── a copy of what is written to sys.stderr, and faulthandler's traceback: the
            parent keeps the last 2 KiB for the error of a call that crashes (stderr
            itself is the parent's, as for a command: what is printed shows as usual)
```

Each frame is an 8-byte big-endian length and that many bytes of pickle. The end of the
tasks pipe (the parent retiring this worker) ends the process with status 0.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import io
import os
import pickle
import resource
import signal
import struct
import sys
import threading
import types

# Imports a worker pays for at every start are kept few: typing (for the type checker
# only, as typing.TYPE_CHECKING is), logging and traceback (on an error) cost about 15 ms
# of the 55 ms an idle worker took to start on a 2-core machine.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

HEADER = struct.Struct("!Q")
#: The exit status of a worker whose initializer failed (after it said so).
INIT_FAILED_STATUS = 3
#: Why a call fails whose result could not be pickled for lack of memory: the call ran,
#: and the worker lives on, but its result cannot reach the parent (CallLost, as a worker
#: the OOM killer ends; not the call's own MemoryError).
TOO_BIG = "the call ran, but pickling its result ran out of memory in the worker (MemoryError)"


def frame(payload: bytes) -> bytes:
    """``payload`` with its length in front."""
    return HEADER.pack(len(payload)) + payload


class FrameReader:
    """Cuts a stream of bytes into the frames it carries (the parent's side)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Take ``data``; return the frames it completed, oldest first."""
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            end = HEADER.size + HEADER.unpack_from(self._buffer)[0]
            if len(self._buffer) < end:
                break
            with memoryview(self._buffer) as view:
                frames.append(bytes(view[HEADER.size : end]))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes received of a frame not complete yet."""
        return len(self._buffer)


def dumps_call(obj: object) -> bytes:
    """``obj`` (a call, an initializer) pickled as the parent sends it: cloudpickle, so that
    lambdas, closures and functions of ``__main__`` go by value, except that a method bound
    to a class (a classmethod) goes by reference to its class, as pickle sends it.
    cloudpickle would send its function by value, compiled anew in the worker from no
    file, and a traceback through it would show no source line (CPython's
    ``test_traceback`` reads one)."""
    buffer = io.BytesIO()
    _call_pickler()(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


@functools.cache
def _call_pickler() -> Any:
    """The pickler class of :func:`dumps_call`, made when first used (cloudpickle is
    imported only then)."""
    import cloudpickle  # noqa: PLC0415

    class CallPickler(cloudpickle.Pickler):  # type: ignore[misc]  # cloudpickle is untyped
        def reducer_override(self, obj: object) -> Any:
            if isinstance(obj, types.MethodType) and isinstance(obj.__self__, type):
                name = obj.__func__.__name__
                if getattr(obj.__self__, name, None) == obj:
                    return getattr, (obj.__self__, name)
            return super().reducer_override(obj)

    return CallPickler


# ------------------------------------------------------------------ the worker's side
def _read_exactly(file: Any, size: int) -> bytes | None:
    data = file.read(size)
    return data if len(data) == size else None


def _read_frame(file: Any) -> bytes | None:
    """The next frame from the parent, or None at the end of the pipe."""
    header = _read_exactly(file, HEADER.size)
    if header is None:
        return None
    return _read_exactly(file, HEADER.unpack(header)[0])


def _dumps(message: tuple[Any, ...]) -> bytes:
    """``message`` pickled: with pickle, or cloudpickle for what pickle cannot (a class
    the parent sent by value, say)."""
    try:
        return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    except MemoryError:
        raise  # cloudpickle would need the same memory
    except Exception:
        import cloudpickle  # noqa: PLC0415  # only when pickle cannot

        return bytes(cloudpickle.dumps(message, pickle.HIGHEST_PROTOCOL))


class _Usage:
    """A call's CPU time (this process and the children it waited for) and its own peak
    memory: the peak is reset before the call (``/proc/self/clear_refs``), where allowed."""

    def __init__(self) -> None:
        self._clear: int | None = None
        try:
            self._clear = os.open("/proc/self/clear_refs", os.O_WRONLY | os.O_CLOEXEC)
            os.write(self._clear, b"5")
        except OSError:
            if self._clear is not None:
                os.close(self._clear)
            self._clear = None
        self._start = (0.0, 0.0)

    def begin(self) -> None:
        if self._clear is not None:
            try:
                os.write(self._clear, b"5")  # the peak RSS starts again from the current RSS
            except OSError:
                os.close(self._clear)
                self._clear = None
        self._start = self._cpu()

    def end(self) -> tuple[float, float, int, bool]:
        """``(user seconds, system seconds, peak KiB, whether the peak is the call's own)``
        since :meth:`begin` (the peak is this worker's whole life's where it cannot be
        reset)."""
        user, system = self._cpu()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return user - self._start[0], system - self._start[1], peak, self._clear is not None

    @staticmethod
    def _cpu() -> tuple[float, float]:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + kids.ru_utime, own.ru_stime + kids.ru_stime


def _watch_lifeline(fd: int) -> None:
    """Block on the lifeline; at its end (the parent is gone) kill this process group."""
    try:
        while os.read(fd, 64):
            pass
    finally:
        os.killpg(os.getpgid(0), signal.SIGKILL)


def _run_call(payload: bytes, usage: _Usage) -> bytes:
    """Run one call; its outcome as a frame's payload."""
    try:
        fn, args, kwargs, chunked = pickle.loads(payload)
    except BaseException as exc:  # the call cannot be read: that call's failure
        import traceback  # noqa: PLC0415  # on an error only (see the imports)

        why = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return _dumps(("lost", f"the worker could not unpickle the call: {why}"))
    del payload
    usage.begin()
    try:
        result = [fn(*each) for each in args] if chunked else fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit too: the call's outcome
        del fn, args, kwargs
        return _error(exc, usage.end())
    del fn, args, kwargs
    figures = usage.end()
    try:
        return _dumps(("ok", result, figures))
    except MemoryError:
        pass  # below, once this exception and its frames (holding the result) are gone
    except BaseException as exc:  # the result cannot be pickled: that is its error
        return _error(exc, figures)
    del result
    return _dumps(("lost", TOO_BIG))


def _send(results: Any, payload: bytes) -> None:
    """Write one frame to the parent: the header, then the payload as it is (no copy of
    a large result)."""
    results.write(HEADER.pack(len(payload)))
    results.write(payload)
    results.flush()


def _error(exc: BaseException, figures: tuple[float, float, int, bool]) -> bytes:
    """The outcome of a call that raised ``exc`` (or whose result could not be pickled)."""
    import traceback  # noqa: PLC0415  # on an error only (see the imports)

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    exc.__traceback__ = None
    try:
        return _dumps(("error", exc, text, figures))
    except BaseException as failure:  # the exception cannot be pickled
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        stand_in = RuntimeError(f"{kind}: {exc} (not picklable: {failure!r})")
        return _dumps(("error", stand_in, text, figures))


def _initialize(message: dict[str, Any], results: Any) -> bool:
    """Set up as the parent asked and run the initializer; False if it failed."""
    sys.path[:] = message["path"]
    initializer = message.get("initializer")
    if initializer is None:
        return True
    try:
        fn, args = pickle.loads(initializer)
        fn(*args)
    except BaseException:  # reported to the parent, which fails the call
        import logging  # noqa: PLC0415  # on an error only (see the imports)
        import traceback  # noqa: PLC0415

        # Where concurrent.futures' own workers log it, for code that looks there.
        logging.getLogger("concurrent.futures").critical("Exception in initializer:", exc_info=True)
        _send(results, _dumps(("init-failed", traceback.format_exc())))
        return False
    return True


class _Copied:
    """``sys.stderr`` that also writes a copy to the report pipe, never waiting on it."""

    def __init__(self, stream: Any, report: int) -> None:
        self._stream = stream
        self._report = report

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError):  # full (the parent is behind) or gone: no copy
            os.write(self._report, text.encode(errors="replace")[-4096:])
        return int(self._stream.write(text))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _report_to(fd: int) -> None:
    """Copy sys.stderr and faulthandler's tracebacks to the report pipe ``fd``."""
    os.set_blocking(fd, False)
    report = os.fdopen(fd, "wb", buffering=0)
    faulthandler.enable(report, all_threads=True)  # a crash leaves its traceback there
    if sys.stderr is not None:
        sys.stderr = _Copied(sys.stderr, fd)
    _kept.append(report)


_kept: list[Any] = []  # the report file: faulthandler writes to its fd as long as it lives


def main(argv: list[str]) -> int:
    """Serve calls until the tasks pipe ends; the exit status."""
    tasks_fd, results_fd, lifeline_fd, report_fd = (int(arg) for arg in argv[1:5])
    _report_to(report_fd)
    threading.Thread(
        target=_watch_lifeline, args=(lifeline_fd,), name="lifeline", daemon=True
    ).start()
    with os.fdopen(tasks_fd, "rb") as tasks, os.fdopen(results_fd, "wb") as results:
        setup = _read_frame(tasks)
        if setup is None:
            return 0
        if not _initialize(pickle.loads(setup), results):
            return INIT_FAILED_STATUS
        del setup
        _send(results, _dumps(("ready",)))
        usage = _Usage()
        while (payload := _read_frame(tasks)) is not None:
            outcome = _run_call(payload, usage)
            del payload
            _send(results, outcome)
            del outcome
    return 0


if __name__ == "__main__":
    sys.path.pop(0)  # this file's folder: nothing there is for the calls to import
    raise SystemExit(main(sys.argv))
