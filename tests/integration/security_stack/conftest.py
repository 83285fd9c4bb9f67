"""The three gRPC services as deployed: TLS, bearer tokens checked on every RPC, audit on. They share the
session's Triton (started by the encoder_server fixture) and a small index of real encoded studies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cmr.config import Settings
from cmr.security.devca import DevSecurity, init_dev
from cmr.security.roles import Role
from cmr.security.tokens import TokenIssuer
from cmr.v1 import search_pb2
from encoder_svc.server import EncoderServer
from generator_svc.server import GeneratorServer
from search_svc.client import SearchClient
from search_svc.server import SearchServer


@pytest.fixture(scope="module")
def sec(tmp_path_factory: pytest.TempPathFactory) -> DevSecurity:
    return init_dev(tmp_path_factory.mktemp("security"))


@pytest.fixture(scope="module")
def secure_base(sec: DevSecurity, encoder_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return encoder_settings.model_copy(update={
        "data_dir": tmp_path_factory.mktemp("secure_data"), "study_key_secret": "security-test-secret",
        "tls": True, "tls_ca": sec.ca, "auth_mode": "jwt", "auth_public_key": sec.public_key,
        "auth_issuer": "cmr-local", "auth_audience": "cmr", "rate_limit_per_s": 50.0, "rate_limit_burst": 200,
    })


def part_settings(base: Settings, sec: DevSecurity, part: str, **extra: object) -> Settings:
    return base.model_copy(update={"tls_cert": sec.cert(part), "tls_key": sec.key(part),
                                   "auth_token_file": sec.token_file(part) if part in ("search", "generator",
                                                                                       "ingest", "client") else None,
                                   **extra})


@pytest.fixture(scope="module")
def issuer(sec: DevSecurity) -> TokenIssuer:
    return TokenIssuer(sec.signing_key.read_bytes(), issuer="cmr-local", audience="cmr")


@pytest.fixture(scope="module")
def as_user(secure_base: Settings, sec: DevSecurity, issuer: TokenIssuer) -> Callable[..., Settings]:
    """Client settings carrying a fresh token for `subject` with `roles` (or an explicit token)."""
    def make(subject: str, *roles: Role, token: str | None = None) -> Settings:
        return secure_base.model_copy(update={"tls_cert": sec.cert("client"), "tls_key": sec.key("client"),
                                              "auth_token": token if token is not None else
                                              issuer.mint(subject, roles, 600), "auth_token_file": None})
    return make


@pytest.fixture(scope="module")
def secure_encoder(secure_base: Settings, sec: DevSecurity, encoder_server: EncoderServer,
                   encoder_settings: Settings) -> Iterator[EncoderServer]:
    s = part_settings(secure_base, sec, "encoder", triton_url=f"127.0.0.1:{encoder_settings.triton_grpc_port}")
    with EncoderServer(s, port=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def secure_search(secure_base: Settings, sec: DevSecurity, secure_encoder: EncoderServer) -> Iterator[SearchServer]:
    with SearchServer(part_settings(secure_base, sec, "search"), port=0, encoder_url=secure_encoder.address) as srv:
        yield srv


@pytest.fixture(scope="module")
def indexed_keys(secure_search: SearchServer, as_user: Callable[..., Settings],
                 upserts: list[search_pb2.ExamUpsert]) -> list[str]:
    with SearchClient(secure_search.address, settings=as_user("service:ingest-test", Role.INGEST)) as client:
        client.wait_ready(30)
        return list(client.upsert(upserts).study_keys)


@pytest.fixture(scope="module")
def secure_generator(secure_base: Settings, sec: DevSecurity, secure_search: SearchServer,
                     indexed_keys: list[str]) -> Iterator[GeneratorServer]:
    with GeneratorServer(part_settings(secure_base, sec, "generator"), port=0,
                         search_url=secure_search.address) as srv:
        yield srv


@pytest.fixture(scope="module")
def audit_folder(secure_base: Settings) -> Path:
    return Path(secure_base.data_dir) / "audit"
