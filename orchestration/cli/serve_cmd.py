"""`cmr serve encoder|...`: run a service in the foreground until Ctrl-C or SIGTERM, then stop it cleanly."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from orchestration.cli.lazy import get_settings

if TYPE_CHECKING:
    from cmr.config import Settings

console = Console(stderr=True)


def _until_signalled(settings: Settings) -> None:
    if settings.gc_freeze:  # the service is up: what start-up made lives as long as the process (cmr/rpc/heap.py)
        from cmr.rpc.heap import freeze_startup_heap

        freeze_startup_heap()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def _server_settings() -> Settings:
    """The settings, their security part checked before anything starts (Triton takes seconds): a missing key
    or certificate is one line naming the variable (orchestration.cli.errors), not a failure after start-up."""
    from cmr.security.preflight import check_server_security

    settings = get_settings()
    check_server_security(settings)
    return settings


def register(app: typer.Typer) -> None:
    serve = typer.Typer(help="Run a service (foreground; Ctrl-C or SIGTERM stops it cleanly).",
                        no_args_is_help=True)
    app.add_typer(serve, name="serve")

    @serve.command("encoder")
    def encoder(port: Optional[int] = typer.Option(None, help="gRPC port (default CMR_ENCODER_PORT)"),
                triton_url: Optional[str] = typer.Option(
                    None, help="use this external Triton (host:port) instead of starting one")) -> None:
        """Triton with the CMR-CLIP image and text models, and the gRPC EncoderService in front of it."""
        settings = _server_settings()  # before the service's imports: a bad setting fails at once
        from encoder_svc.server import EncoderServer

        if triton_url:
            settings = settings.model_copy(update={"triton_url": triton_url})
        with console.status("starting Triton and the encoder service..."):
            try:
                server = EncoderServer(settings, port=port).start()
            except (OSError, RuntimeError) as exc:
                console.print(f"[red]error:[/] could not start the encoder: {exc}")
                raise typer.Exit(1) from exc
        c = server.triton_config
        console.print(f"EncoderService ready on [bold]{server.address}[/] (Triton {settings.triton_url or c.url}, "
                      f"dynamic batching {'on' if c.dynamic_batching else 'off'}, max batch {c.max_batch_size})")
        try:
            _until_signalled(settings)
        finally:
            console.print("stopping the encoder service and Triton...")
            server.stop()
        console.print("stopped")

    @serve.command("search")
    def search(port: Optional[int] = typer.Option(None, help="gRPC port (default CMR_SEARCH_PORT)"),
               encoder_url: Optional[str] = typer.Option(None, help="encoder service (default CMR_ENCODER_URL)")) -> None:
        """The exam index on Qdrant (Edge on disk by default, CMR_QDRANT_URL for a server) behind SearchService."""
        settings = _server_settings()  # before the service's imports: a bad setting fails at once
        from search_svc.server import SearchServer

        try:
            server = SearchServer(settings, port=port, encoder_url=encoder_url).start()
        except Exception as exc:  # noqa: BLE001 - a start failure is one clear line, not a traceback
            console.print(f"[red]error:[/] could not start the search service: {exc}")
            raise typer.Exit(1) from exc
        console.print(f"SearchService ready on [bold]{server.address}[/] (store {server.store.backend}, "
                      f"encoder {encoder_url or settings.encoder_url})")
        try:
            _until_signalled(settings)
        finally:
            console.print("stopping the search service...")
            server.stop()
        console.print("stopped")

    @serve.command("generator")
    def generator(port: Optional[int] = typer.Option(None, help="gRPC port (default CMR_GENERATOR_PORT)"),
                  search_url: Optional[str] = typer.Option(None, help="search service (default CMR_SEARCH_URL)")) -> None:
        """Report drafting (retrieval, consensus, CMR-TARGET) behind GeneratorService."""
        settings = _server_settings()  # before the service's imports: a bad setting fails at once
        from generator_svc.server import GeneratorServer

        with console.status("loading CMR-TARGET and starting the generator service..."):
            try:
                server = GeneratorServer(settings, port=port, search_url=search_url).start()
            except Exception as exc:  # noqa: BLE001 - a start failure is one clear line, not a traceback
                console.print(f"[red]error:[/] could not start the generator service: {exc}")
                raise typer.Exit(1) from exc
        target = server.drafter.version if server.drafter else "unavailable (retrieval modes only)"
        console.print(f"GeneratorService ready on [bold]{server.address}[/] (CMR-TARGET {target}, "
                      f"search {search_url or settings.search_url})")
        try:
            _until_signalled(settings)
        finally:
            console.print("stopping the generator service...")
            server.stop()
        console.print("stopped")

    @serve.command("ingest")
    def ingest(bootstrap: Optional[str] = typer.Option(None, help="Kafka bootstrap servers (default CMR_KAFKA_BOOTSTRAP)"),
               metrics_port: Optional[int] = typer.Option(None, help="Prometheus /metrics port (default "
                                                          "CMR_INGEST_METRICS_PORT; 0 = none)")) -> None:
        """The ingest worker: consumes new exams from Kafka, de-identifies, encodes, indexes, publishes events.
        Start several for more throughput (one consumer group; up to CMR_KAFKA_PARTITIONS)."""
        import logging

        from ingest_svc.worker import serve as serve_worker

        settings = get_settings()
        if bootstrap:
            settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
        logging.getLogger("ingest_svc").setLevel(logging.INFO)
        console.print(f"ingest worker: Kafka {settings.kafka_bootstrap}, topic {settings.kafka_topic_new}, group "
                      f"{settings.kafka_group_id}, encoder {settings.encoder_url}, search {settings.search_url}")
        code = serve_worker(settings, metrics_port=metrics_port)
        console.print("stopped")
        raise typer.Exit(code)
