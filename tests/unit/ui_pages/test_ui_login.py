"""UI login: local accounts, signed tokens carrying the user's roles, a throttle on guessing, audited attempts,
and pages shown by role."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmr.config import Settings
from cmr.security.audit import query
from cmr.security.devca import init_dev
from cmr.security.roles import Role
from cmr.security.tokens import TokenVerifier
from ui import auth
from ui.auth import LoginError, UserSession, login, session_settings, visible_pages


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[str, str]]:
    folder = tmp_path_factory.mktemp("ui_security")
    sec = init_dev(folder / "security")
    env = sec.env("ui")
    settings = Settings(data_dir=folder, auth_mode="jwt", auth_users_file=Path(env["CMR_AUTH_USERS_FILE"]),
                        auth_signing_key=Path(env["CMR_AUTH_SIGNING_KEY"]), auth_public_key=sec.public_key)
    return settings, sec.passwords


def test_login_issues_a_token_with_the_users_roles(secured: tuple[Settings, dict[str, str]]) -> None:
    settings, passwords = secured
    session = login(settings, "researcher", passwords["researcher"])
    identity = TokenVerifier.from_settings(settings).verify(session.token)
    assert identity.subject == "researcher" and identity.roles == {Role.RESEARCHER}
    assert session_settings(settings, session).auth_token == session.token
    entries = query(Path(settings.data_dir) / "audit", subject="researcher", action="login")
    assert entries and entries[-1].status == "OK" and entries[-1].service == "ui"


def test_wrong_password_and_guessing_are_refused(secured: tuple[Settings, dict[str, str]]) -> None:
    settings, passwords = secured
    with pytest.raises(LoginError, match="Wrong user name or password"):
        login(settings, "nobody", "whatever-it-is")
    with pytest.raises(LoginError, match="Enter your user name"):
        login(settings, "", "")
    auth._throttle.cache_clear()
    for _ in range(5):
        with pytest.raises(LoginError, match="Wrong"):
            login(settings, "admin", "guess-guess")
    with pytest.raises(LoginError, match="Too many attempts"):
        login(settings, "admin", passwords["admin"])  # even the right password waits: the account is throttled
    failed = query(Path(settings.data_dir) / "audit", subject="admin", action="login")
    assert {e.status for e in failed} == {"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}
    assert not any(passwords["admin"] in e.detail or "guess" in e.detail for e in failed)
    auth._throttle.cache_clear()


def test_pages_by_role() -> None:
    on = Settings(auth_mode="jwt")
    def pages(*roles: Role) -> list[str]:
        return visible_pages(UserSession("u", frozenset(roles), "t", 1e12), on)
    assert pages(Role.CLINICIAN) == ["text_search", "scan", "draft"]
    assert pages(Role.RESEARCHER) == ["text_search", "cohort"]
    assert pages(Role.INGEST) == []
    assert pages(Role.ADMIN) == ["text_search", "scan", "cohort", "draft"]
    assert visible_pages(None, on) == []
    assert visible_pages(None, Settings(auth_mode="off")) == ["text_search", "scan", "cohort", "draft"]


def test_login_page(secured: tuple[Settings, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit.testing.v1 import AppTest

    settings, passwords = secured
    for k, v in {"CMR_AUTH_MODE": "jwt", "CMR_AUTH_USERS_FILE": settings.auth_users_file,
                 "CMR_AUTH_SIGNING_KEY": settings.auth_signing_key, "CMR_DATA_DIR": settings.data_dir}.items():
        monkeypatch.setenv(k, str(v))
    views = Path(__file__).resolve().parents[3] / "ui" / "views"
    at = AppTest.from_file(str(views / "login.py"), default_timeout=30).run()
    at.text_input(key="login_user").input("clinician")
    at.text_input(key="login_password").input("wrong-password")
    at = next(b for b in at.button if b.label == "Log in").click().run()
    assert "Wrong user name or password" in at.error[0].value and "cmr_user" not in at.session_state
    at.text_input(key="login_password").input(passwords["clinician"])
    at = next(b for b in at.button if b.label == "Log in").click().run()
    assert not at.exception
    assert at.session_state["cmr_user"].roles == {Role.CLINICIAN}
