"""Child processes that die with their parent. A part of `cmr up` killed with SIGKILL (the OOM killer, a crash)
runs no clean-up, so whatever it started must notice by itself: left running, Tansu kept the broker's port (the
restarted broker could not bind it, and the orphan served on, unsupervised, past `cmr down`), and the study
decoder workers of the encoder and the generator (~300 MB each) stayed alive forever, two more per crash."""

from __future__ import annotations

import os
import signal
import threading
import time

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


__all__ = ["die_with_parent", "exit_when_orphaned"]
