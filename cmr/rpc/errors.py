"""Exceptions that carry a gRPC status code, and the decorator that applies them to every handler.

Handlers raise `InvalidArgument("...")` & co.; `rpc_errors` aborts the call with that code and message. A study
the loader refuses is INVALID_ARGUMENT with the loader's reason. Anything unexpected is logged with its
traceback and answered INTERNAL with a short message, so one bad request never takes a service down and never
leaks a stack trace to the caller.
"""

from __future__ import annotations

import errno
import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import grpc

from cmr.dicom.errors import StudyLoadError, StudyTooLargeError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class FailedPrecondition(ServiceError):
    """The request is valid but the system is not in a state to run it (e.g. switching to an incomplete index
    generation); retrying without changing that state fails the same way."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class RemoteError(ServiceError):
    """A call to another service failed: keep its status code (UNAVAILABLE stays UNAVAILABLE)."""

    def __init__(self, what: str, exc: grpc.RpcError) -> None:
        super().__init__(f"{what}: {exc.details()}")
        self.code = exc.code()


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and caller-facing message for an exception raised inside a handler."""
    if isinstance(exc, ServiceError):
        return exc.code, exc.message
    if isinstance(exc, StudyTooLargeError):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, StudyLoadError):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):  # a full disk: retry later
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    return grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); the service logged the details"


def _abort(context: grpc.ServicerContext, method: str, exc: BaseException) -> None:
    if context.code() not in (None, grpc.StatusCode.OK):
        raise exc  # the handler already aborted with its own code: keep it
    code, message = status_of(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.exception("%s failed", method)
    else:
        log.info("%s -> %s: %s", method, code.name, message)
    context.abort(code, message)


def rpc_errors(handler: F) -> F:
    """Decorate a servicer method (unary or streaming response) so exceptions become status codes."""
    name = handler.__qualname__

    if inspect.isgeneratorfunction(handler):
        @functools.wraps(handler)
        def stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            try:
                yield from handler(self, request, context)
            except Exception as exc:  # noqa: BLE001 - the point: nothing escapes as a crash
                _abort(context, name, exc)
        return stream  # type: ignore[return-value]

    @functools.wraps(handler)
    def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return handler(self, request, context)
        except Exception as exc:  # noqa: BLE001
            _abort(context, name, exc)
    return unary  # type: ignore[return-value]
