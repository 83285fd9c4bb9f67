"""What the `cmr up` crash phase (bench/crash_stack.py) and its test drive: a secured `cmr up` on a temporary data
folder with free ports, the pids supervisord gave each part (from its XML-RPC interface), and each part's health
as `cmr status` checks it (gRPC health, HTTP /ready, the UI's /_stcore/health, a TCP connect to the broker)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.crash_process import REPO
from cmr.config import Settings
from cmr.layout import StackLayout
from cmr.lifetime import alive, command_of, descendants
from cmr.rpc.health import Health, grpc_health, http_health, tcp_health
from cmr.rpc.ports import free_ports
from cmr.security.devca import init_dev

# Every served part of `cmr up` (the demo seeder is a one-shot job, not killed).
PARTS = ("broker", "encoder", "search", "generator", "ingest", "ui")


@dataclass
class StackProbe:
    """A running (or stopped) stack seen from outside: pids per part and each part's health."""

    data: Path
    settings: Settings  # the operator's client identity (TLS, token) and the stack's URLs
    broker_port: int
    metrics_port: int

    @property
    def ui_url(self) -> str:
        return f"https://127.0.0.1:{self.settings.ui_port}"

    @property
    def layout(self) -> StackLayout:
        return StackLayout(self.data)

    def _supervisor(self) -> xmlrpc.client.ServerProxy:
        from supervisor.xmlrpc import SupervisorTransport

        url = f"unix://{self.layout.supervisor_socket}"
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=SupervisorTransport(None, None, url))

    def processes(self) -> dict[str, tuple[str, int]]:
        """part -> (supervisord state, pid; 0 when not running)."""
        return {i["name"]: (i["statename"], int(i["pid"])) for i in self._supervisor().supervisor.getAllProcessInfo()}

    def checks(self) -> dict[str, Callable[[], Health]]:
        s = self.settings
        return {
            "broker": lambda: tcp_health("127.0.0.1", self.broker_port, 1.0),
            "encoder": lambda: grpc_health(s.encoder_url, "cmr.v1.EncoderService", 1.0, settings=s),
            "search": lambda: grpc_health(s.search_url, "cmr.v1.SearchService", 1.0, settings=s),
            "generator": lambda: grpc_health(s.generator_url, "cmr.v1.GeneratorService", 1.0, settings=s),
            "ingest": lambda: http_health(f"http://127.0.0.1:{self.metrics_port}/ready", 1.0),
            "ui": lambda: http_health(self.ui_url + "/_stcore/health", 1.0, cafile=str(s.tls_ca)),
        }

    def health(self, part: str) -> Health:
        return self.checks()[part]()

    def exams(self) -> int:
        from search_svc.client import SearchClient

        with SearchClient(self.settings.search_url, settings=self.settings, timeout_s=10) as c:
            return int(c.stats().exams)

    def status(self) -> tuple[int, str]:
        """`cmr status` as the operator runs it: its exit status and table."""
        r = subprocess.run([sys.executable, "-m", "orchestration.cli.main", "status", "--data-dir", str(self.data)],
                           env=os.environ | {"COLUMNS": "200"}, capture_output=True, text=True, timeout=60, cwd=REPO)
        return r.returncode, r.stdout + r.stderr


class UpStack:
    """`cmr up` on `data` (demo studies already there, `demo` of them seeded at start), free ports, secured as it
    ships; `start()`, `stop()` (SIGTERM: a clean stop of every part), `probe`."""

    def __init__(self, data: Path, demo: int, demo_seed: int, log: Path) -> None:
        enc, search, gen, ui, tg, th, tm, broker, metrics = free_ports(9)
        self.log = log
        self.env = {**os.environ, "CMR_DATA_DIR": str(data), "CMR_UP_DEMO_STUDIES": str(demo),
                    "CMR_UP_DEMO_SEED": str(demo_seed), "CMR_UP_SEED_VIA": "kafka",
                    "CMR_ENCODER_PORT": str(enc), "CMR_SEARCH_PORT": str(search), "CMR_GENERATOR_PORT": str(gen),
                    "CMR_UI_PORT": str(ui), "CMR_TRITON_GRPC_PORT": str(tg), "CMR_TRITON_HTTP_PORT": str(th),
                    "CMR_TRITON_METRICS_PORT": str(tm), "CMR_UP_BROKER_PORT": str(broker),
                    "CMR_INGEST_METRICS_PORT": str(metrics), "CMR_TRITON_EXIT_TIMEOUT_S": "1",
                    "CMR_STUDY_KEY_SECRET": "crash-stack", "CMR_STUDY_ROOTS": "[]", "CMR_UP_SECURE": "true",
                    "CMR_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker}"}
        for k in ("CMR_ENCODER_URL", "CMR_SEARCH_URL", "CMR_GENERATOR_URL", "CMR_INDEX_DIR", "CMR_UP_DEMO_DIR",
                  "CMR_AUTH_MODE", "CMR_TLS"):
            self.env.pop(k, None)
        sec = init_dev(data / "security")  # `cmr up` keeps it: the harness holds the operator's client identity
        settings = Settings(data_dir=data, encoder_url=f"127.0.0.1:{enc}", search_url=f"127.0.0.1:{search}",
                            generator_url=f"127.0.0.1:{gen}", ui_port=ui, study_key_secret="crash-stack",
                            request_timeout_s=30, tls=True, tls_ca=sec.ca, tls_cert=sec.cert("client"),
                            tls_key=sec.key("client"), auth_mode="jwt", auth_public_key=sec.public_key,
                            auth_token_file=sec.token_file("client"), kafka_bootstrap=f"127.0.0.1:{broker}")
        self.probe = StackProbe(data, settings, broker, metrics)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 300.0) -> float:
        """Start `cmr up` and wait until every part is healthy; the seconds it took."""
        t0 = time.monotonic()
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli.main", "up"], env=self.env,
                                         stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
        pending = set(PARTS)
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cmr up exited ({self.proc.returncode}): {self.tail()}")
            if time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"not healthy after {timeout_s:.0f} s: {sorted(pending)}; {self.tail()}")
            pending = {p for p in pending if not self.probe.health(p).ok}
            time.sleep(0.5)
        return time.monotonic() - t0

    def stop(self, timeout_s: float = 150.0) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = None
        self.proc = None
        return code

    def tail(self, n: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


__all__ = ["PARTS", "StackProbe", "UpStack", "alive", "command_of", "descendants"]
