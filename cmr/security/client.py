"""The client half of identity: every call a CMR client makes carries a bearer token.

Inside an RPC handler the caller's own token is forwarded (the search service encodes a clinician's query as
that clinician, so roles and the audit trail follow the person, not the service); elsewhere the process's own
token is sent (CMR_AUTH_TOKEN, or CMR_AUTH_TOKEN_FILE re-read when it changes: rotated service tokens).
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from cmr.config import Settings
from cmr.security.interceptor import current_identity


class TokenSource:
    def __init__(self, token: str | None = None, token_file: Path | None = None) -> None:
        self._token, self._file = token, token_file
        self._cached: tuple[float, str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSource:
        return cls(settings.auth_token, settings.auth_token_file)

    def own_token(self) -> str | None:
        if self._token:
            return self._token
        if self._file is None:
            return None
        try:
            mtime = os.stat(self._file).st_mtime
        except OSError:
            return None
        with self._lock:
            if self._cached is None or self._cached[0] != mtime:
                self._cached = (mtime, Path(self._file).read_text().strip())
            return self._cached[1]

    def token(self) -> str | None:
        caller = current_identity()
        if caller is not None and caller.token:
            return caller.token
        return self.own_token()


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                     "wait_for_ready", "compression")), grpc.ClientCallDetails):
    pass


class BearerTokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                             grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def _with_token(self, details: Any) -> Any:
        token = self.source.token()
        if not token:
            return details
        metadata = [(k, v) for k, v in (details.metadata or ()) if k.lower() != "authorization"]
        metadata.append(("authorization", f"Bearer {token}"))
        return _Details(details.method, details.timeout, metadata, details.credentials,
                        getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call
