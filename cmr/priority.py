"""CPU priority of background work. On a small machine every part of the platform shares the same cores, and
the Linux scheduler shares them equally between equal nice values: a study being decoded and segmented (whole
cores for seconds) then delays searches, which take milliseconds, by tens to thousands of milliseconds. Work that
nobody waits on interactively runs at a higher nice value instead, so the scheduler serves queries first and
gives background work every cycle they leave."""

from __future__ import annotations

import os


def lower_priority(to_nice: int) -> int:
    """Raise this process's nice value to `to_nice` (threads started afterwards inherit it). Never lowers it:
    that needs privileges, and whoever started the process at a higher value meant it. Returns the value now."""
    current = os.nice(0)
    if to_nice <= current:
        return current
    try:
        return os.nice(to_nice - current)
    except OSError:  # a container without the right to change it: run as started
        return current


__all__ = ["lower_priority"]
