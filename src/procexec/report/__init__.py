"""See a batch instead of reading it: a self-contained HTML report and a short summary.

```python
from procexec import ProcessExecutor
from procexec.report import write_html

with ProcessExecutor(max_jobs=4) as ex:
    futures = [ex.submit(["gzip", "-k", path]) for path in paths]
write_html(futures, "report.html", max_jobs=4)
```

The same report comes from a job log: ``procexec report run.log -o report.html``, where
``run.log`` is GNU parallel's ``--joblog`` (procexec's or GNU parallel's own) and/or the JSON
Lines sidecar ``procexec --joblog-json`` writes. See docs/report.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from procexec import __version__
from procexec.report._html import render
from procexec.report._logs import read_records
from procexec.report._records import JobRecord, ReportError, record_of, records_from
from procexec.report._stats import Batch, analyse
from procexec.report._summary import summary_lines

__all__ = (
    "Batch",
    "JobRecord",
    "ReportError",
    "analyse",
    "read_records",
    "record_of",
    "records_from",
    "summary_lines",
    "write_html",
)


def write_html(
    jobs: Iterable[Any],
    path: str | os.PathLike[str],
    *,
    max_jobs: int | None = None,
    title: str = "procexec run report",
    settings: Mapping[str, str] | None = None,
) -> Batch:
    """Write the report of ``jobs`` to ``path`` (one self-contained HTML file).

    Args:
        jobs: futures from a :class:`~procexec.ProcessExecutor` (``submit`` or ``run``;
            all done; cancelled ones are left out), ``JobResult`` objects, or
            :class:`JobRecord` objects (e.g. from :func:`read_records`), in job order.
        path: the file to write (replaced if it exists).
        max_jobs: the executor's limit, for the utilization figure; None: the highest slot
            used (inferred from start and end times when the jobs carry no slot).
        title: the page's title.
        settings: extra "name: value" lines for the totals (the command, timeout...).

    Returns:
        The figures the report shows.

    Raises:
        ReportError: a future that is not done, or an object that is not a job.
        OSError: the file cannot be written.
    """
    batch = analyse(records_from(jobs), max_jobs)
    page = render(batch, title=title, settings=dict(settings or {}), version=__version__)
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as file:
        file.write(page)
    return batch
