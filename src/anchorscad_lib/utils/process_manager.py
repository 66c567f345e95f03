"""Legacy import path of anchorscad-utils' process manager, served by procexec.

``anchorscad_lib`` and ``anchorscad_lib.utils`` are namespace packages here (no
``__init__.py``), so this module can sit beside the other anchorscad-utils modules.
"""

from procexec.compat import (
    CANNOT_EXECUTE_STATUS,
    NOT_FOUND_STATUS,
    ProcessManager,
    ProcessManagerEntry,
)

__all__ = (
    "CANNOT_EXECUTE_STATUS",
    "DEFAULT_MAX_JOBS",  # noqa: F822  # provided by the module __getattr__ below
    "NOT_FOUND_STATUS",
    "ProcessManager",
    "ProcessManagerEntry",
)


def __getattr__(name: str) -> int:
    # DEFAULT_MAX_JOBS is computed on first use, as in procexec.compat.
    if name == "DEFAULT_MAX_JOBS":
        from procexec import default_max_jobs  # noqa: PLC0415

        return default_max_jobs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
