"""Waiting for a helper server process (the Tansu broker, a private Orthanc) to be ready."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_until_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], log_path: Path, what: str,
                     timeout_s: float, poll_s: float) -> bool:
    """Poll `ready()` until it is true (True) or `timeout_s` passes (False). A process that exits first
    raises RuntimeError with the end of its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} on start: "
                               f"{log_path.read_text(errors='replace')[-2000:]}")
        if ready():
            return True
        time.sleep(poll_s)
    return False
