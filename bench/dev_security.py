"""The security of the services a benchmark starts: as deployed (TLS with a development CA, JWT bearer tokens,
made by `cmr security init-dev`'s code in the run's temporary folder) or off (plaintext, CMR_AUTH_MODE=off: a
stated development measurement). The services read it from their environment (`env`), the benchmark's own
clients from `client_settings` and friends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmr.config import Settings

TOKEN_TTL_S = 4 * 3600


@dataclass
class Security:
    """dev: cmr.security.devca.DevSecurity when TLS + tokens are on, None when off."""

    dev: Any | None = None

    @classmethod
    def create(cls, on: bool, folder: Path) -> Security:
        if not on:
            return cls(None)
        from cmr.security.devca import init_dev  # imported only when used: the off mode needs none of it

        return cls(init_dev(folder))

    @property
    def on(self) -> bool:
        return self.dev is not None

    def describe(self) -> str:
        return ("TLS on (dev CA, server-authenticated), JWT bearer tokens on (ES256, per-identity rate limits)"
                if self.on else "TLS off, auth off (CMR_AUTH_MODE=off): a development measurement")

    def env(self, part: str) -> dict[str, str]:
        """Environment of a service process: its certificate, key, trust root and own token file."""
        return self.dev.env(part) if self.dev is not None else {"CMR_TLS": "false", "CMR_AUTH_MODE": "off"}

    def client_settings(self, base: Settings, *, token: str | None = None, token_file: Path | None = None) -> Settings:
        if self.dev is None:
            return base.model_copy(update={"tls": False, "auth_mode": "off", "auth_token": None,
                                           "auth_token_file": None})
        d = self.dev
        return base.model_copy(update={"tls": True, "tls_ca": d.ca, "tls_cert": d.cert("client"),
                                       "tls_key": d.key("client"), "tls_mutual": False, "auth_mode": "jwt",
                                       "auth_token": token, "auth_token_file": token_file})

    def service_settings(self, base: Settings, part: str = "ingest") -> Settings:
        """The benchmark's own set-up calls (upserts, Stats) under a service identity (ingest: not rate-limited)."""
        return self.client_settings(base, token_file=self.dev.token_file(part) if self.dev is not None else None)

    def user_settings(self, base: Settings, n: int) -> list[Settings]:
        """n simulated clinicians, each with its own signed token (subject user-<i>, role clinician)."""
        if self.dev is None:
            return [self.client_settings(base) for _ in range(n)]
        from cmr.security.devca import AUDIENCE, ISSUER
        from cmr.security.roles import Role
        from cmr.security.tokens import TokenIssuer

        issuer = TokenIssuer(self.dev.signing_key.read_bytes(), issuer=ISSUER, audience=AUDIENCE)
        return [self.client_settings(base, token=issuer.mint(f"user-{i}", [Role.CLINICIAN], TOKEN_TTL_S))
                for i in range(n)]
