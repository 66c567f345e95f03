"""The benchmark suite's own housekeeping (its timings are never judged in tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(tmp_path)
    assert list(tmp_path.iterdir()) == []
