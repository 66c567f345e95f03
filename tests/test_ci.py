"""The test command the README gives and ``.ci/run`` runs (``.ci/test``): the coverage data
of every interpreter is combined and reported whether the tests pass or not, and its exit
status fails the run on a failed test and on no test at all. Checked on a tiny project of
its own in a temporary directory, with this environment's pytest and coverage."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_COMMAND = ROOT / ".ci" / "test"
needs_the_ci_scripts = pytest.mark.skipif(
    not TEST_COMMAND.exists(), reason="a copy without .ci/ (not in this distribution)"
)

PYPROJECT = """\
[tool.pytest.ini_options]
testpaths = ["tests"]

[tool.coverage.run]
parallel = true
source = ["."]
patch = ["subprocess"]
"""

#: A test that starts a Python child (a .coverage.* file of its own), and one that fails
#: when FAIL is set in its environment.
TESTS = """\
import os
import subprocess
import sys


def test_a_child_interpreter() -> None:
    subprocess.run([sys.executable, "-c", "import module"], check=True, cwd=os.getcwd())


def test_that_may_fail() -> None:
    assert not os.environ.get("FAIL")
"""


def run_test_command(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the project's copy of ``.ci/test``, with this interpreter's pytest and coverage
    first on PATH and none of this run's own coverage settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    clean["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), clean["PATH"]])
    clean["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # this project needs none: starts faster
    return subprocess.run(
        [str(project / ".ci" / "test")], cwd=project, env={**clean, **env},
        capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".ci").mkdir()
    shutil.copy2(TEST_COMMAND, tmp_path / ".ci" / "test")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "module.py").write_text("VALUE = 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_it.py").write_text(TESTS)
    (tmp_path / ".coverage.stale.1.x").write_text("left by a run cut short")
    return tmp_path


def coverage_files(project: Path) -> list[str]:
    return sorted(p.name for p in project.glob(".coverage*"))


@needs_the_ci_scripts
def test_a_passing_run_is_combined_and_reported(project: Path) -> None:
    result = run_test_command(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout and "TOTAL" in result.stdout
    assert coverage_files(project) == [".coverage"]


@needs_the_ci_scripts
def test_a_failing_test_still_combines_and_reports_then_fails(project: Path) -> None:
    result = run_test_command(project, FAIL="1")
    assert result.returncode == 1, result.stdout + result.stderr  # pytest's: tests failed
    assert "1 failed, 1 passed" in result.stdout
    assert "TOTAL" in result.stdout  # the report, after the failure
    assert coverage_files(project) == [".coverage"]  # no .coverage.* left behind


@needs_the_ci_scripts
def test_no_test_collected_fails(project: Path) -> None:
    (project / "tests" / "test_it.py").unlink()
    result = run_test_command(project)
    assert result.returncode == 1
    assert "pytest collected no tests: failing" in result.stderr
    assert not list(project.glob(".coverage.*"))


@needs_the_ci_scripts
def test_the_readme_and_ci_run_the_same_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_run = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "pip install -e '.[test]' && .ci/test\n" in readme
    assert ".ci/test" in ci_run
    assert not [line for line in ci_run if "coverage run" in line or "pytest" in line.split()]
