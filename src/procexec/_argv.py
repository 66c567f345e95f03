"""A command as text: how the job log, the report and messages show an argv. A leaf: it
imports nothing of procexec."""

from __future__ import annotations

import os
import shlex
from typing import Any


def command_text(args: Any) -> str:
    """An argv (or shell command line) as one string, quoted as a shell would need it."""
    if isinstance(args, (str, bytes)):
        return args.decode(errors="replace") if isinstance(args, bytes) else args
    if isinstance(args, os.PathLike):  # a program alone
        return shlex.quote(os.fsdecode(args))
    words = [w.decode(errors="replace") if isinstance(w, bytes) else os.fsdecode(w) for w in args]
    return shlex.join(words)
