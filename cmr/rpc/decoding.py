"""Requests whose bytes are not the declared message answer INVALID_ARGUMENT, not INTERNAL.

grpcio answers a request that fails to deserialise (garbage bytes, a string field holding invalid UTF-8, a
truncated varint) with INTERNAL "Exception deserializing request!", which reads like a server bug and tells the
caller nothing. Found by fuzzing (bench/fuzz). `checked_decoding(add_X_to_server)` registers a servicer with
deserialisers that never raise: an undecodable request reaches a thin wrapper that aborts the call with
INVALID_ARGUMENT naming the message type, before the servicer sees it. Works below any server interceptor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc


class Undecodable:
    """Stands in for a request that did not parse."""

    def __init__(self, message: str, exc: Exception) -> None:
        self.detail = f"the request is not a valid {message} message ({type(exc).__name__}: " \
                      f"{' '.join(str(exc).split())[:200] or 'unparseable bytes'})"


def _message_name(deserializer: Callable[[bytes], Any]) -> str:
    cls = getattr(deserializer, "__self__", None)
    descriptor = getattr(cls, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "protobuf"))


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    name = _message_name(deserializer)

    def parse(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError, UnicodeDecodeError, ...: all mean bad bytes
            return Undecodable(name, exc)
    return parse


def _checked_iterator(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
    for request in requests:
        if isinstance(request, Undecodable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.detail)
        yield request


def _wrap(handler: grpc.RpcMethodHandler | None) -> grpc.RpcMethodHandler | None:
    if handler is None or not hasattr(handler, "_replace"):
        return handler
    if handler.request_streaming:
        behaviour = handler.stream_unary or handler.stream_stream

        def streamed(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return behaviour(_checked_iterator(requests, context), context)
        field = "stream_unary" if handler.stream_unary else "stream_stream"
    else:
        behaviour = handler.unary_unary or handler.unary_stream

        def streamed(request: Any, context: grpc.ServicerContext) -> Any:  # type: ignore[misc]
            if isinstance(request, Undecodable):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.detail)
            return behaviour(request, context)
        field = "unary_unary" if handler.unary_unary else "unary_stream"
    return handler._replace(request_deserializer=_safe(handler.request_deserializer), **{field: streamed})


class _GenericHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return _wrap(self._inner.service(handler_call_details))


class _Registrar:
    """What generated add_*_to_server functions call on a server, with every method handler wrapped."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(tuple(_GenericHandler(h) for h in handlers))

    def add_registered_method_handlers(self, service_name: str, handlers: dict[str, Any]) -> None:
        self._server.add_registered_method_handlers(service_name, {m: _wrap(h) for m, h in handlers.items()})


def checked_decoding(add_to_server: Callable[[Any, Any], None]) -> Callable[[Any, grpc.Server], None]:
    """`add_XServicer_to_server` whose handlers answer undecodable requests with INVALID_ARGUMENT."""
    def add(servicer: Any, server: grpc.Server) -> None:
        add_to_server(servicer, _Registrar(server))
    return add


__all__ = ["Undecodable", "checked_decoding"]
