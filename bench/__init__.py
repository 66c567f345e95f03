"""Benchmarks of procexec against its peers; run ``python -m bench``."""
