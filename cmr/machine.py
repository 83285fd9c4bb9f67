"""What machine a measurement ran on, for benchmark and evaluation reports (figures mean little without it)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def memory_gb() -> float | None:
    try:
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    except (OSError, StopIteration, ValueError):
        return None
    return round(kb / 2**20, 1)


def describe_machine() -> str:
    """One line: CPU, cores, memory, OS (and the GPU when torch sees one)."""
    mem = memory_gb()
    text = f"{cpu_name()}, {os.cpu_count()} cores{'' if mem is None else f', {mem} GB'}, " \
           f"{platform.system()} {platform.release()}"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


__all__ = ["cpu_name", "describe_machine", "memory_gb"]
