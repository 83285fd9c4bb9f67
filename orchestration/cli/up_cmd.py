"""`cmr up` (the one-machine stack under supervisord), `cmr status`, `cmr down`, and the stack's internal
entries (`cmr up-seed`, `cmr up-broker`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # pydantic settings are imported where a command runs, not for `cmr --help`
    from cmr.config import Settings

console = Console(stderr=True)
out = Console()

# Settings `cmr up` hands to every part (as CMR_* variables), so they agree on ports, folders and URLs.
_EXPORTED = ("data_dir", "study_roots", "encoder_port", "search_port", "generator_port", "encoder_url", "search_url",
             "generator_url", "ui_host", "ui_port", "ui_thumb_dir", "up_demo_dir", "up_demo_studies", "up_demo_seed",
             "up_seed_via", "up_broker_port", "ingest_metrics_port", "triton_grpc_port", "triton_http_port", "triton_metrics_port",
             "study_key_secret", "index_dir")


def resolve_settings(overrides: dict[str, Any]) -> Settings:
    """Settings of a stack: the environment, the command-line overrides, absolute folders, URLs that follow the
    ports, and the demo folder among the study roots (the encoder reads demo studies by server-side ref)."""
    from cmr.config import Settings
    from cmr.layout import StackLayout

    s = Settings(**{k: v for k, v in overrides.items() if v is not None})
    layout = StackLayout(Path(s.data_dir).resolve())
    demo = layout.demo_dir(s)
    roots = list(dict.fromkeys([*(Path(r).resolve() for r in s.study_roots), demo]))
    # `cmr up` itself (health checks, `cmr status`) acts as the operator's client of a secured stack
    secure: dict[str, Any] = {"tls": False, "auth_mode": "off"}
    if s.up_secure:
        from cmr.security.devca import init_dev

        sec = init_dev(layout.data_dir / "security")
        secure = {"tls": True, "tls_ca": sec.ca, "tls_cert": sec.cert("client"), "tls_key": sec.key("client"),
                  "auth_mode": "jwt", "auth_public_key": sec.public_key, "auth_token_file": sec.token_file("client"),
                  "auth_issuer": "cmr-local", "auth_audience": "cmr"}
    return s.model_copy(update={**secure,
        "data_dir": layout.data_dir, "study_roots": roots, "up_demo_dir": demo, "ui_thumb_dir": layout.thumb_dir(s),
        "index_dir": layout.index_dir(s),
        "encoder_url": f"127.0.0.1:{s.encoder_port}", "search_url": f"127.0.0.1:{s.search_port}",
        "generator_url": f"127.0.0.1:{s.generator_port}"})


def stack_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name in _EXPORTED:
        value = getattr(settings, name, None)  # a setting of a part not installed yet is skipped
        if value is None:
            continue
        if isinstance(value, list):
            env[f"CMR_{name.upper()}"] = json.dumps([str(v) for v in value])
        else:
            env[f"CMR_{name.upper()}"] = str(value)
    # The broker `cmr up` starts is the ingest worker's and the seeder's Kafka.
    env["CMR_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{settings.up_broker_port}"
    env["CMR_AUDIT_KAFKA"] = "true"  # the services' audit entries also go to the audit topic on that broker
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _saved_settings(data_dir: Path | None) -> Settings:
    """The settings a running (or the last) `cmr up` used for this data folder, else the environment's."""
    from cmr.config import Settings
    from cmr.layout import StackLayout

    base = Settings() if data_dir is None else Settings(data_dir=data_dir)
    saved = StackLayout.from_settings(base).run_dir / "stack.json"
    if saved.exists():
        try:
            return Settings(**json.loads(saved.read_text()))
        except (ValueError, TypeError):
            pass
    return resolve_settings({"data_dir": base.data_dir})


