"""A service's security settings checked before it starts anything: the encoder starts Triton and loads the
model (seconds) before its gRPC server would find a missing token key or certificate."""

from __future__ import annotations

from cmr.config import Settings
from cmr.security.tls import server_credentials
from cmr.security.tokens import TokenVerifier


def check_server_security(settings: Settings) -> None:
    """The checks a GrpcServer makes when it is built (token verifier, TLS credentials); raises ConfigError
    naming the CMR_* variable that is missing or unreadable."""
    if settings.auth_mode == "jwt":
        TokenVerifier.from_settings(settings)
    if settings.tls:
        server_credentials(settings)
