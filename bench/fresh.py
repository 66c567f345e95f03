"""One run of a bench module in a fresh interpreter, with the bench's environment."""

from __future__ import annotations

import subprocess
import sys

from bench.contenders import bench_env


def in_fresh_interpreter(args: list[str], env: dict[str, str] | None = None) -> str:
    """The standard output of ``python -m ARGS...`` run in a fresh interpreter with ``env``
    (default: the bench's environment); RuntimeError with its standard error if it failed."""
    argv = [sys.executable, "-m", *args]
    env = bench_env() if env is None else env
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{result.stderr}")
    return result.stdout
