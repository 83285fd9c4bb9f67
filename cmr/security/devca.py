"""`cmr security init-dev`: a local certificate authority, a certificate per part of the one-machine stack, a
token-signing key pair, service tokens, and UI accounts, all in one folder (private files 0600).

For development and the one-machine stack only: production certificates come from the hospital's PKI and tokens
from its OIDC issuer; the same settings (CMR_TLS_*, CMR_AUTH_*) point at them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cmr.security.roles import Role
from cmr.security.tokens import TokenIssuer, new_signing_key, write_key_pair
from cmr.security.users import UserStore

PARTS = ("encoder", "search", "generator", "ingest", "ui", "client")
# Each service's own identity (used outside an RPC; inside one the caller's token is forwarded).
SERVICE_ROLES: dict[str, tuple[Role, ...]] = {
    "search": (Role.INGEST,),      # start-up model check against the encoder
    "generator": (Role.CLINICIAN,),
    "ingest": (Role.INGEST,),
    "client": (Role.ADMIN,),       # the operator's CLI (`cmr status`, `cmr index ...`) on this machine
}
DEMO_USERS: dict[str, tuple[Role, ...]] = {
    "clinician": (Role.CLINICIAN,), "researcher": (Role.RESEARCHER,), "admin": (Role.ADMIN,),
}
ISSUER, AUDIENCE = "cmr-local", "cmr"


@dataclass
class DevSecurity:
    """Where init-dev put everything; `env(part)` is what a part of the stack runs with."""

    folder: Path
    passwords: dict[str, str] = field(default_factory=dict)  # only when the accounts were just created

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    def cert(self, part: str) -> Path:
        return self.folder / f"{part}.pem"

    def key(self, part: str) -> Path:
        return self.folder / f"{part}-key.pem"

    def token_file(self, part: str) -> Path:
        return self.folder / f"{part}.token"

    @property
    def signing_key(self) -> Path:
        return self.folder / "token-signing-key.pem"

    @property
    def public_key(self) -> Path:
        return self.folder / "token-public-key.pem"

    @property
    def users(self) -> Path:
        return self.folder / "users.json"

    def exists(self) -> bool:
        return all(p.exists() for p in (self.ca, self.signing_key, self.public_key, self.users,
                                        *(self.cert(p) for p in PARTS), *(self.token_file(p) for p in SERVICE_ROLES)))

    def env(self, part: str, *, mutual: bool = False) -> dict[str, str]:
        env = {
            "CMR_TLS": "true", "CMR_TLS_CA": str(self.ca), "CMR_TLS_CERT": str(self.cert(part)),
            "CMR_TLS_KEY": str(self.key(part)), "CMR_TLS_MUTUAL": "true" if mutual else "false",
            "CMR_AUTH_MODE": "jwt", "CMR_AUTH_PUBLIC_KEY": str(self.public_key),
            "CMR_AUTH_ISSUER": ISSUER, "CMR_AUTH_AUDIENCE": AUDIENCE,
        }
        if part in SERVICE_ROLES:
            env["CMR_AUTH_TOKEN_FILE"] = str(self.token_file(part))
        if part in ("ui", "client"):  # the UI's login and the operator's `cmr auth token` mint tokens
            env["CMR_AUTH_SIGNING_KEY"] = str(self.signing_key)
            env["CMR_AUTH_USERS_FILE"] = str(self.users)
        return env


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CMR platform (development)"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def make_ca(days: int = 825) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("CMR development CA")).issuer_name(_name("CMR development CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def issue_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, common: str, hosts: list[str],
               days: int = 397, *, not_before: dt.datetime | None = None) -> tuple[ec.EllipticCurvePrivateKey,
                                                                                 x509.Certificate]:
    """A leaf certificate valid for server and client authentication for `hosts` (DNS names or IPs)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for h in dict.fromkeys(hosts):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    start = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def init_dev(folder: Path, *, hosts: list[str] | None = None, force: bool = False,
             service_token_ttl_s: int = 30 * 86400) -> DevSecurity:
    """Create what is missing (everything with force). Idempotent: a second run keeps keys, certificates and
    accounts, and only renews the service tokens (they expire)."""
    sec = DevSecurity(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    if force or not sec.ca.exists():
        ca_key, ca_cert = make_ca()
        _write_private(folder / "ca-key.pem", ca_key)
        sec.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        force = True  # every leaf must chain to the new CA
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(sec.ca.read_bytes())
    for part in PARTS:
        if force or not sec.cert(part).exists():
            names = ["localhost", "127.0.0.1", "::1", part, f"cmr-{part}", *(hosts or [])]
            key, cert = issue_cert(ca_key, ca_cert, f"cmr-{part}", names)  # type: ignore[arg-type]
            _write_private(sec.key(part), key)
            sec.cert(part).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if force or not sec.signing_key.exists():
        write_key_pair(new_signing_key(), sec.signing_key, sec.public_key)
    issuer = TokenIssuer(sec.signing_key.read_bytes(), issuer=ISSUER, audience=AUDIENCE)
    for part, roles in SERVICE_ROLES.items():
        path = sec.token_file(part)
        path.write_text(issuer.mint(f"service:{part}", roles, service_token_ttl_s) + "\n")
        path.chmod(0o600)
    # the operator's shell on this machine: `set -a; . client.env; set +a`, then `cmr search ...` works
    (folder / "client.env").write_text("".join(f"{k}={v}\n" for k, v in sec.env("client").items()))
    if force or not sec.users.exists():
        store = UserStore(sec.users)
        for user, roles in DEMO_USERS.items():
            sec.passwords[user] = secrets.token_urlsafe(9)
            store.set_user(user, sec.passwords[user], roles)
        pw = folder / "passwords.txt"
        pw.write_text("".join(f"{u} {p}\n" for u, p in sec.passwords.items()))
        pw.chmod(0o600)
    return sec
