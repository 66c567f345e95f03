"""The layers of src/ hold: no import circle anywhere, the engine (``procexec._core``) in
the order its ``__init__`` docstring gives, never importing a front end, and front ends
using only the engine's exported names.

Every import counts: module level, inside functions, under ``TYPE_CHECKING``. The graph is
read from the source (AST), so nothing is imported to check it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
CORE = "procexec._core"
#: Modules that import nothing of procexec but one another, usable from anywhere.
LEAVES = frozenset(
    {
        "procexec._result",
        "procexec._rusage",
        "procexec._status",
        "procexec._validate",
        "procexec._sizes",
        "procexec._argv",
    }
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _resolve(importer: str, node: ast.ImportFrom) -> str:
    """The absolute module a ``from ... import`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not _is_package(importer):
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(name: str) -> Iterator[str]:
    """Every module of src/ that ``name`` imports, wherever the import statement is."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, node)
            # ``from package import submodule`` imports that submodule.
            submodules = [f"{module}.{alias.name}" for alias in node.names]
            targets = [t for t in submodules if t in MODULES] or [module]
        else:
            continue
        yield from (target for target in targets if target in MODULES)


GRAPH = {name: sorted(set(imports_of(name)) - {name}) for name in MODULES}


def core_order() -> list[str]:
    """The engine's modules as ``_core/__init__.py``'s docstring lists them, top first."""
    doc = ast.get_docstring(ast.parse(MODULES[CORE].read_text())) or ""
    block = doc.split("```")[1]
    return [f"{CORE}.{m}" for m in re.findall(r"^ (_\w+)", block, flags=re.MULTILINE)]


def _layer_of(name: str, order: list[str]) -> int:
    """The index of the listed module or package that ``name`` belongs to."""
    for index, listed in enumerate(order):
        if name == listed or name.startswith(listed + "."):
            return index
    raise AssertionError(f"{name} is not in the order of _core/__init__.py's docstring")


def _circles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read() -> None:
    """The walk finds the engine's known arrows (it would pass vacuously otherwise)."""
    assert "procexec._core._lane" in GRAPH["procexec._core._reaper"]
    assert "procexec._core._platform" in GRAPH["procexec._core._lane"]
    assert "procexec._core._awaiting" in GRAPH["procexec._core._future"]  # in a function
    assert "procexec._core._job" in GRAPH["procexec._core._lanehost"]  # under TYPE_CHECKING


def test_no_import_circle_anywhere() -> None:
    assert _circles() == []


def test_the_engine_imports_only_what_comes_after_it() -> None:
    order = core_order()
    assert len(order) > 10, "the order block of _core/__init__.py's docstring was not read"
    listed = {name for name in MODULES if name.startswith(CORE + ".")}
    unlisted = [name for name in listed if not any(name.startswith(m) for m in order)]
    assert unlisted == [], "every engine module is in the order"
    wrong = [
        f"{name} -> {target}"
        for name in sorted(listed)
        for target in GRAPH[name]
        if target.startswith(CORE + ".")
        and _layer_of(target, order) <= _layer_of(name, order)
        and not _same_subpackage(name, target, order)
    ]
    assert wrong == [], "an engine module imports one listed before it (or the package)"


def _same_subpackage(name: str, target: str, order: list[str]) -> bool:
    """Inside one listed subpackage (``_platform``, ``_resources``) its own modules may
    import each other; the test of circles still covers them."""
    layer = order[_layer_of(name, order)]
    return layer == order[_layer_of(target, order)] and _is_package(layer)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(CORE + ".")))
def test_the_engine_never_imports_a_front_end(name: str) -> None:
    outside = [
        target
        for target in GRAPH[name]
        if not target.startswith(CORE) and target not in LEAVES and target != "procexec"
    ]
    assert outside == []
    assert "procexec" not in GRAPH[name], "the engine imports its modules, not procexec"


@pytest.mark.parametrize("name", sorted(LEAVES))
def test_leaves_import_nothing_of_procexec_but_leaves(name: str) -> None:
    assert set(GRAPH[name]) <= LEAVES - {name}


FRONT_ENDS = sorted(n for n in MODULES if not n.startswith(CORE) and n not in LEAVES)


@pytest.mark.parametrize("name", FRONT_ENDS)
def test_front_ends_use_only_the_engines_exported_names(name: str) -> None:
    internals = [target for target in GRAPH[name] if target.startswith(CORE + ".")]
    assert internals == [], f"{name} reaches into the engine; export the name from {CORE}"


def _package_of(name: str) -> str:
    """``procexec.cli`` for ``procexec.cli._main``; the module itself for a top module."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or _is_package(name) else name


@pytest.mark.parametrize("name", FRONT_ENDS)
def test_front_ends_use_each_other_by_their_public_names(name: str) -> None:
    """``cli`` may use ``procexec.report``, never ``procexec.report._records``."""
    reaching = [
        target
        for target in GRAPH[name]
        if not target.startswith(CORE)
        and _package_of(target) != _package_of(name)
        and target.rsplit(".", 1)[-1].startswith("_")
        and target not in LEAVES
    ]
    assert reaching == []


def test_the_engine_exports_what_the_front_ends_use() -> None:
    """Each name ``procexec._core`` exports is public in ``procexec`` or used by a front end,
    and front ends take from it only exported names."""
    import procexec
    import procexec._core as core

    used: set[str] = set()
    for name in FRONT_ENDS:
        for node in ast.walk(ast.parse(MODULES[name].read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == CORE:
                used.update(alias.name for alias in node.names)
    assert used - set(core.__all__) == set()
    assert set(core.__all__) - used - set(procexec.__all__) == set()
