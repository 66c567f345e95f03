"""The types of a command and of the keywords ``submit``/``run`` pass to ``subprocess.Popen``,
as typeshed types ``subprocess`` (so a checker refuses ``["ls", 3]`` or ``cwdd="/tmp"``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, TypeAlias, TypedDict, Union

if TYPE_CHECKING:
    from procexec._core._resources._rlimits import Limits

#: A program or argument: text, bytes or a path.
StrOrBytesPath: TypeAlias = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]
#: A command: a sequence of arguments, or one program (a str or bytes only with shell=True).
Command: TypeAlias = StrOrBytesPath | Sequence[StrOrBytesPath]
#: A child's stdin/stdout/stderr: None (inherit), a file descriptor, DEVNULL/PIPE/STDOUT, or a file.
FileArg: TypeAlias = int | IO[Any] | None
#: A child's environment.
Env: TypeAlias = Mapping[str, StrOrBytesPath] | Mapping[bytes, StrOrBytesPath]


class RunKwargs(TypedDict, total=False):
    """The ``subprocess.Popen`` keywords ``run`` passes on (besides its own)."""

    bufsize: int
    executable: StrOrBytesPath | None
    stdin: FileArg
    stdout: FileArg
    stderr: FileArg
    preexec_fn: Callable[[], Any] | None
    close_fds: bool
    shell: bool
    cwd: StrOrBytesPath | None
    env: Env | None
    startupinfo: Any
    creationflags: int
    restore_signals: bool
    start_new_session: bool
    pass_fds: Collection[int]
    user: str | int | None
    group: str | int | None
    extra_groups: Iterable[str | int] | None
    umask: int
    pipesize: int
    process_group: int | None
    #: procexec's own, not Popen's: resource limits for the job (procexec.Limits).
    limits: Limits | Mapping[str, int | float | str | None] | None


class SubmitKwargs(RunKwargs, total=False):
    """``submit()`` also passes on Popen's text-mode keywords (it captures nothing)."""

    universal_newlines: bool | None
    text: bool | None
    encoding: str | None
    errors: str | None
