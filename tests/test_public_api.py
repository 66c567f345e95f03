"""The public names: a tuple __all__, each documented in docstrings and docs/api.md."""

from __future__ import annotations

from pathlib import Path

import pytest

import procexec
import procexec.aio
import procexec.compat
import procexec.dask
import procexec.report

API_DOC = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()


@pytest.mark.parametrize(
    "module", [procexec, procexec.compat, procexec.report, procexec.aio, procexec.dask]
)
def test_all_is_a_tuple_of_existing_documented_names(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert isinstance(names, tuple)
    for name in names:
        value = getattr(module, name)
        assert name in API_DOC, f"{name} is missing from docs/api.md"
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"


def test_public_methods_have_docstrings() -> None:
    for cls in (
        procexec.ProcessExecutor,
        procexec.ProcessFuture,
        procexec.CallFuture,
        procexec.WorkerOptions,
        procexec.compat.ProcessManager,
        procexec.compat.ProcessManagerEntry,
        procexec.report.JobRecord,
        procexec.report.Batch,
        procexec.dask.DaskExecutor,
        procexec.dask.DaskFuture,
    ):
        for name, member in vars(cls).items():
            if not name.startswith("_") and callable(member):
                assert member.__doc__, f"{cls.__name__}.{name} has no docstring"
