"""fsync of one path, file or folder: what makes a write, or a name in a folder (a rename, a new file), survive
a power cut. os.fsync releases the GIL, so other threads go on while the disk works."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path, *, missing_ok: bool = False) -> bool:
    """fsync `path` (a folder: the names in it). missing_ok: a path removed meanwhile is skipped (False
    returned) instead of raising FileNotFoundError."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if missing_ok:
            return False
        raise
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


__all__ = ["fsync_path"]
