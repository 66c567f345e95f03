"""Type-checked, never run: what a checker sees of procexec's API (tests/test_types.py).

``# R: TYPE`` after a ``reveal_type`` is the type mypy must reveal on that line; ``# E: CODE``
is the error code it must report there. Nothing else may be reported.
"""

import asyncio
from pathlib import Path

from typing_extensions import reveal_type

from procexec import ProcessExecutor

# Each case on one line, with its expectation:
# fmt: off
with ProcessExecutor() as ex:
    reveal_type(ex.submit(["ls", "-l"]))  # R: procexec._core._future.ProcessFuture[int]
    reveal_type(ex.run(["ls"]))  # R: procexec._core._future.ProcessFuture[procexec._result.JobResult[bytes]]
    reveal_type(ex.run(["ls"], text=True))  # R: procexec._core._future.ProcessFuture[procexec._result.JobResult[str]]
    reveal_type(ex.run(["ls"], encoding="utf-8"))  # R: procexec._core._future.ProcessFuture[procexec._result.JobResult[str]]
    reveal_type(ex.run(["ls"], errors="replace"))  # R: procexec._core._future.ProcessFuture[procexec._result.JobResult[str]]
    reveal_type(ex.run(["ls"], universal_newlines=True))  # R: procexec._core._future.ProcessFuture[procexec._result.JobResult[str]]
    reveal_type(ex.run(["ls"]).result().stdout)  # R: bytes
    reveal_type(ex.run(["ls"], text=True).result().stdout)  # R: str
    reveal_type(ex.run(Path("/bin/ls")).result().args)  # R: Any
    ex.submit(["ls", 3])  # E: list-item
    ex.submit(["ls"], cwdd="/tmp")  # E: call-arg
    ex.run(["ls"], capture_outptu=True)  # E: call-overload
    ex.submit(["ls"], stdin="not a file")  # E: arg-type
    ex.submit(Path("/bin/ls"), cwd=Path("/"), env={"A": "1"}, pass_fds=(3,))
    ex.submit((b"ls", Path(".")), timeout=1)
    ex.run(["ls"], on_stdout_line=lambda line: line.decode())
    ex.run(["ls"], text=True, on_stdout_line=lambda line: line.upper())
    reveal_type(asyncio.ensure_future(ex.run(["ls"], text=True)))  # R: _asyncio.Task[procexec._result.JobResult[str]]
    reveal_type(asyncio.create_task(ex.submit(["ls"])))  # R: _asyncio.Task[int]
