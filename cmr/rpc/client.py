"""Client channels to CMR services: TLS (mutual when configured), a bearer token on every call, message-size
limits matching the servers, gRPC's own retry policy for transient UNAVAILABLE (with backoff), and a health wait
for start-up ordering."""

from __future__ import annotations

import json
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cmr.config import Settings, get_settings
from cmr.security.client import BearerTokenInterceptor, TokenSource
from cmr.security.tls import channel_credentials, channel_options


RECONNECT_MAX_MS = 2000


def _service_config() -> str:
    # Retries only for UNAVAILABLE (nothing reached the handler), so a non-idempotent call is never repeated.
    return json.dumps({
        "methodConfig": [{
            "name": [{"service": s} for s in ("cmr.v1.EncoderService", "cmr.v1.SearchService",
                                              "cmr.v1.GeneratorService")],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.2s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }]
    })


def open_channel(url: str, settings: Settings | None = None) -> grpc.Channel:
    settings = settings or get_settings()
    options = [
        ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
        ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
        ("grpc.service_config", _service_config()),
        ("grpc.enable_retries", 1),
        # gRPC's reconnect backoff grows to 120 s: after a service restart a long-lived client (the UI, the
        # worker) failed for 6-20 s more than needed (measured: 6-8 s after 18-40 s outages). Capped, it tries
        # again within RECONNECT_MAX_MS of the service being back.
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", RECONNECT_MAX_MS),
        *channel_options(settings),
    ]
    channel = (grpc.secure_channel(url, channel_credentials(settings), options=options) if settings.tls
               else grpc.insecure_channel(url, options=options))
    return grpc.intercept_channel(channel, BearerTokenInterceptor(TokenSource.from_settings(settings)))


def wait_for_health(channel: grpc.Channel, service: str = "", timeout_s: float = 60.0) -> None:
    """Block until the server reports SERVING for `service` ("" = the whole server)."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2.0)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        except grpc.RpcError as exc:
            last = f"{exc.code().name}: {exc.details()}"
        time.sleep(0.2)
    raise TimeoutError(f"service {service or '(server)'} not SERVING after {timeout_s:.0f} s (last: {last})")
