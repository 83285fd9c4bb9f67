"""TLS and mutual TLS handshakes with good and bad certificates, and per-identity rate limits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from cmr.config import Settings
from cmr.rpc.client import open_channel
from cmr.security.devca import DevSecurity, init_dev
from cmr.security.roles import Role
from cmr.v1 import search_pb2, search_pb2_grpc
from encoder_svc.server import EncoderServer
from search_svc.server import SearchServer
from conftest import part_settings


def _stats(channel: grpc.Channel) -> search_pb2.StatsResponse:
    return search_pb2_grpc.SearchServiceStub(channel).Stats(search_pb2.StatsRequest(), timeout=5)


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> DevSecurity:
    return init_dev(tmp_path_factory.mktemp("other_ca"))


def test_tls_handshakes(secure_search: SearchServer, as_user: Callable[..., Settings], other_ca: DevSecurity) -> None:
    good = as_user("dr-tls", Role.CLINICIAN)
    with open_channel(secure_search.address, good) as channel:
        assert _stats(channel).backend
    plaintext = good.model_copy(update={"tls": False})
    with open_channel(secure_search.address, plaintext) as channel, pytest.raises(grpc.RpcError) as exc:
        _stats(channel)
    assert exc.value.code() is grpc.StatusCode.UNAVAILABLE
    distrusting = good.model_copy(update={"tls_ca": other_ca.ca})  # the server's certificate is not from this CA
    with open_channel(secure_search.address, distrusting) as channel, pytest.raises(grpc.RpcError) as exc:
        _stats(channel)
    assert exc.value.code() is grpc.StatusCode.UNAVAILABLE


@pytest.fixture(scope="module")
def mutual_search(secure_base: Settings, sec: DevSecurity, secure_encoder: EncoderServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[SearchServer]:
    s = part_settings(secure_base, sec, "search", tls_mutual=True, index_dir=tmp_path_factory.mktemp("mtls_index"),
                      rate_limit_per_s=1.0, rate_limit_burst=3)
    with SearchServer(s, port=0, encoder_url=secure_encoder.address) as srv:
        yield srv


def _expired_client_cert(sec: DevSecurity, folder: Path) -> dict[str, Path]:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from cmr.security.devca import issue_cert

    ca_key = serialization.load_pem_private_key((sec.folder / "ca-key.pem").read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(sec.ca.read_bytes())
    key, cert = issue_cert(ca_key, ca_cert, "cmr-expired", ["localhost", "127.0.0.1"], days=1,  # type: ignore[arg-type]
                           not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
    (folder / "expired.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "expired-key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                               serialization.PrivateFormat.PKCS8,
                                                               serialization.NoEncryption()))
    return {"tls_cert": folder / "expired.pem", "tls_key": folder / "expired-key.pem"}


def test_mutual_tls_needs_a_client_certificate_from_the_ca(mutual_search: SearchServer, as_user: Callable[..., Settings],
                                                          other_ca: DevSecurity, sec: DevSecurity,
                                                          tmp_path: Path) -> None:
    good = as_user("svc-mtls", Role.ADMIN).model_copy(update={"tls_mutual": True})
    with open_channel(mutual_search.address, good) as channel:
        assert _stats(channel).backend
    no_cert = good.model_copy(update={"tls_mutual": False})  # TLS, but presents no client certificate
    foreign_cert = good.model_copy(update={"tls_cert": other_ca.cert("client"), "tls_key": other_ca.key("client")})
    expired_cert = good.model_copy(update=_expired_client_cert(sec, tmp_path))  # our CA, but out of date
    for settings in (no_cert, foreign_cert, expired_cert):
        with open_channel(mutual_search.address, settings) as channel, pytest.raises(grpc.RpcError) as exc:
            _stats(channel)
        assert exc.value.code() is grpc.StatusCode.UNAVAILABLE


def test_rate_limit_is_per_identity(mutual_search: SearchServer, as_user: Callable[..., Settings]) -> None:
    # burst 3 at 1 request/s: the 4th immediate call of one identity is refused, another identity is not
    busy = as_user("dr-busy", Role.CLINICIAN).model_copy(update={"tls_mutual": True})
    calm = as_user("dr-calm", Role.CLINICIAN).model_copy(update={"tls_mutual": True})
    ingest = as_user("service:ingest-rl", Role.INGEST).model_copy(update={"tls_mutual": True})
    with open_channel(mutual_search.address, busy) as channel:
        for _ in range(3):
            _stats(channel)
        with pytest.raises(grpc.RpcError) as exc:
            _stats(channel)
    assert exc.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and "rate limit" in exc.value.details()
    with open_channel(mutual_search.address, calm) as channel:
        _stats(channel)
    with open_channel(mutual_search.address, ingest) as channel:  # the ingest worker is exempt (its own pace)
        for _ in range(6):
            _stats(channel)


def test_server_refuses_to_start_without_a_way_to_check_tokens(secure_base: Settings, sec: DevSecurity,
                                                               tmp_path: Path) -> None:
    s = part_settings(secure_base, sec, "search", auth_public_key=None, index_dir=tmp_path)
    with pytest.raises(ValueError, match="CMR_AUTH_PUBLIC_KEY"):
        SearchServer(s, port=0, encoder_url="127.0.0.1:1").start()
