"""How every service names a study without its UID: the study key, and the index point id derived from it.

The StudyInstanceUID never leaves the service that reads the study: it becomes a keyed hash (`study_key`,
HMAC-SHA256 with a server secret), and the point id is a UUID derived from that key, so ingesting the same
study again overwrites its point instead of adding a second one. The search index, the ingest events, the
generator's study locator and the UI's previews all name studies this way.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from typing import Final

STUDY_KEY_HEX_CHARS: Final = 32  # 128 bits of the HMAC: collisions are not a concern at hospital scale
_STUDY_KEY = re.compile(rf"^[0-9a-f]{{{STUDY_KEY_HEX_CHARS}}}$")
_DICOM_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
# A fixed namespace for point ids: uuid5 of the study key under it is the same on every machine.
POINT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "urn:cmr-search:study-key")


def is_study_key(value: object) -> bool:
    """Whether `value` has the form of a study key (STUDY_KEY_HEX_CHARS lower-case hex characters)."""
    return isinstance(value, str) and _STUDY_KEY.match(value) is not None


def study_key(study_instance_uid: str, secret: str) -> str:
    """HMAC-SHA256(secret, StudyInstanceUID) as hex, first 32 characters: stable for one secret, and without
    the secret it cannot be reversed or recomputed from a guessed UID."""
    if not isinstance(secret, str) or not secret:
        raise ValueError("study key secret must be a non-empty string (settings.study_key_secret)")
    uid = study_instance_uid.strip() if isinstance(study_instance_uid, str) else ""
    if not uid or len(uid) > 64 or not _DICOM_UID.match(uid):
        raise ValueError(f"not a DICOM StudyInstanceUID (digits and dots, at most 64 characters): "
                         f"{study_instance_uid!r}")
    digest = hmac.new(secret.encode(), uid.encode("ascii"), hashlib.sha256).hexdigest()
    return digest[:STUDY_KEY_HEX_CHARS]


def point_id(key: str) -> str:
    """The point id of an exam in every collection: uuid5 of its study key (deterministic)."""
    if not is_study_key(key):
        raise ValueError(f"study key must be {STUDY_KEY_HEX_CHARS} lower-case hex characters, got {key!r}")
    return str(uuid.uuid5(POINT_ID_NAMESPACE, key))


__all__ = ["POINT_ID_NAMESPACE", "STUDY_KEY_HEX_CHARS", "is_study_key", "point_id", "study_key"]
