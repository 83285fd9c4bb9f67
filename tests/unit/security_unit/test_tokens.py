"""Tokens: a valid one names its subject and roles; expired, forged, re-targeted and algorithm-confused ones are
refused with the reason."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from cmr.config import Settings
from cmr.security.roles import Role
from cmr.security.tokens import AuthError, TokenIssuer, TokenVerifier, new_signing_key


def _pems() -> tuple[bytes, bytes]:
    key = new_signing_key()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


PRIVATE, PUBLIC = _pems()
ISSUER = TokenIssuer(PRIVATE, issuer="cmr-local", audience="cmr")
VERIFIER = TokenVerifier(issuer="cmr-local", audience="cmr", algorithms=["ES256"], public_key_pem=PUBLIC, leeway_s=0)


def test_valid_token_names_subject_and_roles() -> None:
    identity = VERIFIER.verify(ISSUER.mint("dr-who", [Role.CLINICIAN], 60))
    assert identity.subject == "dr-who"
    assert identity.roles == {Role.CLINICIAN}
    assert identity.expires_at > time.time()


def test_unknown_roles_are_ignored_not_trusted() -> None:
    token = jwt.encode({"sub": "x", "roles": ["superuser", "admin"], "iss": "cmr-local", "aud": "cmr",
                        "iat": int(time.time()), "exp": int(time.time()) + 60},
                       serialization.load_pem_private_key(PRIVATE, None), algorithm="ES256")
    assert VERIFIER.verify(token).roles == {Role.ADMIN}


def test_expired_token_refused() -> None:
    token = ISSUER.mint("dr-who", [Role.CLINICIAN], 60, now=time.time() - 120)
    with pytest.raises(AuthError, match="expired"):
        VERIFIER.verify(token)


def test_token_signed_by_another_key_refused() -> None:
    other = TokenIssuer(_pems()[0], issuer="cmr-local", audience="cmr")
    with pytest.raises(AuthError, match="signature"):
        VERIFIER.verify(other.mint("mallory", [Role.ADMIN], 60))


def test_tampered_payload_refused() -> None:
    header, payload, signature = ISSUER.mint("eve", [Role.RESEARCHER], 60).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(AuthError):
        VERIFIER.verify(f"{header}.{forged}.{signature}")


@pytest.mark.parametrize("issuer,audience,reason", [("someone-else", "cmr", "issued"), ("cmr-local", "other", "audience")])
def test_wrong_issuer_or_audience_refused(issuer: str, audience: str, reason: str) -> None:
    token = TokenIssuer(PRIVATE, issuer=issuer, audience=audience).mint("dr-who", [Role.CLINICIAN], 60)
    with pytest.raises(AuthError, match=reason):
        VERIFIER.verify(token)


def test_unsigned_and_hmac_confusion_tokens_refused() -> None:
    claims = {"sub": "mallory", "roles": ["admin"], "iss": "cmr-local", "aud": "cmr", "iat": int(time.time()),
              "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, key=None, algorithm="none")
    # the classic attack: HMAC-sign with the (public) verification key as the secret
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    import hashlib
    import hmac
    sig = base64.urlsafe_b64encode(hmac.new(PUBLIC, header + b"." + body, hashlib.sha256).digest()).rstrip(b"=")
    for token in (unsigned, (header + b"." + body + b"." + sig).decode()):
        with pytest.raises(AuthError):
            VERIFIER.verify(token)


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 20_000])
def test_garbage_refused(token: str) -> None:
    with pytest.raises(AuthError):
        VERIFIER.verify(token)


def test_token_without_expiry_refused() -> None:
    token = jwt.encode({"sub": "x", "roles": ["admin"], "iss": "cmr-local", "aud": "cmr", "iat": int(time.time())},
                       serialization.load_pem_private_key(PRIVATE, None), algorithm="ES256")
    with pytest.raises(AuthError, match="exp"):
        VERIFIER.verify(token)


def test_nested_roles_claim(tmp_path) -> None:  # type: ignore[no-untyped-def]
    verifier = TokenVerifier(issuer="cmr-local", audience="cmr", algorithms=["ES256"], public_key_pem=PUBLIC,
                             roles_claim="realm_access.roles")
    token = ISSUER.mint("kc-user", [], 60, extra={"realm_access": {"roles": ["researcher", "offline_access"]}})
    assert verifier.verify(token).roles == {Role.RESEARCHER}


def test_verifier_needs_a_key_and_refuses_symmetric_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="CMR_AUTH_PUBLIC_KEY"):
        TokenVerifier.from_settings(Settings(auth_mode="jwt"))
    with pytest.raises(ValueError, match="asymmetric"):
        TokenVerifier(issuer="i", audience="a", algorithms=["HS256"], public_key_pem=PUBLIC)


def test_oidc_issuer_keys_from_a_jwks_endpoint() -> None:
    """Production: the verifier fetches the issuer's published keys (JWKS) and picks the one the token names."""
    import http.server
    import threading

    from jwt.algorithms import ECAlgorithm

    jwk = json.loads(ECAlgorithm.to_jwk(serialization.load_pem_public_key(PUBLIC)))
    jwk.update(kid="key-1", use="sig", alg="ES256")
    body = json.dumps({"keys": [jwk]}).encode()

    class JWKS(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), JWKS)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        verifier = TokenVerifier(issuer="https://idp.example", audience="cmr", algorithms=["ES256"],
                                 jwks_url=f"http://127.0.0.1:{server.server_port}/jwks")
        idp = TokenIssuer(PRIVATE, issuer="https://idp.example", audience="cmr")
        token = jwt.encode(jwt.decode(idp.mint("dr-oidc", [Role.CLINICIAN], 60), options={"verify_signature": False}),
                           serialization.load_pem_private_key(PRIVATE, None), algorithm="ES256",
                           headers={"kid": "key-1"})
        assert verifier.verify(token).subject == "dr-oidc"
        unknown_kid = jwt.encode({"sub": "x"}, serialization.load_pem_private_key(PRIVATE, None), algorithm="ES256",
                                 headers={"kid": "rotated-away"})
        with pytest.raises(AuthError, match="no issuer key"):
            verifier.verify(unknown_kid)
    finally:
        server.shutdown()
