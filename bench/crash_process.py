"""A process the crash harness starts, SIGKILLs and starts again (the search service, the ingest worker): its
output appended to one log across restarts, and it dies with the harness (an interrupted run leaves no child
behind)."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from cmr.lifetime import die_with_parent  # SIGKILL the child when the harness dies

REPO = Path(__file__).resolve().parents[1]


class ChildProcess:
    """`spawn()` starts `args` (again), `kill()` is SIGKILL, `stop()` SIGTERM with a grace period."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0
        self.starts = 0

    def spawn(self) -> None:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=REPO, preexec_fn=die_with_parent)
        self.spawned_at = time.monotonic()
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM (a clean stop), SIGKILL after `timeout_s`; the exit status (None when it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


__all__ = ["ChildProcess", "REPO", "die_with_parent"]
