"""A gRPC server with what every CMR service needs: TLS or mutual TLS, the security interceptor (bearer-token
identity, roles, per-identity rate limits, audit), standard health checking (grpc.health.v1) per service, server
reflection (grpcurl works), message-size limits, a bounded handler pool, and a graceful stop that first reports
NOT_SERVING so load balancers drain it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from cmr.config import Settings, get_settings
from cmr.security.interceptor import SecurityInterceptor
from cmr.security.tls import server_credentials

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceBinding:
    """One servicer: its add_*_to_server function, full service name (for health and reflection) and object."""

    add_to_server: Callable[[Any, grpc.Server], None]
    service_name: str  # e.g. "cmr.v1.EncoderService"
    servicer: Any


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
        ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
        ("grpc.so_reuseport", 0),  # a second server on a busy port must fail, not share it
    ]


class GrpcServer:
    """Start, wait, stop. `port=0` picks a free port (tests); the bound port is `self.port`."""

    def __init__(self, bindings: Sequence[ServiceBinding], *, host: str | None = None, port: int = 0,
                 settings: Settings | None = None, service: str | None = None) -> None:
        self.settings = settings or get_settings()
        # "cmr.v1.SearchService" -> "search": names the audit file
        service = service or bindings[0].service_name.rsplit(".", 1)[-1].removesuffix("Service").lower()
        self.security = SecurityInterceptor(self.settings, service)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=self.settings.grpc_workers,
                                                              thread_name_prefix="grpc"),
                                   options=server_options(self.settings),
                                   interceptors=[self.security],
                                   maximum_concurrent_rpcs=self.settings.grpc_workers * 4)
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        names = [b.service_name for b in bindings]
        for b in bindings:
            b.add_to_server(b.servicer, self._server)
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server)
        self._names = names
        address = f"{host or self.settings.grpc_host}:{port}"
        if self.settings.tls:
            self.port = self._server.add_secure_port(address, server_credentials(self.settings))
        else:
            self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot bind {address}: port in use or address not available")
        self.address = f"{host or self.settings.grpc_host}:{self.port}"
        self._stopped = threading.Event()

    def start(self) -> GrpcServer:
        self._server.start()
        self.set_serving(True)
        log.info("gRPC %s listening on %s", ", ".join(self._names), self.address)
        return self

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self._names):
            self.health.set(name, status)

    def stop(self, grace_s: float = 5.0) -> None:
        """Report NOT_SERVING, refuse new calls, let in-flight calls finish for up to grace_s."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.set_serving(False)
        self._server.stop(grace_s).wait()
        self.security.audit.close()
        log.info("gRPC server on %s stopped", self.address)

    def wait(self, timeout: float | None = None) -> bool:
        return self._server.wait_for_termination(timeout)

    def __enter__(self) -> GrpcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceHost:
    """What a service's composition root shares: the GrpcServer it starts, its address, `wait` and `with`.
    Subclasses implement `start` (returning self) and an idempotent `stop`."""

    _grpc: GrpcServer | None = None

    @property
    def port(self) -> int:
        if self._grpc is None:
            raise RuntimeError("server not started")
        return self._grpc.port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServiceHost:
        raise NotImplementedError

    def stop(self, grace_s: float = 5.0) -> None:
        raise NotImplementedError

    def wait(self) -> None:
        if self._grpc is not None:
            self._grpc.wait()

    def __enter__(self) -> ServiceHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

