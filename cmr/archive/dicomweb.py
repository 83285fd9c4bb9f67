"""Studies from a PACS over DICOMweb, for `cmr dataset import --dicomweb URL`: QIDO-RS lists the studies,
WADO-RS fetches each one (dicomweb-client), as pydicom datasets that go through the same import as the files
of a study folder.

One retry policy for every request (tenacity, exponential backoff): connection errors, timeouts and HTTP
5xx/408/429 are retried, other answers are not (a 404 or 403 will not change). dicomweb-client's own retrying
is turned off so the two do not multiply. A study that still fails is a DicomwebError with a one-line reason,
which the import records as that study's exclusion; failing to list the studies at all ends the import with
that line.

Credentials come from the settings (CMR_ARCHIVE_DICOMWEB_TOKEN, or _USERNAME and _PASSWORD) or from the URL's
user-info; they never reach the dataset card, the journal or a message: `public_url` is the URL without them
(and without a query string, where a token could hide).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from cmr.config import Settings

# Asked for in the stored transfer syntax: the server need not transcode, and the pixels are the ones it holds.
_ANY_TRANSFER_SYNTAX = (("application/dicom", "*"),)
_STUDY_INSTANCE_UID = "0020000D"
QIDO_PAGE = 500
_RETRIED_STATUS = (408, 429)
T = TypeVar("T")


class DicomwebError(RuntimeError):
    """A DICOMweb request that failed for good (after the retries): `reason` is one line, without credentials."""

    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True)
class DicomwebSource:
    """Where and how to reach the DICOMweb server; plain data, so it travels to the import's worker processes."""

    url: str  # the service root (e.g. http://pacs:8042/dicom-web), without credentials
    timeout_s: float = 60.0
    attempts: int = 4
    backoff_s: float = 1.0
    backoff_max_s: float = 16.0
    ca_bundle: Path | None = None
    token: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, url: str, settings: Settings, ca_bundle: Path | None = None) -> DicomwebSource:
        """The source for `url`; user:password in the URL override the settings' basic-auth credentials."""
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--dicomweb must be an http(s) URL of a DICOMweb service root, not {public_url(url)!r}")
        ca = ca_bundle or settings.archive_dicomweb_ca
        if ca is not None and not ca.is_file():
            raise FileNotFoundError(f"{ca}: no such CA bundle (--dicomweb-ca / CMR_ARCHIVE_DICOMWEB_CA)")
        token = settings.archive_dicomweb_token
        if parts.username:  # the URL's own user goes with the URL's own password (or none)
            username, password = unquote(parts.username), unquote(parts.password or "") or None
        else:
            secret = settings.archive_dicomweb_password
            username, password = settings.archive_dicomweb_username, secret.get_secret_value() if secret else None
        return cls(url=public_url(url), timeout_s=settings.archive_dicomweb_timeout_s,
                   attempts=settings.archive_dicomweb_attempts, backoff_s=settings.archive_dicomweb_backoff_s,
                   backoff_max_s=settings.archive_dicomweb_backoff_max_s, ca_bundle=ca,
                   token=token.get_secret_value() if token else None, username=username, password=password)


def public_url(url: str) -> str:
    """`url` without user-info, query and fragment: what the card and the messages may show."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class _CaBundleAdapter(HTTPAdapter):
    """Verifies servers against one CA bundle. Not `session.verify`: requests lets REQUESTS_CA_BUNDLE (set on many
    machines) override a session's verify, so the configured CA would be silently ignored."""

    def __init__(self, ca_bundle: Path) -> None:
        super().__init__()
        self._ca_bundle = str(ca_bundle)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs["verify"] = self._ca_bundle
        return super().send(request, **kwargs)


# Clients by (process id, source). The process id is part of the key because the import's workers are forked
# from the process that listed the studies: a child must never reuse its parent's kept-alive connections (two
# processes reading one socket would interleave answers).
_CLIENTS: dict[tuple[int, DicomwebSource], DICOMwebClient] = {}


def client_for(source: DicomwebSource) -> DICOMwebClient:
    """One client (one HTTP session, its connections kept alive) per source and process."""
    key = (os.getpid(), source)
    if key not in _CLIENTS:
        _CLIENTS.clear()  # a parent's clients (after a fork), or another source's
        _CLIENTS[key] = _new_client(source)
    return _CLIENTS[key]


