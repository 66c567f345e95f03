"""The contenders: each runs a workload's commands under its ``jobs`` limit.

A contender is a function ``(workload) -> None`` that raises if a command failed, or None
when it cannot run here (missing tool); ``missing`` says why.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from procexec import ProcessExecutor
from procexec import compat as procexec_compat

HERE = Path(__file__).resolve().parent
PEERS = HERE / ".peers"  # where the original anchorscad-utils is unpacked (git-ignored)


@dataclass(frozen=True)
class Workload:
    """``count`` copies of ``argv``, at most ``jobs`` at once; ``capture``: keep stdout."""

    name: str
    argv: tuple[str, ...]
    count: int
    jobs: int
    capture: bool = False


Runner = Callable[[Workload], None]
missing: dict[str, str] = {}


def _check(statuses: list[int]) -> None:
    bad = [s for s in statuses if s != 0]
    if bad:
        raise RuntimeError(f"{len(bad)} commands failed, e.g. status {bad[0]}")


def run_procexec(w: Workload) -> None:
    with ProcessExecutor(w.jobs) as ex:
        if w.capture:
            results = [
                f.result()
                for f in [ex.run(list(w.argv), capture_output=True) for _ in range(w.count)]
            ]
            _check([r.returncode for r in results])
        else:
            _check([f.result() for f in [ex.submit(list(w.argv)) for _ in range(w.count)]])


def run_threadpool(w: Workload) -> None:
    with ThreadPoolExecutor(w.jobs) as pool:
        futures = [
            pool.submit(subprocess.run, list(w.argv), capture_output=w.capture)
            for _ in range(w.count)
        ]
        _check([f.result().returncode for f in futures])


def run_asyncio(w: Workload) -> None:
    async def one(limit: asyncio.Semaphore) -> int:
        async with limit:
            pipe = asyncio.subprocess.PIPE if w.capture else None
            process = await asyncio.create_subprocess_exec(*w.argv, stdout=pipe)
            await process.communicate()
            return process.returncode or 0

    async def main() -> list[int]:
        limit = asyncio.Semaphore(w.jobs)
        return list(await asyncio.gather(*(one(limit) for _ in range(w.count))))

    _check(asyncio.run(main()))


def _subprocess_run(argv: tuple[str, ...], capture: bool) -> int:
    return subprocess.run(list(argv), capture_output=capture, check=False).returncode


def run_loky(w: Workload) -> None:
    from loky import get_reusable_executor

    pool = get_reusable_executor(max_workers=w.jobs)
    _check(
        [
            f.result()
            for f in [pool.submit(_subprocess_run, w.argv, w.capture) for _ in range(w.count)]
        ]
    )


def _manager_run(module: Any, w: Workload) -> None:
    manager = module.ProcessManager(max_jobs=w.jobs)
    entries = [module.ProcessManagerEntry() for _ in range(w.count)]
    for entry in entries:
        stdout = subprocess.PIPE if w.capture else None
        manager.run_proc(entry, list(w.argv), stdout=stdout)
    manager.finished_status()
    if w.capture:
        for entry in entries:
            entry.communicate()
    _check([entry.popen_obj.returncode for entry in entries])


def run_compat_pm(w: Workload) -> None:
    _manager_run(procexec_compat, w)


def load_original_pm() -> ModuleType | None:
    """anchorscad-utils' own process_manager, from its distribution unpacked in bench/.peers."""
    path = PEERS / "anchorscad_lib" / "utils" / "process_manager.py"
    if not path.exists():
        pip = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(PEERS),
            "anchorscad-utils",
        ]
        if subprocess.run(pip, capture_output=True, check=False).returncode != 0:
            missing["anchorscad PM"] = "pip could not install anchorscad-utils into bench/.peers"
            return None
    spec = importlib.util.spec_from_file_location("original_process_manager", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tool(name: str) -> str | None:
    path = shutil.which(name)
    if path is None:
        missing[name] = f"{name} is not installed"
    return path


def run_xargs(w: Workload) -> None:
    # xargs appends one input word per command: feed the last argv word COUNT times.
    data = (w.argv[-1] + "\n") * w.count
    argv = ["xargs", "-P", str(w.jobs), "-n", "1", *w.argv[:-1]]
    _check(
        [
            subprocess.run(
                argv, input=data.encode(), stdout=subprocess.DEVNULL, check=False
            ).returncode
        ]
    )


def run_parallel(w: Workload) -> None:
    argv = [
        "parallel",
        "--will-cite",
        "-j",
        str(w.jobs),
        "-N0",
        *w.argv,
        ":::",
        *map(str, range(w.count)),
    ]
    out = subprocess.DEVNULL
    _check([subprocess.run(argv, stdout=out, check=False).returncode])


_floor_binary: list[str] = []
_floor_dir: list[tempfile.TemporaryDirectory[str]] = []  # removed when this process exits


#: Set by the parent bench process so that its sample interpreters reuse the one build.
FLOOR_ENV = "PROCEXEC_BENCH_FLOOR"


def build_floor() -> str | None:
    """Compile floor.c once into a temporary directory, removed when this process exits;
    None (reported) without cc."""
    if _floor_binary:
        return _floor_binary[0]
    if os.environ.get(FLOOR_ENV):
        _floor_binary.append(os.environ[FLOOR_ENV])
        return _floor_binary[0]
    cc = shutil.which("cc")
    if cc is None:
        missing["C floor"] = "no C compiler (cc) to build bench/floor.c"
        return None
    _floor_dir.append(tempfile.TemporaryDirectory(prefix="procexec-bench-"))
    binary = os.path.join(_floor_dir[0].name, "floor")
    subprocess.run([cc, "-O2", "-o", binary, str(HERE / "floor.c")], check=True)
    _floor_binary.append(binary)
    return binary


def run_floor(w: Workload) -> None:
    binary = build_floor()
    assert binary is not None
    _check([subprocess.run([binary, str(w.jobs), str(w.count), *w.argv], check=False).returncode])


def contenders() -> dict[str, Runner | None]:
    """Every contender by name; None for those missing here (see ``missing``)."""
    original = load_original_pm()
    return {
        "procexec": run_procexec,
        "C floor": run_floor if build_floor() else None,
        "xargs -P": run_xargs if _tool("xargs") else None,
        "GNU parallel": run_parallel if _tool("parallel") else None,
        "ThreadPool+run": run_threadpool,
        "asyncio": run_asyncio,
        "loky": run_loky,
        "anchorscad PM": (lambda w: _manager_run(original, w)) if original else None,
        "procexec compat PM": run_compat_pm,
    }


def bench_env() -> dict[str, str]:
    """The environment of a sample interpreter: the floor already built."""
    env = dict(os.environ)
    if _floor_binary:
        env[FLOOR_ENV] = _floor_binary[0]
    return env


def warm_up(name: str, w: Workload) -> None:
    """Untimed set-up in a fresh sample interpreter: loky's reusable workers are started
    before the clock starts, as they would be in a long-lived program."""
    if name == "loky":
        from loky import get_reusable_executor

        get_reusable_executor(max_workers=w.jobs).submit(int).result()


#: Contenders that cannot capture output for the ``out`` workload.
NO_CAPTURE = {"C floor", "xargs -P"}
