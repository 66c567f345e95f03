"""A plain run imports what it needs and no more (issue 32's start-up: one short job should
cost little more than starting Python); each option's module is loaded when it is given.
Which modules are loaded is checked here, never a time (bench.cli measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: What the engine loads only when it is used: not for commands run with the defaults,
#: from the command line or through the library.
NOT_FOR_COMMANDS = {
    "dataclasses": "Rusage, Limits, WorkerOptions, ExecutorStats: on first use; the "
    "command line's records are plain classes",
    "inspect": "Popen's keywords are read from its code object",
    "pathlib": "the guardian's program is an os.path; the probes only for admission",
    "shutil": "prlimit is looked for only for limits=; procexec.cli._shell searches $PATH",
    "pickle": "the workers of Python calls start with the first call",
    "multiprocessing": "the call errors, on first use",
    "procexec._rusage": "JobResult.rusage builds it when first read",
    "procexec._core._workers": "the first Python call",
    "procexec._core._resources._admission": "memfree, load, pressure, delay",
}

#: Loaded by no plain run: each is for an option, a subcommand or the Python API.
NOT_FOR_A_PLAIN_RUN = {
    **NOT_FOR_COMMANDS,
    "loky": "the CPU count is read without it (procexec.cli._machine)",
    "tqdm": "--bar",
    "procexec.report": "--report, --summary, --joblog-json, procexec report",
    "procexec.dask": "--dask",
    "distributed": "--dask",
    "json": "--joblog-json, --results FILE.json",
    "socket": "the host name comes from os.uname()",
    "statistics": "--timeout N%",
    "procexec.cli._pipe": "--pipe",
    "procexec.cli._pack": "-X, -m",
    "procexec.cli._results": "--results",
    "procexec.cli._header": "--header",
    "procexec.cli._report": "procexec report",
}

#: Runs procexec and reports the modules it added to those loaded before it (under
#: ``coverage run``, the child's coverage has loaded some of them already: not counted).
_SCRIPT = """
import sys
before = set(sys.modules)
from procexec.cli import main
status = main(sys.argv[1:])
modules = sorted(set(sys.modules) - before)
import json  # after the run: to report what it loaded
print(json.dumps([status, modules]), file=sys.stderr)
"""


def _loaded(*args: str, cwd: Path | None = None) -> set[str]:
    """The modules a run of ``procexec ARGS`` has loaded when it ends."""
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, *args], stdin=subprocess.DEVNULL, capture_output=True,
        text=True, cwd=cwd, timeout=60, check=False,
    )  # fmt: skip
    status, modules = json.loads(result.stderr.splitlines()[-1])
    assert status == 0, result.stderr
    return set(modules)


def _found(table: dict[str, str], loaded: set[str]) -> dict[str, str]:
    """The entries of ``table`` that ``loaded`` holds (a package counts by any of its modules)."""
    return {
        name: why
        for name, why in table.items()
        if name in loaded or any(module.startswith(name + ".") for module in loaded)
    }


@pytest.mark.parametrize(
    "args",
    [["true", ":::", "1"], ["-k", "-j", "2", "echo", "{}", ":::", "a", "b"], ["echo", "-n"]],
    ids=["one-job", "keep-order", "stdin"],
)
def test_a_plain_run_loads_no_optional_module(args: list[str]) -> None:
    assert _found(NOT_FOR_A_PLAIN_RUN, _loaded(*args)) == {}


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (["--pipe", "cat"], "procexec.cli._pipe"),
        (["-X", "echo", ":::", "a"], "procexec.cli._pack"),
        (["--results", "out.json", "echo", ":::", "a"], "procexec.cli._results"),
        (["--header", ":", "echo", "{a}", ":::", "a", "1"], "procexec.cli._header"),
        (["--summary", "true", ":::", "a"], "procexec.report"),
    ],
)
def test_an_options_module_is_loaded_when_it_is_given(
    args: list[str], module: str, tmp_path: Path
) -> None:
    assert module in _loaded(*args, cwd=tmp_path)


_LIBRARY_SCRIPT = """
import sys
before = set(sys.modules)
from procexec import ProcessExecutor
with ProcessExecutor(max_jobs=2) as ex:
    statuses = [f.result() for f in [ex.submit(["true"]), ex.submit(["sh", "-c", "exit 3"])]]
modules = sorted(set(sys.modules) - before)
import json
print(json.dumps([statuses, modules]))
"""


def test_commands_through_the_library_load_no_dataclass_nor_the_calls_machinery() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LIBRARY_SCRIPT], capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    statuses, modules = json.loads(result.stdout.splitlines()[-1])
    assert statuses == [0, 3]
    assert _found(NOT_FOR_COMMANDS, set(modules)) == {}


def test_what_is_left_out_still_loads_on_use() -> None:
    script = (
        "import procexec, dataclasses\n"
        "names = ['JobResult', 'Rusage', 'Limits', 'WorkerOptions', 'ExecutorStats']\n"
        "assert all(dataclasses.is_dataclass(getattr(procexec, n)) for n in names[1:])\n"
        "with procexec.ProcessExecutor(max_jobs=1) as ex:\n"
        "    result = ex.run(['true']).result()\n"
        "    assert isinstance(result, procexec.JobResult)\n"
        "    assert isinstance(result.rusage, procexec.Rusage)\n"
        "    assert ex.stats() == procexec.ExecutorStats(0, 0, None)\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr
