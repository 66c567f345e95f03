"""Every code block of README.md and docs/ runs, so an example can never again raise
NameError or be a command procexec refuses.

Python blocks of a page run in order in one namespace, as a reader would paste them, and
again pasted into a script file run with ``python file.py``: there an example that starts
Python processes (a local Dask cluster) fails without its ``if __name__ == "__main__":``
guard, which the in-process run cannot show. Shell blocks run a line at a time with bash.
All run in a temporary directory with the tiny fixtures they need (below). A shell block
that cannot run here (it installs from the package index, or it is a synopsis) says why in
a ``<!-- not run by tests/test_docs.py: REASON -->`` line just before it, and the test
checks that every such block has a reason."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL_BLOCK = re.compile(
    r"(?:^<!-- not run by tests/test_docs.py: (?P<reason>.*?) -->\n)?^```sh\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)

#: Programs the examples run that a test machine may lack: stubs that succeed.
STUB_PROGRAMS = ("convert", "openscad")
#: Names the examples take from the reader's own code, and the values they get here.
READER_NAMES: dict[str, list[str]] = {
    "paths": ["a.log", "b.log", "c.log"],  # files fixtures() makes
    "names": ["part.scad"],
    "huge_list_of_paths": ["img1", "img2", "img3"],
}


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, code) of each Python block of ``page``."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


def shell_blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line number, code, the reason it is not run or None) of each shell block."""
    text = page.read_text()
    return [
        (text.count("\n", 0, m.start("code")) + 1, m.group("code"), m.group("reason"))
        for m in SHELL_BLOCK.finditer(text)
    ]


def fixtures(directory: Path) -> list[str]:
    """Make the files and stub programs the examples use; return the log files' names."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    for name in STUB_PROGRAMS:
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    (directory / "Makefile").write_text("all:\n\t@echo built\n")
    paths = READER_NAMES["paths"]
    for name in [*paths, "my file.log"]:
        (directory / name).write_text(f"{name}\nERROR one\n")
    (directory / "commands.txt").write_text("echo one\necho two\n")
    (directory / "part.scad").write_text("cube(1);\n")
    (directory / "files.txt").write_text("part.scad\n")
    return paths


def with_fixture_path(directory: Path) -> str:
    """PATH with the stubs first and this interpreter's procexec next."""
    parts = [directory / "bin", Path(sys.executable).parent, os.environ["PATH"]]
    return os.pathsep.join(map(str, parts))


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_python_blocks_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = fixtures(tmp_path)
    monkeypatch.setenv("PATH", with_fixture_path(tmp_path))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__", **READER_NAMES, "paths": paths}
    for line, code in python_blocks(page):
        exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        for gzipped in tmp_path.glob("*.gz"):  # gzip -k refuses to overwrite
            gzipped.unlink()
    capsys.readouterr()


