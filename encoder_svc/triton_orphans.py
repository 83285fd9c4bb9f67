"""Reaping what a SIGKILLed encoder service left of its Triton. PyTriton's tritonserver dies with the service,
but each model's Python backend stub (and the resource tracker and worker it spawned) does not: they were
found running, re-parented to init, long after every kill of the `cmr up` encoder part (~100 MB and a 4 MB
shared-memory region per model, per crash). A stub names its shared memory `pytrtion<pid>-...` after the
process that started Triton. Each service start records its pid beside Triton's log; the next start, if that
process is dead, ends its stubs (with what they spawned) and unlinks its shared memory. Nothing of a live
process, or of a process this data folder did not record, is touched."""

from __future__ import annotations

import logging
import os
import re
import signal
from pathlib import Path

from cmr.lifetime import alive, descendants

log = logging.getLogger(__name__)

STUB = "triton_python_backend_stub"
OWNER = re.compile(r"^pytrtion(\d+)-")
SHM = Path("/dev/shm")


def _args(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def stub_owner(args: list[str]) -> int | None:
    """The pid that started the stub's Triton, if `args` are a PyTriton backend stub's command line."""
    if not args or not args[0].endswith(STUB):
        return None
    for a in args[1:]:
        m = OWNER.match(a)
        if m:
            return int(m.group(1))
    return None


def reap_stubs_of(owner: int, shm: Path = SHM) -> int:
    """SIGKILL the backend stubs started for the dead process `owner` (and their children), unlink its shared
    memory; the number of stubs ended. Linux only (elsewhere 0)."""
    proc = Path("/proc")
    if alive(owner) or not proc.is_dir():
        return 0
    ended = 0
    for entry in proc.iterdir():
        if entry.name.isdigit() and stub_owner(_args(int(entry.name))) == owner:
            pid = int(entry.name)
            for p in (*descendants(pid), pid):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
            ended += 1
    if shm.is_dir():
        for region in shm.glob(f"pytrtion{owner}-*"):
            try:
                region.unlink()
            except OSError:
                pass
    return ended


def reap_previous(owner_file: Path, shm: Path = SHM) -> int:
    """At a service start: end what the previous service of this data folder left, if it died; then record
    this process as the owner. The number of stubs ended."""
    try:
        previous = int(owner_file.read_text().strip())
    except (OSError, ValueError):
        previous = 0
    ended = reap_stubs_of(previous, shm) if previous and previous != os.getpid() else 0
    if ended:
        log.warning("ended %d Triton backend stub(s) left running by the encoder service (pid %d) that was killed",
                    ended, previous)
    owner_file.parent.mkdir(parents=True, exist_ok=True)
    owner_file.write_text(str(os.getpid()))
    return ended


__all__ = ["reap_previous", "reap_stubs_of", "stub_owner"]
