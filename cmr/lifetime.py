"""Child processes that die with their parent. A part of `cmr up` killed with SIGKILL (the OOM killer, a crash)
runs no clean-up, so whatever it started must notice by itself: left running, Tansu kept the broker's port (the
restarted broker could not bind it, and the orphan served on, unsupervised, past `cmr down`), and the study
decoder workers of the encoder and the generator (~300 MB each) stayed alive forever, two more per crash."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a child before exec (a `preexec_fn`): the kernel sends `sig` when the parent dies, however it dies.
    Linux only (elsewhere a no-op). The "parent" is the thread that forked: fork from a thread that outlives
    the child (the main thread of a service)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


def exit_when_orphaned(parent_pid: int, poll_s: float = 1.0) -> None:
    """In a pool worker (a ProcessPoolExecutor `initializer`): exit once `parent_pid` is no longer the parent.
    A polling thread rather than PR_SET_PDEATHSIG, because a pool forks its workers from whichever thread
    submits first (a gRPC handler thread), and the death signal would follow that thread, not the process."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(0)  # the parent is gone: nobody waits for this worker's results

    threading.Thread(target=watch, name="exit-when-orphaned", daemon=True).start()


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc), to find what a killed part leaves behind."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


__all__ = ["alive", "command_of", "descendants", "die_with_parent", "exit_when_orphaned"]
