"""A benchmark's server process that dies (a configuration error, a busy port) fails the wait at once with the
last line of its log, instead of after the whole health timeout (`cmr bench ingest` used to wait 300 s)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.encoder import wait_serving


def _never_ready(timeout_s: float) -> None:
    time.sleep(timeout_s)
    raise TimeoutError("not SERVING")


def test_exited_server_fails_at_once_with_its_last_line(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-c", "print('starting'); print('error: CMR_X is missing'); "
                                 "raise SystemExit(2)"], stdout=out, stderr=subprocess.STDOUT)
    proc.wait(30)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match=r"exited with code 2: error: CMR_X is missing"):
        wait_serving(_never_ready, proc, log, timeout_s=300)
    assert time.monotonic() - t0 < 30


def test_running_server_waits_until_ready(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    calls: list[float] = []

    def ready_on_second_call(timeout_s: float) -> None:
        calls.append(timeout_s)
        if len(calls) < 2:
            raise TimeoutError("not yet")

    try:
        wait_serving(ready_on_second_call, proc, tmp_path / "none.log", timeout_s=60)
    finally:
        proc.kill()
        proc.wait()
    assert len(calls) == 2 and all(0 < t <= 5.0 for t in calls)


def test_a_server_never_ready_times_out(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(TimeoutError):
            wait_serving(_never_ready, proc, tmp_path / "none.log", timeout_s=0.5)
    finally:
        proc.kill()
        proc.wait()