def _port_busy(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def _busy_ports(settings: Settings, parts: list[Any]) -> list[str]:
    names = {"encoder": ["encoder_port", "triton_grpc_port", "triton_http_port", "triton_metrics_port"],
             "search": ["search_port"], "generator": ["generator_port"], "ui": ["ui_port"],
             "broker": ["up_broker_port"], "ingest": ["ingest_metrics_port"]}
    busy = []
    for p in parts:
        for field in names.get(p.name, []) if p.available else []:
            port = getattr(settings, field, 0)
            if port and _port_busy(port):
                busy.append(f"{field} {port} ({p.name}): set CMR_{field.upper()}")
    return busy


def _health_table(parts: list[Any], states: dict[str, Any]) -> tuple[Table, bool]:
    t = Table(show_header=True, header_style="bold")
    for col in ("part", "process", "health", "where / why"):
        t.add_column(col)
    all_ok = True
    for p in parts:
        if not p.available:
            t.add_row(p.name, "-", "[dim]unavailable[/]", p.reason)
            continue
        st = states.get(p.name)
        proc = st.state if st else "-"
        if p.oneshot:
            ok = st is not None and (st.state == "RUNNING" or (st.state == "EXITED" and st.exitstatus == 0))
            health = ("[green]done[/]" if st and st.state == "EXITED" else "[green]running[/]") if ok else "[red]failed[/]"
            if st is None:
                health, ok = "[dim]not started[/]", True
            t.add_row(p.name, proc, health, p.title)
        elif p.health is not None:
            h = p.health()
            ok = h.ok
            t.add_row(p.name, proc, "[green]SERVING[/]" if ok else "[red]DOWN[/]", h.detail)
        else:
            ok = st is not None and st.state == "RUNNING"
            t.add_row(p.name, proc, "[green]running[/]" if ok else "[red]DOWN[/]", p.title)
        all_ok &= ok
    return t, all_ok


def _index_line(settings: Settings) -> str:
    import grpc

    from search_svc.client import SearchClient

    try:
        with SearchClient(settings.search_url, settings=settings, timeout_s=3) as c:
            st = c.stats()
        vendors = ", ".join(f"{k} {v}" for k, v in sorted(st.by_vendor.items()))
        tails = "; ".join(f"{i.collection}: {i.unindexed} un-indexed{', building' if i.building else ''}"
                          for i in st.index)
        return (f"{st.exams} exams, {st.reports} reports ({st.backend}{'; ' + vendors if vendors else ''})"
                + (f"; live index: {tails}" if tails else ""))
    except grpc.RpcError as exc:
        return f"unknown (search service: {exc.code().name})"


def register(app: typer.Typer) -> None:
    @app.command("up")
    def up(data_dir: Optional[Path] = typer.Option(None, help="Where the stack keeps everything (default CMR_DATA_DIR)."),
           demo_studies: Optional[int] = typer.Option(None, help="Demo studies to generate and index "
                                                      "(default CMR_UP_DEMO_STUDIES; 0: none)."),
           ui_port: Optional[int] = typer.Option(None, help="UI port (default CMR_UI_PORT)."),
           seed_via: Optional[str] = typer.Option(None, help="auto, kafka or direct (default CMR_UP_SEED_VIA).")) -> None:
        """Start the whole platform on this machine: broker, Triton + encoder, search, generator, ingest worker and
        UI under supervisord, and index the demo studies in the background. Ctrl-C or SIGTERM stops it all."""
        from cmr.layout import StackLayout
        from orchestration.stack.parts import stack_parts
        from orchestration.stack.supervise import Supervisor, running_pid

        t0 = time.monotonic()
        try:
            settings = resolve_settings({"data_dir": data_dir, "up_demo_studies": demo_studies, "ui_port": ui_port,
                                         "up_seed_via": seed_via})
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from exc
        layout = StackLayout.from_settings(settings)
        pid = running_pid(layout)
        if pid:
            console.print(f"[red]error:[/] a stack is already running from {layout.data_dir} (supervisord pid {pid}); "
                          "stop it with Ctrl-C in its terminal or `cmr down`")
            raise typer.Exit(1)
        parts = stack_parts(settings, layout)
        for p in parts:
            if not p.available:
                console.print(f"[yellow]unavailable:[/] {p.name} - {p.reason}; the stack starts without it")
        busy = _busy_ports(settings, parts)
        if busy:
            console.print("[red]error:[/] ports in use: " + "; ".join(busy))
            raise typer.Exit(1)
        layout.make()
        (layout.run_dir / "stack.json").write_text(settings.model_dump_json())

        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        console.print(f"starting the stack in {layout.data_dir} (logs: {layout.logs_dir})")
        try:
            supervisor = Supervisor(layout, stack_env(settings)).start(parts)
        except RuntimeError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from exc
        try:
            _watch(settings, parts, supervisor, stop, t0)
        finally:
            console.print("stopping every part (reverse start order)...")
            code = supervisor.stop()
            console.print(f"stopped ({time.monotonic() - t0:.0f} s after start; supervisord exit {code})")

    @app.command("status")
    def status(data_dir: Optional[Path] = typer.Option(None, help="The stack's data folder (default CMR_DATA_DIR).")) -> None:
        """Each part of the stack: process state, gRPC health, the index count, the UI URL."""
        from cmr.layout import StackLayout
        from orchestration.stack.parts import stack_parts, ui_url
        from orchestration.stack.supervise import SupervisorClient

        settings = _saved_settings(data_dir)
        layout = StackLayout.from_settings(settings)
        client = SupervisorClient(layout)
        states = client.states() if client.alive() else {}
        parts = stack_parts(settings, layout)
        table, ok = _health_table(parts, states)
        from orchestration.cli.tables import print_table

        print_table(table, out)
        out.print(f"index: {_index_line(settings)}")
        out.print(f"UI: {ui_url(settings)}")
        if not states:
            out.print(f"[dim](no supervisord for {layout.data_dir}: health only)[/]")
        raise typer.Exit(0 if ok else 1)

    @app.command("down")
    def down(data_dir: Optional[Path] = typer.Option(None, help="The stack's data folder (default CMR_DATA_DIR).")) -> None:
        """Stop a stack started by `cmr up` from another terminal."""
        from cmr.layout import StackLayout
        from orchestration.stack.supervise import SupervisorClient

        layout = StackLayout.from_settings(_saved_settings(data_dir))
        client = SupervisorClient(layout)
        if not client.alive():
            console.print(f"no stack running from {layout.data_dir}")
            raise typer.Exit(0)
        client.shutdown()
        console.print("shutdown requested; `cmr up` exits when every part has stopped")

    @app.command("up-seed", hidden=True)
    def up_seed(via: str = typer.Option("direct", help="kafka or direct")) -> None:
        """(stack entry) Generate and index the demo studies."""
        import logging

        from cmr.config import get_settings
        from cmr.priority import lower_priority
        from orchestration.stack.seed import seed

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        lower_priority(10)  # the services and the UI come first on a small machine
        seed(get_settings(), via, say=lambda m: print(m, flush=True))

    @app.command("up-broker", hidden=True)
    def up_broker() -> None:
        """(stack entry) The Tansu Kafka broker in the foreground."""
        from cmr.config import get_settings
        from cmr.layout import StackLayout
        from ingest_svc.broker import TansuBroker

        s = get_settings()
        broker = TansuBroker(port=s.up_broker_port, data_dir=StackLayout.from_settings(s).data_dir / "broker")
        broker.start()
        print(f"broker on {broker.bootstrap}", flush=True)
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        try:
            # Tansu dying alone must end this process too, so that supervisord sees the part down and restarts it
            while not done.wait(1.0):
                if not broker.running:
                    print(f"the broker exited by itself; see {broker.log_path}", flush=True)
                    raise typer.Exit(1)
        finally:
            broker.stop()


def _watch(settings: Settings, parts: list[Any], supervisor: Any, stop: threading.Event, t0: float) -> None:
    """Report each part as it becomes healthy (and the UI URL), then watch for failures until stopped."""
    from orchestration.stack.parts import ui_url

    pending = {p.name: p for p in parts if p.available and not p.oneshot}
    reported: dict[str, str] = {}
    announced = False
    deadline = t0 + settings.up_start_timeout_s
    while not stop.wait(1.0):
        if not supervisor.running():
            if supervisor.proc is not None and supervisor.proc.returncode == 0:
                console.print("the stack was shut down (`cmr down`)")
                return
            console.print("[red]supervisord exited unexpectedly[/]; see " + str(supervisor.layout.logs_dir))
            raise typer.Exit(1)
        try:
            states = supervisor.client.states()
        except Exception:  # noqa: BLE001 - supervisord may be between states; try again next second
            continue
        for name, p in list(pending.items()):
            st = states.get(name)
            ok = p.health().ok if p.health is not None else (st is not None and st.state == "RUNNING")
            if ok:
                console.print(f"[green]up[/] {name:<9} {p.title} {p.url} ({time.monotonic() - t0:.0f} s)")
                del pending[name]
                if name == "ui":
                    out.print(f"UI: [bold]{ui_url(settings)}[/]", highlight=False)
                    if settings.up_secure:
                        sec = Path(settings.data_dir) / "security"
                        out.print(f"log in as clinician, researcher or admin: passwords in {sec / 'passwords.txt'}; "
                                  f"the browser must trust {sec / 'ca.pem'} (a development CA)", highlight=False)
        for name, st in states.items():
            if st.state != reported.get(name) and st.state in ("FATAL", "BACKOFF", "EXITED"):
                log = supervisor.layout.log_of(name)
                if st.state == "EXITED" and st.exitstatus == 0:
                    console.print(f"[green]done[/] {name} ({time.monotonic() - t0:.0f} s)")
                else:
                    console.print(f"[red]{st.state}[/] {name}: {st.description}; log: {log}")
            reported[name] = st.state
        if not pending and not announced:
            announced = True
            console.print(f"every part is up ({time.monotonic() - t0:.0f} s); `cmr status` for details, "
                          "Ctrl-C to stop")
        if pending and time.monotonic() > deadline and not announced:
            announced = True
            console.print(f"[yellow]not healthy after {settings.up_start_timeout_s:.0f} s:[/] {', '.join(pending)} "
                          f"(logs in {supervisor.layout.logs_dir})")
