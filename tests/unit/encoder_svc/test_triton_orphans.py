"""A SIGKILLed encoder service's Triton backend stubs (they outlived it, found by the `cmr up` crash bench) are
ended by the next start of the service on the same data folder; a live process's stubs are left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmr.lifetime import alive
from encoder_svc.triton_orphans import STUB, reap_previous, stub_owner

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc")


def _fake_stub(owner: int) -> subprocess.Popen[bytes]:
    """A process whose command line reads like a PyTriton backend stub started for `owner`."""
    code = "import time; time.sleep(120)"
    return subprocess.Popen(["bash", "-c", f'exec -a /opt/tritonserver/backends/python/{STUB} "$0" -c "$1" "$2"',
                             sys.executable, code, f"pytrtion{owner}-abc-123"])


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_stubs_of_a_dead_service_are_ended_and_its_memory_unlinked(tmp_path: Path) -> None:
    dead = _dead_pid()
    owner_file = tmp_path / "logs" / "triton.owner"
    owner_file.parent.mkdir()
    owner_file.write_text(str(dead))
    orphan, other = _fake_stub(dead), _fake_stub(os.getpid())  # `other`: a live process's stub
    shm = tmp_path / "shm"
    shm.mkdir()
    (shm / f"pytrtion{dead}-abc-123").write_bytes(b"x")
    (shm / f"pytrtion{os.getpid()}-def-456").write_bytes(b"x")
    try:
        time.sleep(0.5)  # bash has exec'ed
        assert stub_owner(Path(f"/proc/{orphan.pid}/cmdline").read_bytes().decode().split("\0")) == dead
        assert reap_previous(owner_file, shm) == 1
        assert [r.name for r in shm.iterdir()] == [f"pytrtion{os.getpid()}-def-456"]
        assert orphan.wait(5) == -9
        assert alive(other.pid)
        assert owner_file.read_text() == str(os.getpid())  # this start is now the owner
        assert reap_previous(owner_file) == 0  # itself alive: nothing to reap
    finally:
        for p in (orphan, other):
            p.kill()
            p.wait()


def test_a_first_start_records_itself(tmp_path: Path) -> None:
    owner_file = tmp_path / "triton.owner"
    assert reap_previous(owner_file) == 0
    assert owner_file.read_text() == str(os.getpid())
