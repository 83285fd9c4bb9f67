"""Exceptions -> gRPC status codes, through a real in-process gRPC server."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cmr.config import Settings
from cmr.dicom.errors import NoCineError, StudyTooLargeError
from cmr.rpc import GrpcServer, ServiceBinding, rpc_errors
from cmr.rpc.errors import InvalidArgument, NotFound, Unavailable, status_of
from cmr.v1 import encoder_pb2, encoder_pb2_grpc


@pytest.mark.parametrize("exc, code", [
    (InvalidArgument("x"), grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound("x"), grpc.StatusCode.NOT_FOUND),
    (Unavailable("x"), grpc.StatusCode.UNAVAILABLE),
    (NoCineError("no cine series"), grpc.StatusCode.INVALID_ARGUMENT),
    (StudyTooLargeError("too big"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (KeyError("secret internals"), grpc.StatusCode.INTERNAL),
])
def test_status_of(exc: Exception, code: grpc.StatusCode) -> None:
    got, message = status_of(exc)
    assert got == code
    assert "secret internals" not in message  # internal errors never leak their text


class _Failing(encoder_pb2_grpc.EncoderServiceServicer):
    """Raises whatever the request's first text names."""

    ERRORS = {"invalid": InvalidArgument("bad phrase"), "crash": ZeroDivisionError("boom"),
              "study": NoCineError("no cine series found")}

    @rpc_errors
    def EncodeText(self, request, context):  # noqa: ANN001, ANN201, N802
        raise self.ERRORS[request.texts[0]]

    @rpc_errors
    def EncodeStudy(self, request_iterator: Iterator, context):  # noqa: ANN001, ANN201, N802
        list(request_iterator)
        raise NotFound("nothing here")


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    binding = ServiceBinding(encoder_pb2_grpc.add_EncoderServiceServicer_to_server, "cmr.v1.EncoderService",
                             _Failing())
    with GrpcServer([binding], port=0, settings=Settings(grpc_workers=2)) as server:
        with grpc.insecure_channel(server.address) as ch:
            yield ch


@pytest.mark.parametrize("text, code, words", [
    ("invalid", grpc.StatusCode.INVALID_ARGUMENT, "bad phrase"),
    ("study", grpc.StatusCode.INVALID_ARGUMENT, "no cine series found"),
    ("crash", grpc.StatusCode.INTERNAL, "ZeroDivisionError"),
])
def test_handler_errors_become_codes_and_the_server_lives(channel: grpc.Channel, text: str,
                                                          code: grpc.StatusCode, words: str) -> None:
    stub = encoder_pb2_grpc.EncoderServiceStub(channel)
    with pytest.raises(grpc.RpcError) as exc:
        stub.EncodeText(encoder_pb2.EncodeTextRequest(texts=[text]), timeout=5)
    assert exc.value.code() == code and words in exc.value.details()
    assert "boom" not in exc.value.details()
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_stream_handler_errors(channel: grpc.Channel) -> None:
    stub = encoder_pb2_grpc.EncoderServiceStub(channel)
    with pytest.raises(grpc.RpcError) as exc:
        stub.EncodeStudy(iter([encoder_pb2.EncodeStudyRequest()]), timeout=5)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_port_in_use_is_refused() -> None:
    binding = ServiceBinding(encoder_pb2_grpc.add_EncoderServiceServicer_to_server, "cmr.v1.EncoderService",
                             _Failing())
    with GrpcServer([binding], port=0, settings=Settings(grpc_workers=1)) as first:
        with pytest.raises((OSError, RuntimeError)):
            GrpcServer([binding], port=first.port, settings=Settings(grpc_workers=1))
