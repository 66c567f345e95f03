"""One sample in a fresh interpreter: ``python -m bench.one CONTENDER WORKLOAD [--quick]``.

Prints ``{"wall": seconds, "cpu": seconds}`` as JSON. The CPU time is this interpreter's
and its reaped children's during the run only (start-up and imports are not counted).
Running every sample in its own interpreter keeps one contender's heap, threads and
warm caches from weighing on the next.
"""

from __future__ import annotations

import json
import resource
import sys
import time

from bench.contenders import contenders, warm_up


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str]) -> int:
    from bench.run import workloads

    name, load_name = argv[0], argv[1]
    load = next(w for w in workloads("--quick" in argv) if w.name == load_name)
    runner = contenders()[name]
    if runner is None:
        raise SystemExit(f"contender {name!r} is missing here")
    warm_up(name, load)
    cpu, start = _cpu(), time.perf_counter()
    runner(load)
    wall, used = time.perf_counter() - start, _cpu() - cpu
    print(json.dumps({"wall": wall, "cpu": used}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
