"""The ``procexec`` command: run lists of commands in parallel, like xargs -P or GNU parallel.

``main(argv)`` (``_main``) parses the options into a Plan (``_args``, ``_plan``, with the job
list from ``_template``), then a ``Runner`` (``_runner``) keeps ``-j`` jobs running on one
ProcessExecutor, printing each job's output whole as it ends, writing the job log
(``_joblog``) and updating the progress bar.
"""

from procexec.cli._main import main

__all__ = ("main",)
