"""The sidebar's part status on `cmr up` (CMR_UI_STACK_STATUS): besides the three services, the broker and the
ingest worker, checked as `cmr status` checks them (a TCP connect, the worker's /ready), so a killed part shows
down and then back."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from cmr.config import Settings
from cmr.rpc.ports import free_ports
from ui.services import Services


class Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200 if self.path == "/ready" else 404)
        self.end_headers()
        self.wfile.write(b"consuming")

    def log_message(self, *args: object) -> None:
        pass


def _settings(broker: int, metrics: int, stack: bool = True) -> Settings:
    enc, search, gen = free_ports(3)  # nothing listens: those three are down
    return Settings(encoder_url=f"127.0.0.1:{enc}", search_url=f"127.0.0.1:{search}",
                    generator_url=f"127.0.0.1:{gen}", kafka_bootstrap=f"127.0.0.1:{broker}",
                    ingest_metrics_port=metrics, ui_stack_status=stack, tls=False)


def test_sidebar_shows_the_broker_and_the_ingest_worker_down_and_back() -> None:
    broker, metrics = free_ports(2)
    s = _settings(broker, metrics)
    down = Services(s).health()
    assert down == {"encoder": False, "search": False, "generator": False, "broker": False, "ingest worker": False}
    listener = socket.create_server(("127.0.0.1", broker))
    http = HTTPServer(("127.0.0.1", metrics), Ready)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        back = Services(s).health()
        assert back["broker"] and back["ingest worker"] and not back["search"]
    finally:
        http.shutdown()
        http.server_close()
        listener.close()


def test_without_the_stack_the_sidebar_shows_the_three_services() -> None:
    broker, metrics = free_ports(2)
    assert set(Services(_settings(broker, metrics, stack=False)).health()) == {"encoder", "search", "generator"}
