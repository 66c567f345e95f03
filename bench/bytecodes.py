"""Count the Python bytecode instructions a run executes, by who owns the code.

Wall and CPU seconds on these machines vary by several percent from run to run; the count
of bytecode instructions does not, so it shows small changes in the Python work per job
that timings cannot. It leaves out what runs in C (the fork and exec, locks, system calls).

Each instruction is charged to the innermost frame on the stack whose file belongs to one
of ``OWNERS``: the lines of ``threading`` that ``Future.set_result`` runs count as
concurrent.futures, those that procexec's lanes run directly count as procexec.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

import procexec


def _package_dir(module_file: str) -> str:
    return os.path.dirname(module_file) + os.sep


#: (the start of a code file's path, the owner it stands for), tested in this order.
OWNERS = (
    (subprocess.__file__, "subprocess"),
    (_package_dir(concurrent.futures.__file__), "concurrent.futures"),
    (_package_dir(procexec.__file__), "procexec"),
)
OTHER = "other"
#: Every owner an instruction can be charged to, in the order tables show them.
OWNER_NAMES = (*(owner for _, owner in OWNERS), OTHER)

Tracer = Callable[[FrameType, str, Any], Any]


def owner_of(frame: FrameType | None) -> str:
    """The owner of the innermost frame, from ``frame`` outwards, that has one."""
    while frame is not None:
        path = frame.f_code.co_filename
        for start, owner in OWNERS:
            if path.startswith(start):
                return owner
        frame = frame.f_back
    return OTHER


def count_bytecodes(run: Callable[[], None]) -> tuple[Counter[str], Counter[str]]:
    """Run ``run()`` with every thread it starts traced; the instructions executed, by
    owner, in all threads and in the calling thread alone."""
    per_thread: dict[int, Counter[str]] = {}  # each thread adds only to its own counter

    def on_call(frame: FrameType, event: str, arg: Any) -> Tracer:
        frame.f_trace_opcodes = True
        owner = owner_of(frame)
        counts = per_thread.setdefault(threading.get_ident(), Counter())

        def on_event(frame: FrameType, event: str, arg: Any) -> Tracer:
            if event == "opcode":
                counts[owner] += 1
            return on_event

        return on_event

    before = sys.gettrace(), threading.gettrace()  # coverage's, when it measures this
    threading.settrace(on_call)
    sys.settrace(on_call)
    try:
        run()
    finally:
        sys.settrace(before[0])
        threading.settrace(before[1])
    total: Counter[str] = Counter()
    for counts in per_thread.values():
        total.update(counts)
    return total, per_thread.get(threading.get_ident(), Counter())
