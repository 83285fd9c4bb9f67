"""Who is using the UI: login against the local accounts (the one-machine stack; an OIDC login in production
issues the same kind of token), the token the UI's gRPC clients then carry, and which pages the roles allow.
No Streamlit here, so it is testable on its own."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cmr.config import Settings
from cmr.security.audit import AuditEntry, AuditLog, audit_dir
from cmr.security.ratelimit import RateLimiter
from cmr.security.roles import Role, may_call
from cmr.security.tokens import TokenIssuer
from cmr.security.users import UserStore

# A page is shown when the user's roles may make the calls it is built on.
PAGE_METHODS: dict[str, tuple[str, ...]] = {
    "text_search": ("/cmr.v1.SearchService/SearchByText",),
    "scan": ("/cmr.v1.SearchService/SearchByStudy", "/cmr.v1.EncoderService/EncodeStudy"),
    "cohort": ("/cmr.v1.SearchService/BuildCohort", "/cmr.v1.SearchService/ExportCohort"),
    "draft": ("/cmr.v1.GeneratorService/GenerateReport",),
}


class LoginError(Exception):
    pass


@dataclass(frozen=True)
class UserSession:
    user: str
    roles: frozenset[Role]
    token: str
    expires_at: float

    @property
    def expired(self) -> bool:
        return time.time() >= self.expires_at - 30

    def may_see(self, page: str) -> bool:
        return all(may_call(self.roles, m) for m in PAGE_METHODS[page])


def auth_required(settings: Settings) -> bool:
    return settings.auth_mode == "jwt"


def visible_pages(session: UserSession | None, settings: Settings) -> list[str]:
    if not auth_required(settings):
        return list(PAGE_METHODS)
    return [p for p in PAGE_METHODS if session is not None and session.may_see(p)]


@lru_cache(maxsize=4)
def _throttle(rate: float) -> RateLimiter:
    # per user name, across browser sessions: 5 tries at once, then one every 10 s
    return RateLimiter(rate, 5)


_audit_logs: dict[Path, AuditLog] = {}
_audit_lock = threading.Lock()


def _audit(settings: Settings) -> AuditLog:
    """One audit log per folder for the UI process (Streamlit reruns pages; the file stays open)."""
    with _audit_lock:
        folder = audit_dir(settings)
        if folder not in _audit_logs:
            _audit_logs[folder] = AuditLog.from_settings(settings, "ui")
        return _audit_logs[folder]


def login(settings: Settings, user: str, password: str) -> UserSession:
    """A session with a freshly signed token, or LoginError saying what to do (never which part was wrong)."""
    user = user.strip()
    if not user or not password:
        raise LoginError("Enter your user name and password.")
    if settings.auth_users_file is None or settings.auth_signing_key is None:
        raise LoginError("Login is not configured on this server (CMR_AUTH_USERS_FILE, CMR_AUTH_SIGNING_KEY).")
    wait = _throttle(0.1).try_acquire(user.lower()[:128])
    if wait > 0:
        _record(settings, user, "RESOURCE_EXHAUSTED", "too many login attempts")
        raise LoginError(f"Too many attempts for this user: try again in {wait:.0f} s.")
    roles = UserStore(settings.auth_users_file).check(user, password)
    if roles is None:
        _record(settings, user, "UNAUTHENTICATED", "wrong user name or password")
        raise LoginError("Wrong user name or password.")
    ttl = settings.auth_token_ttl_s
    token = TokenIssuer.from_settings(settings).mint(user, roles, ttl)
    _record(settings, user, "OK", "", sorted(r.value for r in roles))
    return UserSession(user, roles, token, time.time() + ttl)


def _record(settings: Settings, user: str, status: str, detail: str, roles: list[str] | None = None) -> None:
    _audit(settings).append(AuditEntry(service="ui", action="login", method="ui/login", subject=user[:128], roles=roles or [],
                          status=status, detail=detail))


def session_settings(settings: Settings, session: UserSession | None) -> Settings:
    """The settings the UI's clients use for this user: their token on every call."""
    if session is None:
        return settings
    return settings.model_copy(update={"auth_token": session.token, "auth_token_file": None})
