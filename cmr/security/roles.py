"""Roles and what each may call: the access policy of every RPC, as data.

Deny by default: an RPC missing from the table is admin-only, so a new method is never open by accident.
Health checks are public (load balancers and probes carry no token); reflection needs any valid identity.
"""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    CLINICIAN = "clinician"    # search, similar scans, zero-shot, report drafting
    RESEARCHER = "researcher"  # search and cohorts on the de-identified index, exports; no drafting
    INGEST = "ingest"          # the ingest worker: encode, upsert, delete, read back
    ADMIN = "admin"            # everything, including index administration


ALL_ROLES: frozenset[Role] = frozenset(Role)
_C, _R, _I, _A = Role.CLINICIAN, Role.RESEARCHER, Role.INGEST, Role.ADMIN

PUBLIC_METHODS: frozenset[str] = frozenset({
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
})
AUTHENTICATED_ONLY_PREFIXES: tuple[str, ...] = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)

# Search and drafting services call the encoder/search on behalf of the caller (the caller's token is forwarded),
# so a role that may search by text may also encode text, and one that may draft may also find similar studies.
METHOD_ROLES: dict[str, frozenset[Role]] = {
    "/cmr.v1.EncoderService/EncodeStudy": frozenset({_C, _I, _A}),
    "/cmr.v1.EncoderService/EncodeExam": frozenset({_C, _I, _A}),
    "/cmr.v1.EncoderService/EncodeText": frozenset({_C, _R, _I, _A}),
    "/cmr.v1.EncoderService/GetModelInfo": ALL_ROLES,
    "/cmr.v1.SearchService/SearchByText": frozenset({_C, _R, _A}),
    "/cmr.v1.SearchService/SearchByStudy": frozenset({_C, _R, _A}),
    "/cmr.v1.SearchService/ZeroShot": frozenset({_C, _R, _I, _A}),
    "/cmr.v1.SearchService/FewShot": frozenset({_C, _R, _A}),
    "/cmr.v1.SearchService/BuildCohort": frozenset({_R, _A}),
    "/cmr.v1.SearchService/ExportCohort": frozenset({_R, _A}),
    "/cmr.v1.SearchService/Upsert": frozenset({_I, _A}),
    "/cmr.v1.SearchService/Delete": frozenset({_I, _A}),
    "/cmr.v1.SearchService/Get": frozenset({_C, _R, _I, _A}),
    "/cmr.v1.SearchService/Stats": ALL_ROLES,
    "/cmr.v1.GeneratorService/GenerateReport": frozenset({_C, _A}),
}

# Roles that may make a service read a study from storage (StudyRef: identified images on the hospital's disks).
# Researchers work on the de-identified index only: by study key or by embedding.
IDENTIFIED_DATA_ROLES: frozenset[Role] = frozenset({_C, _I, _A})


def parse_roles(values: object) -> frozenset[Role]:
    """Known roles among a token's claim values (unknown ones are ignored: an IdP may carry other roles)."""
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    if not isinstance(values, (list, tuple, set, frozenset)):
        return frozenset()
    known = {r.value for r in Role}
    return frozenset(Role(v) for v in values if isinstance(v, str) and v in known)


def allowed_roles(method: str) -> frozenset[Role] | None:
    """Roles that may call `method`; None = public (no token needed)."""
    if method in PUBLIC_METHODS:
        return None
    if method.startswith(AUTHENTICATED_ONLY_PREFIXES):
        return ALL_ROLES
    return METHOD_ROLES.get(method, frozenset({_A}))


def may_call(roles: frozenset[Role], method: str) -> bool:
    allowed = allowed_roles(method)
    return allowed is None or bool(roles & allowed)
