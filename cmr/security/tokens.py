"""Signed JWT bearer tokens: who is calling and in which roles.

Production verifies an OIDC issuer's tokens with its published keys (JWKS); the one-machine stack signs its own
with a local EC key (`cmr security init-dev`). Only asymmetric algorithms are accepted (a verifying service never
holds a key that could mint tokens), and exp, iat, iss, aud and sub are required.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cmr.config import ConfigError, Settings
from cmr.security.roles import Role, parse_roles

_ASYMMETRIC = {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}


class AuthError(Exception):
    """A token that does not identify anyone: missing, malformed, forged, expired, or for someone else."""


@dataclass(frozen=True)
class Identity:
    subject: str
    roles: frozenset[Role]
    token: str
    expires_at: float
    issuer: str = ""

    @property
    def role_names(self) -> list[str]:
        return sorted(r.value for r in self.roles)


def new_signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_key_pair(key: ec.EllipticCurvePrivateKey, private_path: Path, public_path: Path) -> None:
    private_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    private_path.chmod(0o600)
    public_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))


class TokenIssuer:
    """Mints tokens with a local private key (the one-machine stack's login, `cmr auth token`, tests)."""

    def __init__(self, private_key_pem: bytes, *, issuer: str, audience: str, algorithm: str = "ES256") -> None:
        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        self.issuer, self.audience, self.algorithm = issuer, audience, algorithm

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenIssuer:
        if settings.auth_signing_key is None:
            raise AuthError("no signing key: set CMR_AUTH_SIGNING_KEY (made by `cmr security init-dev`)")
        return cls(Path(settings.auth_signing_key).read_bytes(), issuer=settings.auth_issuer,
                   audience=settings.auth_audience)

    def mint(self, subject: str, roles: Iterable[Role | str], ttl_s: float, *, now: float | None = None,
             extra: dict[str, Any] | None = None) -> str:
        if not subject.strip():
            raise ValueError("a token needs a subject")
        issued = int(now if now is not None else time.time())
        claims: dict[str, Any] = {
            "sub": subject, "roles": sorted(Role(r).value for r in roles), "iss": self.issuer, "aud": self.audience,
            "iat": issued, "nbf": issued, "exp": issued + int(ttl_s), "jti": uuid.uuid4().hex, **(extra or {}),
        }
        return jwt.encode(claims, self._key, algorithm=self.algorithm)


class TokenVerifier:
    """Checks signature, expiry, issuer and audience; returns the Identity or raises AuthError with the reason."""

    def __init__(self, *, issuer: str, audience: str, algorithms: Iterable[str], public_key_pem: bytes | None = None,
                 jwks_url: str | None = None, roles_claim: str = "roles", leeway_s: int = 30) -> None:
        self.algorithms = [a for a in algorithms if a in _ASYMMETRIC]
        if not self.algorithms:
            raise ValueError(f"no asymmetric algorithm among {list(algorithms)}")
        if (public_key_pem is None) == (jwks_url is None):
            raise ValueError("give exactly one of a public key and a JWKS URL")
        self._key = serialization.load_pem_public_key(public_key_pem) if public_key_pem else None
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=600, timeout=5) if jwks_url else None
        self.issuer, self.audience, self.roles_claim, self.leeway_s = issuer, audience, roles_claim, leeway_s

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        if settings.auth_public_key is None and settings.auth_jwks_url is None:
            raise ConfigError("CMR_AUTH_MODE=jwt needs CMR_AUTH_PUBLIC_KEY (local keys: `cmr security init-dev`) or "
                             "CMR_AUTH_JWKS_URL (an OIDC issuer); CMR_AUTH_MODE=off only on a closed test machine")
        pem = Path(settings.auth_public_key).read_bytes() if settings.auth_public_key else None
        return cls(issuer=settings.auth_issuer, audience=settings.auth_audience, algorithms=settings.auth_algorithms,
                   public_key_pem=pem, jwks_url=settings.auth_jwks_url, roles_claim=settings.auth_roles_claim,
                   leeway_s=settings.auth_leeway_s)

    def verify(self, token: str) -> Identity:
        if not token or len(token) > 16_384:
            raise AuthError("missing or oversized bearer token")
        try:
            key: Any = self._key if self._key is not None else self._jwks.get_signing_key_from_jwt(token).key  # type: ignore[union-attr]
            claims = jwt.decode(token, key, algorithms=self.algorithms, audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway_s, options={"require": ["exp", "iat", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"token is not for audience {self.audience!r}") from None
        except jwt.InvalidIssuerError:
            raise AuthError(f"token not issued by {self.issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise AuthError("token signature does not verify") from None
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"no issuer key for this token ({exc})") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise AuthError("token has no subject")
        return Identity(subject=subject, roles=parse_roles(_claim(claims, self.roles_claim)), token=token,
                        expires_at=float(claims["exp"]), issuer=str(claims.get("iss", "")))


def _claim(claims: dict[str, Any], dotted: str) -> object:
    value: object = claims
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
