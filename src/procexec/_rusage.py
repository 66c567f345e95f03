"""Rusage: a child's CPU time and peak memory, as ``JobResult.rusage`` and
``future.rusage`` give it. A dataclass, so a module of its own, loaded when a usage is
first read (``dataclasses`` loads ``inspect``: a run that never looks does not pay it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rusage:
    """Resource usage of one child, from ``os.wait4``.

    Linux carries the peak memory of the process that starts a child across ``exec``: the
    kernel's figure for a child is the higher of its own peak and the peak its parent (this
    Python process) had when it started it. ``true`` started from a 500 MiB interpreter
    reports 500 MiB. So the figure is kept as an upper bound, and counts as the child's own
    peak only when it is higher than this process's own peak.

    Attributes:
        user_time: CPU seconds spent in user mode.
        system_time: CPU seconds spent in the kernel.
        max_rss: the child's own peak resident set size in bytes, or None when it cannot
            be told apart from the parent's peak it inherited (a child that stayed smaller
            than this process); it is then at most ``max_rss_upper``.
        max_rss_upper: the kernel's figure (``ru_maxrss``, in bytes): the higher of the
            child's own peak and this process's peak when it started the child.
    """

    user_time: float
    system_time: float
    max_rss: int | None
    max_rss_upper: int

    def __repr__(self) -> str:
        """The times rounded to the microsecond, the resolution ``wait4`` gives them in
        (the attributes keep the exact values)."""
        return (
            f"Rusage(user_time={round(self.user_time, 6)!r}, "
            f"system_time={round(self.system_time, 6)!r}, max_rss={self.max_rss!r}, "
            f"max_rss_upper={self.max_rss_upper!r})"
        )

    @classmethod
    def from_figures(cls, figures: tuple[float, float, int, bool]) -> Rusage:
        """Build from the figures a job keeps (``procexec._status.UsageFigures``)."""
        utime, stime, kib, own = figures
        return cls(utime, stime, kib * 1024 if own else None, kib * 1024)
