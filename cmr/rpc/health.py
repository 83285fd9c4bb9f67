"""Health of the platform's parts as a person (`cmr status`, the UI) or a container probe sees it: gRPC
health checking (grpc.health.v1) for the services (over TLS when the settings say so; health needs no token),
HTTP(S) for the UI, a TCP connect for the broker."""

from __future__ import annotations

import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cmr.config import Settings


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str


def grpc_health(url: str, service: str = "", timeout_s: float = 2.0, *, settings: Settings | None = None) -> Health:
    from cmr.rpc.client import open_channel

    channel = open_channel(url, settings) if settings is not None and settings.tls else grpc.insecure_channel(url)
    with channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                              timeout=timeout_s)
        except grpc.RpcError as exc:
            code = exc.code()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                return Health(False, f"not reachable at {url}")
            return Health(False, f"{code.name}: {exc.details()}")
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return Health(reply.status == health_pb2.HealthCheckResponse.SERVING, f"{name} on {url}")


def http_health(url: str, timeout_s: float = 2.0, *, cafile: str | None = None) -> Health:
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as r:  # noqa: S310 - our own URL
            body = r.read(64).decode(errors="replace").strip()
            short = body if len(body) <= 16 and "\n" not in body else ""  # "ok", not a metrics page
            return Health(r.status == 200, f"HTTP {r.status} {short}".strip())
    except urllib.error.HTTPError as exc:  # it answers, but not OK: its body says why (the worker's /ready)
        return Health(False, f"HTTP {exc.code} {exc.read(200).decode(errors='replace').strip()}".strip())
    except (urllib.error.URLError, OSError) as exc:
        return Health(False, f"not reachable ({getattr(exc, 'reason', exc)})")


def tcp_health(host: str, port: int, timeout_s: float = 2.0) -> Health:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return Health(True, f"listening on {host}:{port}")
    except OSError:
        return Health(False, f"not listening on {host}:{port}")