def page_script(page: Path) -> str:
    """The page's Python blocks pasted in order into one script, after the names a reader's
    own code would define; a comment before each block says where it comes from."""
    prelude = "".join(f"{name} = {value!r}\n" for name, value in READER_NAMES.items())
    blocks = (f"# {page.name}:{line}\n{code}" for line, code in python_blocks(page))
    return prelude + "\n".join(blocks)


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_python_blocks_run_as_a_script(page: Path, tmp_path: Path) -> None:
    """As a reader pasting the page's examples into ``example.py`` runs them, warnings as
    errors. A local cluster's workers are new interpreters that import ``example.py`` first:
    without the guard each would start a cluster of its own ("Nanny failed to start")."""
    fixtures(tmp_path)
    script = tmp_path / "example.py"
    script.write_text(page_script(page))
    env = {**os.environ, "PATH": with_fixture_path(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-W", "error", script.name], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=100, check=False,
    )  # fmt: skip
    where = f"{page.name} pasted into a script"
    assert result.returncode == 0, f"{where}: exit status {result.returncode}\n{result.stderr}"
    assert "Traceback" not in result.stderr, f"{where}\n{result.stderr}"


@pytest.mark.parametrize(
    "page", [p for p in PAGES if shell_blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_shell_blocks_run_or_say_why_not(page: Path, tmp_path: Path) -> None:
    fixtures(tmp_path)
    env = {**os.environ, "PATH": with_fixture_path(tmp_path)}
    for line, code, reason in shell_blocks(page):
        if reason is not None:
            assert reason.strip(), f"{page.name}:{line}: a block not run needs a reason"
            continue
        for offset, command in enumerate(code.splitlines()):
            if not command.strip():
                continue
            result = subprocess.run(
                ["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                text=True, timeout=120, check=False,
            )  # fmt: skip
            where = f"{page.name}:{line + offset}: {command}"
            # 1..101: jobs failed (gzip -k refuses to overwrite what an earlier line made);
            # 126, 127: the shell could not run it; 255: procexec refused it.
            assert result.returncode not in (126, 127, 255), f"{where}\n{result.stderr}"
            assert "Traceback" not in result.stderr, f"{where}\n{result.stderr}"


def copy_of_the_checkout(target: Path) -> Path:
    """The tracked files of this checkout copied to ``target`` (a fresh clone, as a new
    user has it: nothing built, no virtual environment)."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        source, copy = ROOT / os.fsdecode(name), target / os.fsdecode(name)
        if source.is_file():
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(source.read_bytes())
    return target


def readme_first_command() -> str:
    text = (ROOT / "README.md").read_text()
    first = next(code for _, code, _ in shell_blocks(ROOT / "README.md"))
    assert text.index(first) < text.index("## "), "the README opens with this command"
    return first


def outside_any_venv() -> dict[str, str]:
    """This environment without the test run's virtual environment."""
    return {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}


CompletedText = subprocess.CompletedProcess[str]


def check_the_example_batch(result: CompletedText, where: Path) -> None:
    """The README's first command printed the job log of its six jobs and wrote its report."""
    assert "six\tjob 6 says six" in result.stdout
    assert result.stdout.count("\t:\t") == 6  # the job log's rows, printed by cat
    assert 'data-outcome="ok" data-count="6"' in (where / "example.html").read_text()


def run(argv: list[str], *, cwd: Path | None = None, **env: str) -> CompletedText:
    """Run ``argv`` outside this test run's virtual environment, ``env`` added; fail the
    test with the end of its output if it fails."""
    result = subprocess.run(
        argv, cwd=cwd, env={**outside_any_venv(), **env}, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"{argv}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout to copy")
def test_readme_install_and_run(tmp_path: Path) -> None:
    """The README's first command, as a new user runs it: in a fresh copy of the checkout
    (the tracked files), a new virtual environment, ``pip install .`` (from the package
    index, as CI's machine allows), then the example batch with its log and report."""
    copy = copy_of_the_checkout(tmp_path / "procexec")
    check_the_example_batch(run(["bash", "-c", readme_first_command()], cwd=copy), copy)


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs a git checkout to copy")
def test_the_built_wheel_installs_and_runs_the_readme_command(tmp_path: Path) -> None:
    """The distributions as they would be published: ``python -m build`` (the wheel built
    from the sdist) passes ``twine check``; the wheel, installed in a new virtual
    environment (not editable), runs the README's example batch in a directory of its own
    and provides ``anchorscad_lib.utils.process_manager``. Only the package index is
    reached (the build backend, loky and tqdm)."""
    dist, venv, work = tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    copy = copy_of_the_checkout(tmp_path / "procexec")
    run([sys.executable, "-m", "build", "--outdir", str(dist), str(copy)])
    wheel, sdist = sorted(dist.glob("procexec-*.whl")), sorted(dist.glob("procexec-*.tar.gz"))
    assert len(wheel) == len(sdist) == 1, sorted(dist.iterdir())
    run([sys.executable, "-m", "twine", "check", "--strict", str(wheel[0]), str(sdist[0])])
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel[0])])
    _, installs, batch = readme_first_command().partition("pip install . && ")
    assert installs, "the README's first command installs with pip install ."
    work.mkdir()
    path = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    check_the_example_batch(run(["bash", "-c", batch], cwd=work, PATH=path), work)
    imports = (
        "import anchorscad_lib.utils.process_manager as pm, procexec\n"
        "print(pm.ProcessManager.__name__, pm.ProcessManagerEntry.__name__)\n"
        "print(procexec.__file__)"
    )
    found = run([str(venv / "bin" / "python"), "-c", imports], cwd=work).stdout
    names, module = found.splitlines()
    assert names == "ProcessManager ProcessManagerEntry"
    assert Path(module).is_relative_to(venv), f"not the installed wheel: {module}"


def test_every_test_named_in_guarantees_exists() -> None:
    """docs/guarantees.md names, for each promise, the test that keeps it: each file it
    names exists and each test name (``::name``, ``[params]`` left out, ``*`` matching any
    letters) is a test function of some file of tests/. A row whose test cell is ``TODO``
    is a promise whose test is still to be written."""
    tests = "\n".join(path.read_text() for path in (ROOT / "tests").glob("test_*.py"))
    missing = []
    for line in (ROOT / "docs" / "guarantees.md").read_text().splitlines():
        if not line.startswith("| ") or line.startswith("| promise |"):
            continue
        cell = line.rstrip(" |").rsplit(" | ", 1)[-1]
        if cell.strip() == "TODO":
            continue
        for match in re.finditer(r"`(tests/[\w/]+\.py)?(?:::([\w*]+))?", cell):
            file, name = match.groups()
            if file and not (ROOT / file).exists():
                missing.append(file)
            pattern = name and r"^(?:async )?def " + name.replace("*", r"\w*") + r"\("
            if pattern and not re.search(pattern, tests, re.MULTILINE):
                missing.append(name)
    assert missing == [], f"docs/guarantees.md names tests that do not exist: {missing}"
