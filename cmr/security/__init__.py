"""Security of the platform: TLS credentials, signed bearer tokens and roles, the server interceptor that checks
them on every RPC (with per-identity rate limits and the audit trail), and the local development CA."""

from cmr.security.audit import AuditEntry, AuditLog, audit_dir, query, verify
from cmr.security.interceptor import SecurityInterceptor, current_identity
from cmr.security.roles import METHOD_ROLES, Role, allowed_roles, may_call
from cmr.security.tokens import AuthError, Identity, TokenIssuer, TokenVerifier

__all__ = [
    "METHOD_ROLES",
    "AuditEntry",
    "AuditLog",
    "AuthError",
    "Identity",
    "Role",
    "SecurityInterceptor",
    "TokenIssuer",
    "TokenVerifier",
    "allowed_roles",
    "audit_dir",
    "current_identity",
    "may_call",
    "query",
    "verify",
]
