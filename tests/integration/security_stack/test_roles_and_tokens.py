"""Each role against each RPC of the three services, as deployed (TLS + tokens): allowed calls reach the
handler, the others get PERMISSION_DENIED; no, expired, forged or misdirected tokens get UNAUTHENTICATED."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cmr.config import Settings
from cmr.rpc.client import open_channel
from cmr.security.roles import METHOD_ROLES, Role
from cmr.security.tokens import TokenIssuer, new_signing_key
from cmr.v1 import common_pb2, encoder_pb2, encoder_pb2_grpc, generator_pb2, generator_pb2_grpc, search_pb2, search_pb2_grpc

AUTH_CODES = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)


def _calls(keys: list[str]) -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """method -> (service, call on a stub): small, valid requests that change nothing already stored."""
    cohort = search_pb2.BuildCohortRequest(all_of=["dilated left ventricle"], page_size=5)
    key_query = common_pb2.StudyQuery(study_key=keys[0])
    return {
        "/cmr.v1.EncoderService/EncodeStudy": ("encoder", lambda s: s.EncodeStudy(iter([]), timeout=30)),
        "/cmr.v1.EncoderService/EncodeExam": ("encoder", lambda s: s.EncodeExam(encoder_pb2.EncodeExamRequest(),
                                                                                timeout=30)),
        "/cmr.v1.EncoderService/EncodeText": ("encoder", lambda s: s.EncodeText(
            encoder_pb2.EncodeTextRequest(texts=["dilated left ventricle"]), timeout=30)),
        "/cmr.v1.EncoderService/GetModelInfo": ("encoder", lambda s: s.GetModelInfo(encoder_pb2.GetModelInfoRequest(),
                                                                                    timeout=30)),
        "/cmr.v1.SearchService/SearchByText": ("search", lambda s: s.SearchByText(
            search_pb2.SearchByTextRequest(query="dilated left ventricle", top_k=3), timeout=30)),
        "/cmr.v1.SearchService/SearchByStudy": ("search", lambda s: s.SearchByStudy(
            search_pb2.SearchByStudyRequest(study=key_query, top_k=3), timeout=30)),
        "/cmr.v1.SearchService/ZeroShot": ("search", lambda s: s.ZeroShot(search_pb2.ZeroShotRequest(study=key_query),
                                                                          timeout=30)),
        "/cmr.v1.SearchService/FewShot": ("search", lambda s: s.FewShot(search_pb2.FewShotRequest(
            positive_keys=keys[:2], negative_keys=keys[2:4], top_k=3), timeout=30)),
        "/cmr.v1.SearchService/BuildCohort": ("search", lambda s: s.BuildCohort(cohort, timeout=30)),
        "/cmr.v1.SearchService/ExportCohort": ("search", lambda s: list(s.ExportCohort(
            search_pb2.ExportCohortRequest(cohort=cohort), timeout=30))),
        "/cmr.v1.SearchService/Upsert": ("search", lambda s: s.Upsert(search_pb2.UpsertRequest(), timeout=30)),
        "/cmr.v1.SearchService/Delete": ("search", lambda s: s.Delete(
            search_pb2.DeleteRequest(study_keys=["f" * 64]), timeout=30)),
        "/cmr.v1.SearchService/Get": ("search", lambda s: s.Get(search_pb2.GetRequest(study_key=keys[0]), timeout=30)),
        "/cmr.v1.SearchService/Stats": ("search", lambda s: s.Stats(search_pb2.StatsRequest(), timeout=30)),
        "/cmr.v1.GeneratorService/GenerateReport": ("generator", lambda s: list(s.GenerateReport(
            generator_pb2.GenerateReportRequest(study=key_query, mode=generator_pb2.DRAFT_MODE_RETRIEVAL),
            timeout=60))),
    }


STUBS = {"encoder": encoder_pb2_grpc.EncoderServiceStub, "search": search_pb2_grpc.SearchServiceStub,
         "generator": generator_pb2_grpc.GeneratorServiceStub}


@pytest.fixture(scope="module")
def addresses(secure_encoder, secure_search, secure_generator) -> dict[str, str]:  # noqa: ANN001
    return {"encoder": secure_encoder.address, "search": secure_search.address, "generator": secure_generator.address}


def _outcome(settings: Settings, address: str, service: str, call: Callable[[Any], Any]) -> grpc.StatusCode:
    with open_channel(address, settings) as channel:
        try:
            call(STUBS[service](channel))
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            if exc.code() in AUTH_CODES:
                assert exc.details(), "a refusal says why"
            return exc.code()  # type: ignore[no-any-return]


def test_the_table_covers_every_call_here(indexed_keys: list[str]) -> None:
    assert set(_calls(indexed_keys)) == set(METHOD_ROLES)


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_each_role_against_each_rpc(role: Role, as_user: Callable[..., Settings], addresses: dict[str, str],
                                    indexed_keys: list[str]) -> None:
    settings = as_user(f"matrix-{role.value}", role)
    wrong = []
    for method, (service, call) in _calls(indexed_keys).items():
        code = _outcome(settings, addresses[service], service, call)
        allowed = role in METHOD_ROLES[method]
        if allowed and code in AUTH_CODES or not allowed and code is not grpc.StatusCode.PERMISSION_DENIED:
            wrong.append(f"{method}: {code.name} (allowed={allowed})")
    assert not wrong, wrong


def test_index_administration_only_for_admins(as_user: Callable[..., Settings], addresses: dict[str, str],
                                             audit_folder) -> None:  # noqa: ANN001
    from cmr.security.audit import query
    from cmr.v1 import admin_pb2, admin_pb2_grpc

    for role in Role:
        with open_channel(addresses["search"], as_user(f"adm-{role.value}", role)) as channel:
            stub = admin_pb2_grpc.IndexAdminServiceStub(channel)
            if role is Role.ADMIN:
                assert stub.ListGenerations(admin_pb2.ListGenerationsRequest(), timeout=30).generations
                with pytest.raises(grpc.RpcError) as exc:  # nothing to roll back to: refused, and audited
                    stub.Rollback(admin_pb2.RollbackRequest(), timeout=30)
                assert exc.value.code() not in AUTH_CODES
            else:
                with pytest.raises(grpc.RpcError) as exc:
                    stub.Rollback(admin_pb2.RollbackRequest(), timeout=30)
                assert exc.value.code() is grpc.StatusCode.PERMISSION_DENIED
    rollbacks = query(audit_folder, action="rollback")
    assert {e.subject for e in rollbacks} == {f"adm-{r.value}" for r in Role}
    assert {e.status for e in rollbacks if e.subject != "adm-admin"} == {"PERMISSION_DENIED"}


def test_allowed_calls_do_real_work(as_user: Callable[..., Settings], addresses: dict[str, str],
                                    indexed_keys: list[str]) -> None:
    from search_svc.client import SearchClient

    with SearchClient(addresses["search"], settings=as_user("dr-real", Role.CLINICIAN)) as client:
        assert len(client.search_text("dilated left ventricle", top_k=3)) == 3
    with SearchClient(addresses["search"], settings=as_user("res-real", Role.RESEARCHER)) as client:
        assert client.cohort_members(all_of=["dilated left ventricle"], threshold=0.01)


def test_no_token_is_unauthenticated_everywhere_but_health(as_user: Callable[..., Settings],
                                                          addresses: dict[str, str], indexed_keys: list[str]) -> None:
    settings = as_user("nobody", token="")
    for method, (service, call) in _calls(indexed_keys).items():
        assert _outcome(settings, addresses[service], service, call) is grpc.StatusCode.UNAUTHENTICATED, method
    with open_channel(addresses["search"], settings) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_bad_tokens_are_unauthenticated(as_user: Callable[..., Settings], addresses: dict[str, str],
                                        issuer: TokenIssuer, sec, indexed_keys: list[str]) -> None:  # noqa: ANN001
    from cryptography.hazmat.primitives import serialization

    other_key = new_signing_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption())
    tokens = {
        "expired": issuer.mint("dr-late", [Role.ADMIN], 60, now=time.time() - 3600),
        "forged": TokenIssuer(other_key, issuer="cmr-local", audience="cmr").mint("mallory", [Role.ADMIN], 600),
        "other audience": TokenIssuer(sec.signing_key.read_bytes(), issuer="cmr-local",  # right key, wrong aud
                                      audience="billing").mint("dr-who", [Role.ADMIN], 600),
        "garbage": "not.a.token",
    }
    service, call = _calls(indexed_keys)["/cmr.v1.SearchService/SearchByText"]
    for what, token in tokens.items():
        with open_channel(addresses["search"], as_user("x", token=token)) as channel:
            with pytest.raises(grpc.RpcError) as exc:
                call(STUBS[service](channel))
            assert exc.value.code() is grpc.StatusCode.UNAUTHENTICATED, what


def test_researcher_cannot_make_a_service_read_identified_studies(as_user: Callable[..., Settings],
                                                                  addresses: dict[str, str], studies) -> None:  # noqa: ANN001
    ref = common_pb2.StudyQuery(ref=common_pb2.StudyRef(path=str(studies[0])))
    request = search_pb2.SearchByStudyRequest(study=ref, top_k=3)
    with open_channel(addresses["search"], as_user("res-ref", Role.RESEARCHER)) as channel:
        with pytest.raises(grpc.RpcError) as exc:
            search_pb2_grpc.SearchServiceStub(channel).SearchByStudy(request, timeout=60)
        assert exc.value.code() is grpc.StatusCode.PERMISSION_DENIED and "de-identified" in exc.value.details()
    with open_channel(addresses["search"], as_user("dr-ref", Role.CLINICIAN)) as channel:
        try:
            search_pb2_grpc.SearchServiceStub(channel).SearchByStudy(request, timeout=60)
        except grpc.RpcError as exc:  # the path may lie outside this server's study roots: not a role refusal
            assert exc.code() not in AUTH_CODES


def test_random_authorization_headers_are_unauthenticated(addresses: dict[str, str], as_user: Callable[..., Settings],
                                                          issuer: TokenIssuer) -> None:
    """Fuzzed headers (any scheme, any bytes-as-text, truncated and bit-flipped real tokens) are refused with
    UNAUTHENTICATED and a reason; the service stays up."""
    from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

    good = issuer.mint("dr-fuzz", [Role.ADMIN], 600)
    # not the last character: its low bits may be padding, and a change there can decode to the same signature
    mutated = st.builds(lambda i, c: good[:i] + c + good[i + 1:], st.integers(0, len(good) - 2),
                        st.sampled_from("AZaz09-_."))
    header = st.one_of(st.text(max_size=300).map(lambda t: f"Bearer {t}"), st.text(max_size=300),
                       st.integers(1, len(good) - 1).map(lambda n: f"Bearer {good[:n]}"),
                       mutated.filter(lambda t: t != good).map(lambda t: f"Bearer {t}"),
                       st.just(f"Basic {good}"), st.just(f"bearer  {good}x"))
    channel = open_channel(addresses["search"], as_user("fuzz", token=""))
    stub = search_pb2_grpc.SearchServiceStub(channel)

    @hsettings(max_examples=150, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(header)
    def call(value: str) -> None:
        value = "".join(ch for ch in value if 32 <= ord(ch) < 127)  # gRPC metadata values are printable ASCII
        with pytest.raises(grpc.RpcError) as exc:
            stub.Stats(search_pb2.StatsRequest(), metadata=[("authorization", value)], timeout=10)
        assert exc.value.code() is grpc.StatusCode.UNAUTHENTICATED and exc.value.details()

    try:
        call()
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        channel.close()
