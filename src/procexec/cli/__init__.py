"""The ``procexec`` command: run lists of commands in parallel, like xargs -P or GNU parallel.

``main(argv)`` (``_main``) parses the options into a Plan (``_plan``): the command line is
split as GNU parallel splits it (``_getopt``, ``_args``; values in ``_values``), the
template checked (``_template``, quoted by ``_shell``), the input sources read lazily
(``_inputs``, ``--header`` in ``_header``) into each job's arguments (``_joblist``, ``-X``/
``-m`` packed by ``_pack``) or, with ``--pipe``, standard input cut into blocks (``_pipe``),
all handed over as they arrive (``_feed``). Then a ``Runner`` (``_runner``) keeps ``-j``
jobs running on one ProcessExecutor (how many and when: ``_machine``), printing each job's
output as ``_display`` says (``--results``: ``_results``), writing the job log
(``_joblog``, ``_outputs``) and updating the progress bar (``_progress``).
"""

from procexec.cli._main import main

__all__ = ("main",)
