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

from bench.contenders import contenders, warm_up


def _cpu() -> tuple[float, float]:
    """CPU seconds of this interpreter, and of its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def main(argv: list[str]) -> int:
    from bench.run import workloads

    name, load_name = argv[0], argv[1]
    load = next(w for w in workloads("--quick" in argv) if w.name == load_name)
    runner = contenders()[name]
    if runner is None:
        raise SystemExit(f"contender {name!r} is missing here")
    warm_up(name, load)
    (own, kids), start = _cpu(), time.perf_counter()
    runner(load)
    wall = time.perf_counter() - start
    own_after, kids_after = _cpu()
    used_own, used_kids = own_after - own, kids_after - kids
    print(json.dumps({"wall": wall, "cpu": used_own + used_kids, "own_cpu": used_own}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
