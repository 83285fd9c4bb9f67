"""`cmr serve encoder|...`: run a service in the foreground until Ctrl-C or SIGTERM, then stop it cleanly."""

from __future__ import annotations

import signal
import threading
from typing import Optional

import typer
from rich.console import Console

from cmr.config import get_settings

console = Console(stderr=True)


def _until_signalled() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def register(app: typer.Typer) -> None:
    serve = typer.Typer(help="Run a service (foreground; Ctrl-C or SIGTERM stops it cleanly).",
                        no_args_is_help=True)
    app.add_typer(serve, name="serve")

    @serve.command("encoder")
    def encoder(port: Optional[int] = typer.Option(None, help="gRPC port (default CMR_ENCODER_PORT)"),
                triton_url: Optional[str] = typer.Option(
                    None, help="use this external Triton (host:port) instead of starting one")) -> None:
        """Triton with the CMR-CLIP image and text models, and the gRPC EncoderService in front of it."""
        from encoder_svc.server import EncoderServer

        settings = get_settings()
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
            _until_signalled()
        finally:
            console.print("stopping the encoder service and Triton...")
            server.stop()
        console.print("stopped")
