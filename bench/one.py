"""One sample in a fresh interpreter: ``python -m bench.one CONTENDER WORKLOAD [--quick]``.

Prints ``{"wall": seconds, "cpu": seconds, "own_cpu": seconds}`` as JSON. ``cpu`` is the
CPU time of this interpreter and its reaped children during the run only (start-up and
imports are not counted); ``own_cpu`` is this interpreter's part of it.
Running every sample in its own interpreter keeps one contender's heap, threads and
warm caches from weighing on the next.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable

from bench.contenders import Workload, contenders, warm_up


def _cpu() -> tuple[float, float]:
    """CPU seconds of this interpreter, and of its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def measure(runner: Callable[[Workload], None], load: Workload) -> dict[str, float]:
    """Run ``load`` once with ``runner``: wall seconds, CPU seconds of this interpreter and
    its reaped children (``cpu``), and of this interpreter alone (``own_cpu``)."""
    (own, kids), start = _cpu(), time.perf_counter()
    runner(load)
    wall = time.perf_counter() - start
    own_after, kids_after = _cpu()
    used_own, used_kids = own_after - own, kids_after - kids
    return {"wall": wall, "cpu": used_own + used_kids, "own_cpu": used_own}


def load_named(name: str, quick: bool) -> Workload:
    """The workload called ``name`` (its small version with ``quick``)."""
    from bench.run import workloads

    return next(w for w in workloads(quick) if w.name == name)


def main(argv: list[str]) -> int:
    name, load = argv[0], load_named(argv[1], "--quick" in argv)
    runner = contenders()[name]
    if runner is None:
        raise SystemExit(f"contender {name!r} is missing here")
    warm_up(name, load)
    print(json.dumps(measure(runner, load)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
