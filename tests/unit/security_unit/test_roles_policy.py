"""The role table covers every RPC the protos define, and says what the issue asks of each role."""

from __future__ import annotations

from google.protobuf import descriptor_pool

import cmr.v1.encoder_pb2  # noqa: F401 - registers the services in the default pool
import cmr.v1.generator_pb2  # noqa: F401
import cmr.v1.search_pb2  # noqa: F401
from cmr.security.roles import METHOD_ROLES, Role, allowed_roles, may_call, parse_roles


def _all_methods() -> list[str]:
    pool = descriptor_pool.Default()
    methods = []
    for name in ("cmr.v1.EncoderService", "cmr.v1.SearchService", "cmr.v1.GeneratorService"):
        service = pool.FindServiceByName(name)
        methods += [f"/{service.full_name}/{m.name}" for m in service.methods]
    return methods


def test_every_rpc_has_a_policy_entry() -> None:
    missing = [m for m in _all_methods() if m not in METHOD_ROLES]
    assert not missing, f"RPCs without a role entry (they would be admin-only): {missing}"


def test_index_administration_is_admin_only() -> None:
    import cmr.v1.admin_pb2  # noqa: F401

    service = descriptor_pool.Default().FindServiceByName("cmr.v1.IndexAdminService")
    for m in service.methods:
        assert allowed_roles(f"/{service.full_name}/{m.name}") == {Role.ADMIN}, m.name


def test_unknown_method_is_admin_only_and_health_is_public() -> None:
    assert allowed_roles("/cmr.v1.SearchService/NewMethodNobodyListed") == {Role.ADMIN}
    assert allowed_roles("/grpc.health.v1.Health/Check") is None
    assert allowed_roles("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") == set(Role)


def test_roles_match_the_issue() -> None:
    search = "/cmr.v1.SearchService/"
    clinician, researcher, ingest = {Role.CLINICIAN}, {Role.RESEARCHER}, {Role.INGEST}
    for m in ("SearchByText", "SearchByStudy", "ZeroShot"):
        assert may_call(frozenset(clinician), search + m)
    assert may_call(frozenset(clinician), "/cmr.v1.GeneratorService/GenerateReport")
    assert not may_call(frozenset(clinician), search + "BuildCohort")
    assert may_call(frozenset(researcher), search + "BuildCohort") and may_call(frozenset(researcher), search + "ExportCohort")
    assert not may_call(frozenset(researcher), "/cmr.v1.GeneratorService/GenerateReport")
    assert may_call(frozenset(ingest), search + "Upsert") and may_call(frozenset(ingest), search + "Delete")
    assert not may_call(frozenset(ingest), search + "SearchByText")
    for who in (clinician, researcher):
        assert not may_call(frozenset(who), search + "Upsert") and not may_call(frozenset(who), search + "Delete")
    assert all(may_call(frozenset({Role.ADMIN}), m) for m in _all_methods())


def test_parse_roles() -> None:
    assert parse_roles("clinician admin") == {Role.CLINICIAN, Role.ADMIN}
    assert parse_roles(["researcher", "root", 3]) == {Role.RESEARCHER}
    assert parse_roles(None) == set()
