"""The benchmark suite's own housekeeping (its timings are never judged in tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with ``args`` in the repository's root, where ``bench`` imports."""
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to build bench/floor.c")
def test_the_c_floor_is_built_in_a_temporary_directory_removed_at_exit(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("PROCEXEC_BENCH_FLOOR", None)
    code = (
        "import os\n"
        "from bench.contenders import build_floor\n"
        "binary = build_floor()\n"
        "assert binary is not None and os.access(binary, os.X_OK), binary\n"
        "print(binary)\n"
    )
    result = _python("-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bytecodes_are_charged_to_the_code_that_owns_them_and_to_their_thread() -> None:
    code = (
        "import threading\n"
        "from concurrent.futures import Future\n"
        "from bench.bytecodes import count_bytecodes\n"
        "from procexec._validate import check_argv\n"
        "def run():\n"
        "    check_argv(['true'], shell=False)\n"
        "    worker = threading.Thread(target=lambda: Future().set_result(1))\n"
        "    worker.start()\n"
        "    worker.join()\n"
        "total, caller = count_bytecodes(run)\n"
        "print(total['procexec'], caller['procexec'])\n"
        "print(total['concurrent.futures'], caller['concurrent.futures'])\n"
        "print(total['subprocess'])\n"
    )
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    (ours, ours_in_caller), (futures, futures_in_caller), (popen,) = [
        [int(n) for n in line.split()] for line in result.stdout.splitlines()
    ]
    assert ours > 0 and ours_in_caller == ours  # check_argv ran in the calling thread
    assert futures > 0 and futures_in_caller == 0  # set_result ran in the worker
    assert popen == 0


def test_bench_runs_only_the_workloads_and_contenders_asked_for() -> None:
    result = _python(
        "-m", "bench", "--quick", "--workloads", "storm", "--contenders", "ThreadPool+run"
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ")[:2] for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[1:] == [["| storm", "procexec"], ["| storm", "ThreadPool+run"]]
    assert "queue" not in result.stdout and "many:" not in result.stdout


def test_bench_names_an_unknown_contender_and_the_known_ones() -> None:
    result = _python("-m", "bench", "--quick", "--contenders", "threadpool")
    assert result.returncode == 2
    assert "unknown contender 'threadpool'" in result.stderr
    assert "ThreadPool+run" in result.stderr


def test_code_outside_the_package_is_not_procexecs_even_under_a_procexec_directory() -> None:
    from bench.bytecodes import OTHER, owner_of

    namespace: dict[str, Any] = {}
    code = compile("import sys\nframe = sys._getframe()", "/home/u/procexec/bench/x.py", "exec")
    exec(code, namespace)
    assert owner_of(namespace["frame"]) == OTHER


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="the one-loop rungs wait on pidfds")
def test_every_bare_handoff_rung_runs_each_job_once_and_reaps_them_all(tmp_path: Path) -> None:
    log = tmp_path / "ran"
    code = (
        "import os, sys\n"
        "from bench.contenders import Workload\n"
        "from bench.probes import BARE_THREADS\n"
        "for name, rung in BARE_THREADS.items():\n"
        "    argv = ('/bin/sh', '-c', 'echo \"$0\" >> \"$1\"', name, sys.argv[1])\n"
        "    rung(Workload('storm', argv, 7, 2))\n"
        "try:\n"
        "    os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)\n"
        "except ChildProcessError:\n"
        "    print('no children left')\n"
    )
    result = _python("-c", code, str(log))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "no children left\n"
    from bench.probes import BARE_THREADS

    ran = log.read_text().splitlines()
    assert sorted(ran) == sorted(name for name in BARE_THREADS for _ in range(7))


def test_ab_compares_two_trees_in_a_table() -> None:
    src = str(ROOT / "src")
    result = _python("-m", "bench.ab", src, src, "--workloads", "storm", "--rounds", "1", "--quick")
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("| storm |"))
    assert row.count("x |") + row.count("x, ") == 2


def test_peak_concurrency_counts_the_stamped_spans_open_at_one_instant() -> None:
    from bench.callwork import peak_concurrency

    assert peak_concurrency([]) == 0
    assert peak_concurrency([(0.0, 2.0), (2.0, 3.0), (3.0, 4.0)]) == 1  # one ends, one starts
    assert peak_concurrency([(0.0, 2.0), (1.0, 3.0), (2.5, 4.0)]) == 2
    assert peak_concurrency([(0.0, 5.0), (1.0, 2.0), (1.5, 3.0), (4.0, 6.0)]) == 3


def test_calls_bench_quick_run_checks_the_targets_of_the_workloads_asked_for() -> None:
    result = _python("-m", "bench.calls", "--quick", "--workloads", "tiny", "stop")
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ") for line in result.stdout.splitlines() if line.startswith("| ")]
    checked = [row[0] for row in rows if row[-1].strip(" |") in ("yes", "NO")]
    assert checked == ["| tiny: ≤ 1.1 x the faster peer", "| stop: median ≤ 50 ms"]
    assert not any("mixed" in row[0] or "cold" in row[0] for row in rows)
