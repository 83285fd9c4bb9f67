"""gRPC transport security from Settings: server and channel credentials, TLS or mutual TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from cmr.config import ConfigError, Settings


class TLSConfigError(ConfigError):
    pass


def _read(path: Path | None, what: str) -> bytes:
    if path is None:
        raise TLSConfigError(f"CMR_TLS=true needs {what} (make local ones with `cmr security init-dev`)")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"cannot read {what} {path}: {exc.strerror}") from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials:
    key = _read(settings.tls_key, "CMR_TLS_KEY")
    cert = _read(settings.tls_cert, "CMR_TLS_CERT")
    if settings.tls_mutual:
        return grpc.ssl_server_credentials([(key, cert)], root_certificates=_read(settings.tls_ca, "CMR_TLS_CA"),
                                           require_client_auth=True)
    return grpc.ssl_server_credentials([(key, cert)])


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials:
    ca = _read(settings.tls_ca, "CMR_TLS_CA")
    if settings.tls_mutual:
        return grpc.ssl_channel_credentials(root_certificates=ca, private_key=_read(settings.tls_key, "CMR_TLS_KEY"),
                                            certificate_chain=_read(settings.tls_cert, "CMR_TLS_CERT"))
    return grpc.ssl_channel_credentials(root_certificates=ca)


def channel_options(settings: Settings) -> list[tuple[str, Any]]:
    return [("grpc.ssl_target_name_override", settings.tls_server_name)] if settings.tls and settings.tls_server_name \
        else []
