"""Regression tests of what fuzzing found (the inputs themselves are also in tests/fuzz_corpus as crash-*.bin):
zero-filled DICOM cost ~1 s of CPU per MB in pydicom (a 2 MB zip bomb of zeros kept a decoder busy for
minutes); a StudyRef path with NUL or a too-long name raised ValueError/OSError (INTERNAL); and bytes that do
not parse as the request message were INTERNAL "Exception deserializing request!" from grpcio."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest

from cmr.dicom import CorruptFileError, NotDicomError, load_study
from cmr.rpc.decoding import checked_decoding
from cmr.rpc.errors import InvalidArgument, PermissionDenied
from cmr.rpc.uploads import resolve_ref
from cmr.v1 import common_pb2, encoder_pb2, encoder_pb2_grpc, search_pb2, search_pb2_grpc
from realdata_paths import SUNNYBROOK_MIDSLICE
from search_svc.store.base import as_vector

CINE_FILE = SUNNYBROOK_MIDSLICE / "101.dcm"


@pytest.mark.parametrize("data", [b"\x00" * (4 << 20), b"\x00" * 128 + b"DICM" + b"\x00" * (4 << 20)],
                         ids=["zeros", "zeros-after-preamble"])
def test_zero_filled_file_is_refused_before_parsing(data: bytes) -> None:
    with pytest.raises(NotDicomError, match="zero-filled"):
        load_study(data)


def test_a_flood_of_tiny_elements_is_corrupt() -> None:
    with pytest.raises(CorruptFileError, match="header elements"):
        load_study(b"\x08\x00\x00\x00\x00\x00\x00\x00" * 30_000)


def test_zero_padding_after_a_real_image_still_loads() -> None:
    study = load_study(CINE_FILE.read_bytes() + b"\x00" * 4096)
    assert study.series and study.series[0].pixels.shape[-2:] == (256, 256)


@pytest.mark.parametrize("name", ["study\x00x", "a" * 300], ids=["nul", "too-long"])
def test_unusable_study_paths_are_invalid_argument(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidArgument):
        resolve_ref(common_pb2.StudyRef(path=str(tmp_path / name)), [tmp_path])
    with pytest.raises(PermissionDenied):
        resolve_ref(common_pb2.StudyRef(path="/etc"), [tmp_path])


class _Search(search_pb2_grpc.SearchServiceServicer):
    def Stats(self, request: search_pb2.StatsRequest, context: grpc.ServicerContext) -> search_pb2.StatsResponse:
        return search_pb2.StatsResponse(exams=1)

    def ExportCohort(self, request: search_pb2.ExportCohortRequest,
                     context: grpc.ServicerContext) -> Iterator[search_pb2.ExportChunk]:
        yield search_pb2.ExportChunk(data=b"x")


class _Encoder(encoder_pb2_grpc.EncoderServiceServicer):
    def EncodeStudy(self, requests: Iterator[encoder_pb2.EncodeStudyRequest],
                    context: grpc.ServicerContext) -> encoder_pb2.EncodeStudyResponse:
        return encoder_pb2.EncodeStudyResponse(study=common_pb2.LoaderReport(n_files=sum(1 for _ in requests)))


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    server = grpc.server(futures.ThreadPoolExecutor(2))
    checked_decoding(search_pb2_grpc.add_SearchServiceServicer_to_server)(_Search(), server)
    checked_decoding(encoder_pb2_grpc.add_EncoderServiceServicer_to_server)(_Encoder(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        yield ch
    server.stop(0)


def _refused(call: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a valid cmr.v1." in err.value.details()


def test_undecodable_requests_are_invalid_argument(channel: grpc.Channel) -> None:
    garbage = b"\xff\xff\xff"
    _refused(lambda: channel.unary_unary("/cmr.v1.SearchService/Stats")(garbage, timeout=10))
    _refused(lambda: list(channel.unary_stream("/cmr.v1.SearchService/ExportCohort")(garbage, timeout=10)))
    _refused(lambda: channel.stream_unary("/cmr.v1.EncoderService/EncodeStudy")(iter([b"", garbage]), timeout=10))
    # a string field (GetRequest.study_key) holding invalid UTF-8: decoded before the (unimplemented) handler
    _refused(lambda: channel.unary_unary("/cmr.v1.SearchService/Get")(b"\x0a\x02\xff\xfe", timeout=10))


def test_valid_requests_still_reach_the_servicer(channel: grpc.Channel) -> None:
    assert channel.unary_unary("/cmr.v1.SearchService/Stats")(b"", timeout=10) == \
        search_pb2.StatsResponse(exams=1).SerializeToString()
    assert list(channel.unary_stream("/cmr.v1.SearchService/ExportCohort")(b"", timeout=10)) == [b"\n\x01x"]
    reply = channel.stream_unary("/cmr.v1.EncoderService/EncodeStudy")(iter([b"", b""]), timeout=10)
    assert encoder_pb2.EncodeStudyResponse.FromString(reply).study.n_files == 2


@pytest.mark.parametrize("vector", [[1e30] * 8, [0.0] * 7 + [1.8e-40]], ids=["overflows", "denormal"])
def test_vectors_without_a_usable_norm_are_refused(vector: list[float]) -> None:
    """A query or stored vector whose float32 norm overflows or underflows normalised to zeros: the store's
    ValueError was INTERNAL for SearchByStudy/ZeroShot/GenerateReport, and Upsert stored zeros."""
    with pytest.raises(ValueError, match="too large|all zeros"):
        as_vector(np.asarray(vector, np.float32))
