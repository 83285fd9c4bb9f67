"""Local login accounts of the one-machine stack (production logs in through the hospital's OIDC issuer):
user -> scrypt password hash + roles, in a 0600 JSON file."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cmr.security.roles import Role, parse_roles

_N, _R, _P = 2**14, 8, 1  # scrypt cost: ~50 ms per login on one core


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)


class UserStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            return dict(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return {}

    def set_user(self, name: str, password: str, roles: Iterable[Role | str]) -> None:
        if not name.strip() or len(password) < 8:
            raise ValueError("a user needs a name and a password of at least 8 characters")
        users = self._load()
        salt = secrets.token_bytes(16)
        users[name] = {"salt": salt.hex(), "hash": _hash(password, salt).hex(),
                       "roles": sorted(Role(r).value for r in roles)}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(users, indent=1))
        tmp.chmod(0o600)
        os.replace(tmp, self.path)  # atomic: a login never reads half a file

    def check(self, name: str, password: str) -> frozenset[Role] | None:
        """The user's roles when the password is right, else None (same work either way: no user enumeration)."""
        user = self._load().get(name)
        salt = bytes.fromhex(str(user["salt"])) if user else b"\0" * 16
        digest = _hash(password, salt)
        if user is None or not hmac.compare_digest(digest, bytes.fromhex(str(user["hash"]))):
            return None
        return parse_roles(user["roles"])
