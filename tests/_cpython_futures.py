"""CPython's own ``test_concurrent_futures``, loaded from the Python installation.

The repository vendors no third-party code: this module runs the test module that Debian's
``libpython3.X-testsuite`` package installs (``.ci/run`` installs it) in this module's own
namespace. So its functions and classes (``mul``, ``init``, ``CrashAtPickle``...) are
importable by reference as ``tests._cpython_futures.<name>``, which is how the worker
processes of ``ex.calls`` find them when they unpickle a call; the tracebacks still name the
installed file, whose lines the tests read back.

``SOURCE`` is the file looked for; ``MISSING`` says why it could not be loaded (empty once
loaded). ``tests/test_calls_cpython.py`` runs the classes against ``ex.calls``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

#: Where Debian's test suite package puts CPython's test module (3.10 and 3.11 have it as
#: one file; 3.12 made it a package, which this loader does not read).
SOURCE = Path(
    f"/usr/lib/python{sys.version_info.major}.{sys.version_info.minor}"
    "/test/test_concurrent_futures.py"
)
MISSING = ""

if not SOURCE.is_file():
    MISSING = (
        f"CPython's test module is not installed at {SOURCE} (Debian's "
        f"libpython{sys.version_info.major}.{sys.version_info.minor}-testsuite package)"
    )
else:
    try:
        exec(compile(SOURCE.read_bytes(), str(SOURCE), "exec"), globals())
    except Exception as exc:  # its own SkipTest (no _multiprocessing), a test.support too old
        MISSING = f"CPython's test module at {SOURCE} could not be loaded: {exc!r}"


#: CPython's module-level futures, as ``create_future`` makes them.
_FUTURES: list[tuple[str, str, dict[str, object]]] = [
    ("PENDING_FUTURE", "PENDING", {}),
    ("RUNNING_FUTURE", "RUNNING", {}),
    ("CANCELLED_FUTURE", "CANCELLED", {}),
    ("CANCELLED_AND_NOTIFIED_FUTURE", "CANCELLED_AND_NOTIFIED", {}),
    ("EXCEPTION_FUTURE", "FINISHED", {"exception": OSError()}),
    ("SUCCESSFUL_FUTURE", "FINISHED", {"result": 42}),
]


def with_future_type(future_type: type) -> ModuleType:
    """CPython's test module run again as a module of its own, where ``Future`` (what its
    ``FutureTests`` and ``create_future`` build) is ``future_type``; its six module-level
    futures are made again of that type."""
    module = ModuleType(f"{__name__}.with_{future_type.__name__}")
    namespace: dict[str, Any] = vars(module)
    exec(compile(SOURCE.read_bytes(), str(SOURCE), "exec"), namespace)
    namespace["Future"] = future_type
    for name, state, kwargs in _FUTURES:
        namespace[name] = namespace["create_future"](state=namespace[state], **kwargs)
    return module
