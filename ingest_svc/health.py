"""The ingest worker's readiness, and the HTTP endpoint that serves it beside its Prometheus metrics.

    GET /ready    200 "consuming ..." once the worker consumes; 503 with what it waits for (the encoder, the
                  search service, Kafka) while it starts or waits
    GET /metrics  (any other path) the Prometheus metrics, as prometheus_client serves them

Why a path of its own: the metrics page answers 200 from the first second, so a probe of it (`cmr up`,
a container's readiness probe) cannot tell a worker waiting for a broker that is down from one that works.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer


class Readiness:
    """Thread-safe (ready, what it is doing or waiting for), mirrored in the gauge cmr_ingest_ready (1/0)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._ready = False
        self._detail = "starting"
        self._gauge = Gauge("cmr_ingest_ready", "1 while the worker consumes; 0 while it starts or waits for a "
                            "service or the broker", registry=registry)

    def waiting(self, detail: str) -> None:
        with self._lock:
            self._ready, self._detail = False, detail
            self._gauge.set(0)

    def consuming(self, detail: str) -> None:
        with self._lock:
            self._ready, self._detail = True, detail
            self._gauge.set(1)

    def state(self) -> tuple[bool, str]:
        with self._lock:
            return self._ready, self._detail


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Probes every few seconds must not fill the worker's log."""


def health_app(registry: CollectorRegistry, state: Callable[[], tuple[bool, str]]) -> Callable[..., Iterable[bytes]]:
    """WSGI app: /ready from `state()`, everything else the metrics."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") == "/ready":
            ready, detail = state()
            start_response("200 OK" if ready else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [detail.encode() + b"\n"]
        return metrics(environ, start_response)

    return app


def serve_health(port: int, addr: str, registry: CollectorRegistry,
                 state: Callable[[], tuple[bool, str]]) -> ThreadingWSGIServer:
    """Serve /ready and the metrics on addr:port from a daemon thread; the server (its port: server_port)."""
    server = make_server(addr, port, health_app(registry, state), ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="ingest-health", daemon=True).start()
    return server


__all__ = ["Readiness", "health_app", "serve_health"]
