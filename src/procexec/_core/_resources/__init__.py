"""What the machine gives a job, and what it takes back: admission (``_probes.py`` reads
the files, ``_admission.py`` decides and watches), per-job resource limits
(``_rlimits.py``), the process's own file-descriptor limit (``_limits.py``), and the
guardian that stops the jobs when this process dies (``_guardian.py``, whose helper process
runs ``_guardian_main.py``). None of them imports the rest of the engine.
"""
