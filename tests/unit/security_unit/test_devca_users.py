"""The development CA: every part's certificate chains to the CA and names the local hosts; service tokens
verify with the public key; accounts check passwords; a second run keeps what exists."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509

from cmr.security.devca import PARTS, SERVICE_ROLES, init_dev
from cmr.security.roles import Role
from cmr.security.tokens import TokenVerifier
from cmr.security.users import UserStore


def test_init_dev_makes_a_working_set(tmp_path: Path) -> None:
    sec = init_dev(tmp_path / "sec", hosts=["cmr.example.org"])
    assert sec.exists()
    ca = x509.load_pem_x509_certificate(sec.ca.read_bytes())
    for part in PARTS:
        cert = x509.load_pem_x509_certificate(sec.cert(part).read_bytes())
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {"localhost", part, "cmr.example.org"} <= set(sans.get_values_for_type(x509.DNSName))
        assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
        assert sec.key(part).stat().st_mode & 0o077 == 0  # private keys readable by the owner only
    verifier = TokenVerifier(issuer="cmr-local", audience="cmr", algorithms=["ES256"],
                             public_key_pem=sec.public_key.read_bytes())
    for part, roles in SERVICE_ROLES.items():
        identity = verifier.verify(sec.token_file(part).read_text().strip())
        assert identity.subject == f"service:{part}" and identity.roles == set(roles)
    users = UserStore(sec.users)
    assert users.check("clinician", sec.passwords["clinician"]) == {Role.CLINICIAN}
    assert users.check("clinician", "wrong-password") is None
    assert users.check("nobody", "whatever-password") is None
    env = sec.env("ui")
    assert env["CMR_TLS"] == "true" and "CMR_AUTH_SIGNING_KEY" in env
    assert "CMR_AUTH_SIGNING_KEY" not in sec.env("search")  # a verifying service cannot mint tokens


def test_second_run_keeps_ca_and_accounts(tmp_path: Path) -> None:
    first = init_dev(tmp_path)
    ca, users = first.ca.read_bytes(), first.users.read_bytes()
    second = init_dev(tmp_path)
    assert second.ca.read_bytes() == ca and second.users.read_bytes() == users and not second.passwords
