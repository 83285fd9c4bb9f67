"""What a part of `cmr up` started dies with it when the part is SIGKILLed (the stack crash bench found both left
behind): the study decoder workers of the encoder and generator, and the broker's Tansu. And `cmr up-broker`
exits when its Tansu dies, so supervisord restarts the part instead of showing it RUNNING with no broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmr.rpc.ports import free_ports

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="process lifetimes via /proc and prctl")
REPO = Path(__file__).resolve().parents[3]


def _gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.1)
    return False


def _kill(*pids: int) -> None:
    """Leave nothing behind when a check failed (the orphans are what the test is about)."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _child_prints(code: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], list[int]]:
    """Start `code` in a Python process; it prints one line of pids, then sleeps until killed."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env=env or dict(os.environ))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip(), f"the child printed nothing (exit {proc.poll()})"
    return proc, [int(x) for x in line.split()]


def test_study_decoder_workers_exit_when_their_service_is_killed() -> None:
    proc, workers = _child_prints(
        "import time\n"
        "from cmr.dicom import ExamSpec\n"
        "from cmr.rpc.study_loading import StudyLoaderPool\n"
        "pool = StudyLoaderPool(ExamSpec(), 2)\n"
        "pool.warm_up()\n"
        "print(*pool._pool._processes, flush=True)\n"
        "time.sleep(600)\n")
    assert len(workers) == 2 and all(not _gone(w, 0) for w in workers)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        assert all(_gone(w) for w in workers), "a decoder worker outlived its SIGKILLed service"
    finally:
        _kill(*workers)


def test_tansu_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    proc, (tansu,) = _child_prints(
        "import time\n"
        "from ingest_svc.broker import TansuBroker\n"
        f"b = TansuBroker(port={port}, data_dir={str(tmp_path)!r}).start()\n"
        "print(b._proc.pid, flush=True)\n"
        "time.sleep(600)\n")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    try:
        assert _gone(tansu), "Tansu outlived the SIGKILLed process that started it (and kept the port)"
    finally:
        _kill(tansu)


def test_up_broker_exits_when_its_tansu_dies(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    env = {**os.environ, "CMR_UP_BROKER_PORT": str(port), "CMR_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli.main", "up-broker"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env)
    try:
        assert proc.stdout is not None
        assert "broker on" in proc.stdout.readline()
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) == 1
        os.kill(int(children[0]), signal.SIGKILL)
        assert proc.wait(15) == 1  # supervisord restarts an unexpected exit
        assert "exited by itself" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
