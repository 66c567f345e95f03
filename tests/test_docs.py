"""Every Python code block of README.md and docs/ runs, so an example can never again raise
NameError. The blocks of a page run in order in one namespace, as a reader would paste them,
in a temporary directory with the tiny fixtures they need (below)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: Programs the examples run that a test machine may lack: stubs that succeed.
STUB_PROGRAMS = ("convert", "openscad")


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, code) of each Python block of ``page``."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in BLOCK.finditer(text)]


@pytest.mark.parametrize(
    "page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT))
)
def test_python_blocks_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in STUB_PROGRAMS:
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Makefile").write_text("all:\n\t@echo built\n")
    paths = ["a.log", "b.log", "c.log"]
    for name in paths:
        (tmp_path / name).write_text(f"{name}\n")
    namespace = {
        "__name__": "__docs__",
        "paths": paths,  # the reader's own files
        "names": ["part.scad"],
        "huge_list_of_paths": ["img1", "img2", "img3"],
    }
    for line, code in python_blocks(page):
        exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        for gzipped in tmp_path.glob("*.gz"):  # gzip -k refuses to overwrite
            gzipped.unlink()
    capsys.readouterr()