def _new_client(source: DicomwebSource) -> DICOMwebClient:
    session = requests.Session()
    if source.token:
        session.headers["Authorization"] = f"Bearer {source.token}"
    elif source.username:
        session.auth = (source.username, source.password or "")
    if source.ca_bundle is not None:
        session.mount("https://", _CaBundleAdapter(source.ca_bundle))
    client = DICOMwebClient(source.url, session=session, timeout=source.timeout_s)
    client.set_http_retry_params(retry=False)  # ours (tenacity) is the one retry policy
    return client


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status >= 500 or status in _RETRIED_STATUS
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # an untrusted certificate stays untrusted
    return isinstance(exc, (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError))


def describe(exc: BaseException, timeout_s: float) -> str:
    """One line for a failed request, naming no credential and no server-sent text."""
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return f"HTTP {status}" + (" (study not found)" if status == 404 else
                                   " (credentials refused: CMR_ARCHIVE_DICOMWEB_TOKEN / _USERNAME / _PASSWORD)"
                                   if status in (401, 403) else "")
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout_s:g} s (CMR_ARCHIVE_DICOMWEB_TIMEOUT_S)"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS certificate not trusted (--dicomweb-ca / CMR_ARCHIVE_DICOMWEB_CA)"
    if isinstance(exc, requests.ConnectionError):
        return "cannot connect (refused, unreachable or dropped)"
    if isinstance(exc, InvalidDicomError):
        return "a part of the WADO-RS answer is not DICOM"
    if isinstance(exc, ValueError):  # dicomweb-client's checks of the media type, or JSON that does not parse
        return f"not a DICOMweb answer ({(str(exc).splitlines() or [''])[0][:120]})"
    return type(exc).__name__


def _with_retries(source: DicomwebSource, what: str, call: Callable[[], T],
                  sleep: Callable[[float], None] = time.sleep) -> T:
    retrying = Retrying(stop=stop_after_attempt(source.attempts),
                        wait=wait_exponential(multiplier=source.backoff_s, max=source.backoff_max_s),
                        retry=retry_if_exception(_transient), sleep=sleep, reraise=True)
    try:
        return retrying(call)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line; a bad study is never fatal
        tries = retrying.statistics.get("attempt_number", 1)
        transient = _transient(exc)
        after = f" after {tries} tries" if tries > 1 else ""
        raise DicomwebError(f"{what}: {describe(exc, source.timeout_s)}{after}", transient=transient) from exc


def _uid(item: dict[str, Any]) -> str | None:
    values = (item.get(_STUDY_INSTANCE_UID) or {}).get("Value") or []
    return str(values[0]) if values else None


def list_studies(source: DicomwebSource) -> list[str]:
    """StudyInstanceUIDs on the server, sorted (QIDO-RS /studies, paged with limit/offset).

    Paging stops at an empty page or one with nothing new: that ends the loop both for a server that caps its
    pages below QIDO_PAGE and for one that ignores `offset` (dicomweb-client's get_remaining would never stop).
    """
    client = client_for(source)
    uids: set[str] = set()
    offset = 0
    while True:
        page = _with_retries(source, f"cannot list the studies at {source.url} (QIDO-RS)",
                             partial(client.search_for_studies, limit=QIDO_PAGE, offset=offset,
                                     fields=["StudyInstanceUID"]))
        new = {u for u in map(_uid, page) if u} - uids
        if not new:
            return sorted(uids)
        uids |= new
        offset += len(page)


def _instance_order(ds: Dataset) -> tuple[int, str, int, str]:
    def number(keyword: str) -> int:
        try:
            return int(ds.get(keyword) or 0)
        except (TypeError, ValueError):
            return 0
    return (number("SeriesNumber"), str(ds.get("SeriesInstanceUID", "")), number("InstanceNumber"),
            str(ds.get("SOPInstanceUID", "")))


def fetch_study(source: DicomwebSource, study_uid: str) -> list[Dataset]:
    """Every instance of one study (WADO-RS), in a stable order (series, instance number): a refetched study
    is written as the same files. Raises DicomwebError (the exclusion's reason)."""
    client = client_for(source)
    datasets = _with_retries(source, "WADO-RS fetch failed",
                             lambda: client.retrieve_study(study_uid, media_types=_ANY_TRANSFER_SYNTAX))
    if not datasets:
        raise DicomwebError("WADO-RS fetch failed: the study has no instances", transient=False)
    return sorted(datasets, key=_instance_order)


__all__ = ["DicomwebError", "DicomwebSource", "QIDO_PAGE", "client_for", "describe", "fetch_study", "list_studies",
           "public_url"]
