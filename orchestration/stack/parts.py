"""The parts of the one-machine stack, each a supervised process entry: a command line, a health check, a
start priority (supervisord starts low numbers first and stops in reverse). A part whose module is not
installed yet is listed as unavailable with the reason, and the stack starts without it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cmr.config import Settings
from cmr.layout import StackLayout
from cmr.rpc.health import Health, grpc_health, http_health, tcp_health
from cmr.security.devca import DevSecurity


@dataclass
class Part:
    name: str
    title: str
    command: list[str]
    priority: int
    health: Callable[[], Health] | None = None  # None: the supervised process state is the health
    available: bool = True
    reason: str = ""  # why it is unavailable
    oneshot: bool = False  # runs to completion (demo seeding) instead of serving
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    startsecs: int = 3
    stopwaitsecs: int = 40


def _module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def cmr_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestration.cli.main", *args]


def ingest_available() -> tuple[bool, str]:
    for module in ("ingest_svc.worker", "ingest_svc.broker", "ingest_svc.producer"):
        if not _module(module):
            return False, f"{module} is not installed yet"
    return True, ""


def ui_url(settings: Settings) -> str:
    if settings.ui_public_url:
        return settings.ui_public_url
    host = "127.0.0.1" if settings.ui_host in ("0.0.0.0", "") else settings.ui_host
    return f"{'https' if settings.tls else 'http'}://{host}:{settings.ui_port}"


def security_of(settings: Settings) -> DevSecurity | None:
    """The stack's development CA and keys (`cmr up` makes them when CMR_UP_SECURE), if it runs secured."""
    sec = DevSecurity(Path(settings.data_dir) / "security")
    return sec if settings.up_secure and sec.exists() else None


def part_env(settings: Settings, part: str) -> dict[str, str]:
    """What one part runs with beyond the stack's shared settings: its own certificate and identity."""
    sec = security_of(settings)
    if sec is None:
        return {"CMR_TLS": "false", "CMR_AUTH_MODE": "off"}
    return sec.env(part)


def ui_command(settings: Settings) -> list[str]:
    import ui

    app = Path(ui.__file__).resolve().parent / "app.py"
    sec = security_of(settings)
    # Streamlit serves HTTPS itself with the UI's certificate (one machine; production puts it behind an ingress)
    tls = ["--server.sslCertFile", str(sec.cert("ui")), "--server.sslKeyFile", str(sec.key("ui"))] if sec else []
    return [sys.executable, "-m", "streamlit", "run", str(app),
            "--server.address", settings.ui_host, "--server.port", str(settings.ui_port),
            "--server.headless", "true", "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--client.showErrorDetails", "none",
            "--client.toolbarMode", "minimal", "--global.developmentMode", "false", *tls]


def stack_parts(settings: Settings, layout: StackLayout, *, with_demo: bool = True) -> list[Part]:
    """Every part `cmr up` knows, in start order; unavailable ones carry the reason."""
    s = settings
    parts: list[Part] = []

    ingest_ok, ingest_reason = ingest_available()
    parts.append(Part("broker", "Kafka broker (Tansu)", cmr_command("up-broker"), 5,
                      health=lambda: tcp_health("127.0.0.1", s.up_broker_port), available=ingest_ok,
                      reason=ingest_reason, url=f"127.0.0.1:{s.up_broker_port}"))
    parts.append(Part("encoder", "Triton + EncoderService", cmr_command("serve", "encoder"), 10,
                      health=lambda: grpc_health(s.encoder_url, "cmr.v1.EncoderService", settings=s), url=s.encoder_url,
                      startsecs=5, env=part_env(s, "encoder")))
    parts.append(Part("search", "SearchService (Qdrant Edge)", cmr_command("serve", "search"), 20,
                      health=lambda: grpc_health(s.search_url, "cmr.v1.SearchService", settings=s), url=s.search_url,
                      env=part_env(s, "search")))
    gen_ok = _module("generator_svc.server")
    parts.append(Part("generator", "GeneratorService", cmr_command("serve", "generator"), 30,
                      health=lambda: grpc_health(s.generator_url, "cmr.v1.GeneratorService", settings=s),
                      url=s.generator_url, env=part_env(s, "generator"), available=gen_ok,
                      reason="" if gen_ok else "generator_svc.server is not installed yet"))
    metrics_port = getattr(s, "ingest_metrics_port", 0)  # the worker's Prometheus endpoint, when it has one
    parts.append(Part("ingest", "ingest worker", cmr_command("serve", "ingest") if ingest_ok else [], 40, available=ingest_ok,
                      reason=ingest_reason, url=f"http://127.0.0.1:{metrics_port}/metrics" if metrics_port else "",
                      env=part_env(s, "ingest"),
                      health=(lambda: http_health(f"http://127.0.0.1:{metrics_port}/ready")) if metrics_port else None))
    ca = str(s.tls_ca) if s.tls and s.tls_ca else None
    parts.append(Part("ui", "Streamlit UI", ui_command(s), 50, url=ui_url(s),
                      env={**part_env(s, "ui"), "CMR_UI_STACK_STATUS": "true"},  # its sidebar shows every part
                      health=lambda: http_health(ui_url(s) + "/_stcore/health", cafile=ca)))
    if with_demo and s.up_demo_studies > 0:
        via = s.up_seed_via if s.up_seed_via != "auto" else ("kafka" if ingest_ok else "direct")
        parts.append(Part("seed", f"demo index ({s.up_demo_studies} studies, via {via})",
                          cmr_command("up-seed", "--via", via), 60, oneshot=True, startsecs=0,
                          env=part_env(s, "ingest")))
    return parts
