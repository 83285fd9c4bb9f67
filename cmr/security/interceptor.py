"""The server interceptor every CMR gRPC service runs: who is calling (bearer token), may they (role), not too
often (per-identity rate limit), and an audit entry for what they did.

A refused call gets UNAUTHENTICATED (no valid token), PERMISSION_DENIED (outside the caller's role) or
RESOURCE_EXHAUSTED (over the rate limit) and never reaches the handler. Inside a handler, `current_identity()` is
the caller, and service clients forward the caller's token to the services they call (cmr.security.client).
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from cmr.config import Settings
from cmr.security.actions import AUDITED, reads_identified_study, summarize
from cmr.security.audit import AuditEntry, AuditLog
from cmr.security.ratelimit import RateLimiter
from cmr.security.roles import ALL_ROLES, IDENTIFIED_DATA_ROLES, Role, allowed_roles
from cmr.security.tokens import AuthError, Identity, TokenVerifier

log = logging.getLogger(__name__)

ANONYMOUS = Identity(subject="anonymous", roles=ALL_ROLES, token="", expires_at=math.inf)
_current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("cmr_identity", default=None)


def current_identity() -> Identity | None:
    """The caller of the RPC this thread is handling (None outside a handler)."""
    return _current.get()


def bearer_token(metadata: tuple[tuple[str, str | bytes], ...] | None) -> str:
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


class Refusal(Exception):
    """A call turned away before its handler; `identity` is the verified caller (None: no valid token)."""

    def __init__(self, code: grpc.StatusCode, message: str, identity: Identity | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.identity = code, message, identity


class SecurityInterceptor(grpc.ServerInterceptor):
    def __init__(self, settings: Settings, service: str, *, verifier: TokenVerifier | None = None,
                 audit: AuditLog | None = None, limiter: RateLimiter | None = None) -> None:
        self.enabled = settings.auth_mode == "jwt"
        self.verifier = verifier or (TokenVerifier.from_settings(settings) if self.enabled else None)
        self.audit = audit if audit is not None else AuditLog.from_settings(settings, service)
        self.limiter = limiter or RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        self.exempt = frozenset(Role(r) for r in settings.rate_limit_exempt_roles if r in {x.value for x in Role})
        if not self.enabled:
            log.warning("%s: CMR_AUTH_MODE=off - every caller is trusted as admin (closed test machines only)",
                        service)

    # --- deciding -------------------------------------------------------------------------------------------------

    def _admit(self, method: str, metadata: Any) -> Identity:
        if not self.enabled:
            return ANONYMOUS
        try:
            identity = self.verifier.verify(bearer_token(metadata))  # type: ignore[union-attr]
        except AuthError as exc:
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, f"{exc}; send 'authorization: Bearer <token>'") from None
        allowed = allowed_roles(method) or ALL_ROLES
        if not identity.roles & allowed:
            have = ", ".join(identity.role_names) or "no known role"
            need = ", ".join(sorted(r.value for r in allowed))
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED,
                          f"{method.rsplit('/', 1)[-1]} is not allowed for {have} (allowed: {need})", identity)
        if not identity.roles & self.exempt:
            wait = self.limiter.try_acquire(identity.subject)
            if wait > 0:
                raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"rate limit of {self.limiter.rate:g} requests/s per identity reached; "
                              f"retry in {wait:.2f} s", identity)
        return identity

    @staticmethod
    def _check_request(identity: Identity, request: Any) -> None:
        if not identity.roles & IDENTIFIED_DATA_ROLES and reads_identified_study(request):
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, "researchers work on the de-identified index: give "
                          "a study key or an embedding, not a study in storage", identity)

    # --- interceptor ------------------------------------------------------------------------------------------------

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        method = details.method
        if handler is None or allowed_roles(method) is None:
            return handler
        try:
            identity = self._admit(method, details.invocation_metadata)
        except Refusal as refusal:
            return self._refusing(handler, method, refusal)
        return self._wrapped(handler, method, identity)

    def _entry(self, method: str, identity: Identity | None, context: Any, status: str, request: Any = None,
               results: int | None = None, detail: str = "") -> AuditEntry:
        audited = AUDITED.get(method)
        return AuditEntry(service="", action=audited.action if audited else method.rsplit("/", 1)[-1],
                          method=method, subject=identity.subject if identity else "-",
                          roles=identity.role_names if identity else [], status=status, results=results,
                          what=summarize(method, request), detail=detail[:300], peer=_peer(context))

    def _record(self, entry: AuditEntry) -> None:
        try:
            self.audit.append(entry)
        except OSError:
            log.exception("audit entry could not be written")  # the call's outcome is already decided

    def _refusing(self, handler: Any, method: str, refusal: Refusal) -> Any:
        def refuse(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            self._record(self._entry(method, refusal.identity, context, refusal.code.name, detail=refusal.message))
            context.abort(refusal.code, refusal.message)
        return _same_kind(handler, refuse)

    def _wrapped(self, handler: Any, method: str, identity: Identity) -> Any:
        audited = method in AUDITED
        inner = (handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream)
        counter = AUDITED[method] if audited else None

        def outcome(context: Any) -> str:
            code = context.code() if hasattr(context, "code") else None
            return (code or grpc.StatusCode.OK).name

        if not handler.response_streaming:
            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                token = _current.set(identity)
                req = None if handler.request_streaming else request
                try:
                    self._check_request(identity, req)
                    response = inner(request, context)
                except Refusal as refusal:
                    self._record(self._entry(method, identity, context, refusal.code.name, req,
                                             detail=refusal.message))
                    context.abort(refusal.code, refusal.message)
                except BaseException:
                    if audited:
                        self._record(self._entry(method, identity, context, outcome(context), req,
                                                 detail=_details(context)))
                    raise
                finally:
                    _current.reset(token)
                if audited:
                    n = counter.count(response) if counter and counter.count and response is not None else None
                    self._record(self._entry(method, identity, context, outcome(context), req, n))
                return response
            return _same_kind(handler, unary)

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            token = _current.set(identity)
            req = None if handler.request_streaming else request
            n, status, recorded = 0, "OK", False
            try:
                self._check_request(identity, req)
                for message in inner(request, context):
                    n += len(message.data) if counter and counter.count_stream_bytes else 1
                    yield message
                status = outcome(context)
            except Refusal as refusal:
                status = refusal.code.name
                self._record(self._entry(method, identity, context, status, req, detail=refusal.message))
                recorded = True
                context.abort(refusal.code, refusal.message)
            except GeneratorExit:
                status = "CANCELLED"
                raise
            except BaseException:
                status = outcome(context)
                raise
            finally:
                try:
                    _current.reset(token)
                except ValueError:
                    pass  # a generator closed from another thread (garbage collection): nothing to restore there
                if audited and not recorded:
                    self._record(self._entry(method, identity, context, status, req, n, detail=_details(context)))
        return _same_kind(handler, stream)


def _same_kind(handler: Any, behavior: Callable[..., Any]) -> Any:
    make = {(False, False): grpc.unary_unary_rpc_method_handler, (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler, (True, True): grpc.stream_stream_rpc_method_handler}
    return make[(handler.request_streaming, handler.response_streaming)](
        behavior, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)


def _peer(context: Any) -> str:
    try:
        return str(context.peer())
    except Exception:  # noqa: BLE001 - a peer address is nice to have
        return ""


def _details(context: Any) -> str:
    try:
        return str(context.details() or "")
    except Exception:  # noqa: BLE001
        return ""

