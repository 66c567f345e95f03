"""run() and submit() keywords: what they become for Popen and for the job; and the
defaults of the executor's own (``DEFAULT_TERM_SEQUENCE``, :func:`default_max_jobs`).

``run()`` takes ``subprocess.run``'s own keywords (input, capture_output, check, text,
encoding, errors) and procexec's line callbacks; :func:`run_options` checks them, sets the
Popen pipes they need, and returns the :class:`RunOptions` the job keeps for decoding and
checking its outcome. :func:`process_group_kwargs` adds the keyword that gives a child its
own process group (``submit()`` and ``run()`` alike).
"""

from __future__ import annotations

import codecs
import locale
import signal
import subprocess
import sys
import warnings
from typing import Any

from procexec._core._streams import LineCallback

#: SIGTERM, two seconds' grace, then SIGKILL.
DEFAULT_TERM_SEQUENCE: tuple[tuple[int, float], ...] = (
    (int(signal.SIGTERM), 2.0),
    (int(signal.SIGKILL), 0.0),
)


def default_max_jobs() -> int:
    """Usable CPUs minus one, or the usable CPUs when there are two or fewer.

    "Usable" is ``loky.cpu_count()``: it honours cgroup CPU quotas and the affinity mask.
    """
    from loky import cpu_count  # noqa: PLC0415  # loading loky is not free: only on use

    cpus = int(cpu_count())
    return cpus if cpus <= 2 else cpus - 1


class RunOptions:
    """What ``run()`` adds to a plain job: input, capture, decoding, checks, line callbacks.

    Set once by :func:`run_options` and only read afterwards.
    """

    __slots__ = (
        "check",
        "encoding",
        "errors",
        "input",
        "keep_stderr",
        "keep_stdout",
        "on_stderr_line",
        "on_stdout_line",
        "text",
    )

    def __init__(
        self,
        *,
        input: bytes | None = None,
        check: bool = False,
        text: bool = False,
        encoding: str | None = None,
        errors: str | None = None,
        keep_stdout: bool = False,
        keep_stderr: bool = False,
        on_stdout_line: LineCallback | None = None,
        on_stderr_line: LineCallback | None = None,
    ) -> None:
        self.input = input
        self.check = check
        self.text = text
        self.encoding = encoding
        self.errors = errors
        self.keep_stdout = keep_stdout
        self.keep_stderr = keep_stderr
        self.on_stdout_line = on_stdout_line
        self.on_stderr_line = on_stderr_line

    def decode(self, data: bytes | None) -> Any:
        """Bytes as the caller asked for them: str with universal newlines in text mode."""
        if data is None or not self.text:
            return data
        text = data.decode(text_encoding(self.encoding), self.errors or "strict")
        return text.replace("\r\n", "\n").replace("\r", "\n")


def text_encoding(encoding: str | None) -> str:
    """The encoding text mode uses: the one given, else UTF-8 in UTF-8 mode, else the
    locale's (as subprocess does)."""
    if encoding:
        return encoding
    if sys.flags.utf8_mode:
        return "utf-8"
    getencoding = getattr(locale, "getencoding", None)  # Python 3.11+
    return getencoding() if getencoding is not None else locale.getpreferredencoding(False)


def process_group_kwargs(popen_kwargs: dict[str, Any], new_group: bool) -> bool:
    """Add the keyword that puts the child in its own process group; return whether it is.

    An explicit ``process_group`` or ``start_new_session`` from the caller wins.
    """
    if "process_group" in popen_kwargs or "start_new_session" in popen_kwargs:
        return popen_kwargs.get("process_group") == 0 or bool(popen_kwargs.get("start_new_session"))
    if new_group:
        if sys.version_info >= (3, 11):
            popen_kwargs["process_group"] = 0
        else:  # pragma: no cover - Python 3.10 has no process_group; a session is a group too
            popen_kwargs["start_new_session"] = True
    return new_group


def run_options(
    popen_kwargs: dict[str, Any],
    *,
    input: bytes | str | None,
    capture_output: bool,
    check: bool,
    text: bool,
    encoding: str | None,
    errors: str | None,
    on_stdout_line: LineCallback | None,
    on_stderr_line: LineCallback | None,
) -> RunOptions:
    """Check run()'s own arguments and set the Popen pipes they need (in ``popen_kwargs``).

    An unknown encoding or error handler is a LookupError here, at the call, not an error
    found once the job's output is in.
    """
    text = bool(text or encoding or errors or popen_kwargs.pop("universal_newlines", False))
    if text:
        if encoding is None and sys.flags.warn_default_encoding:
            # As subprocess does under -X warn_default_encoding, at the caller's line.
            warnings.warn("'encoding' argument not specified", EncodingWarning, stacklevel=3)
        codecs.lookup(text_encoding(encoding))
        codecs.lookup_error(errors or "strict")
    if capture_output:
        if "stdout" in popen_kwargs or "stderr" in popen_kwargs:
            raise ValueError("stdout and stderr arguments may not be used with capture_output")
        popen_kwargs["stdout"] = popen_kwargs["stderr"] = subprocess.PIPE
    keep_stdout = popen_kwargs.get("stdout") == subprocess.PIPE
    keep_stderr = popen_kwargs.get("stderr") == subprocess.PIPE
    _pipe_for_lines(popen_kwargs, "stdout", on_stdout_line)
    _pipe_for_lines(popen_kwargs, "stderr", on_stderr_line)
    data: bytes | None = None
    if input is not None:
        if "stdin" in popen_kwargs:
            raise ValueError("stdin and input arguments may not both be used")
        popen_kwargs["stdin"] = subprocess.PIPE
        if isinstance(input, str):
            data = input.encode(text_encoding(encoding), errors or "strict")
        else:
            data = bytes(input)
    elif popen_kwargs.get("stdin") == subprocess.PIPE:
        data = b""  # a pipe with nothing to send: the child sees end of input
    return RunOptions(
        input=data,
        check=check,
        text=text,
        encoding=encoding,
        errors=errors,
        keep_stdout=keep_stdout,
        keep_stderr=keep_stderr,
        on_stdout_line=on_stdout_line,
        on_stderr_line=on_stderr_line,
    )


def _pipe_for_lines(
    popen_kwargs: dict[str, Any], stream: str, callback: LineCallback | None
) -> None:
    if callback is None:
        return
    if not callable(callback):
        raise TypeError(f"on_{stream}_line must be callable, not {type(callback).__name__}")
    if popen_kwargs.setdefault(stream, subprocess.PIPE) != subprocess.PIPE:
        raise ValueError(
            f"on_{stream}_line needs {stream} to be a pipe, not {popen_kwargs[stream]!r}"
        )
