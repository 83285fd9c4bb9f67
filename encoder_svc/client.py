"""Typed client of EncoderService, used by the CLI, the search and ingest services, the UI and benchmarks.

    with EncoderClient("127.0.0.1:50051") as enc:
        r = enc.encode_study("data/demo/studies/S0001")   # folder/zip uploaded in chunks
        v = enc.encode_texts(["dilated left ventricle"])  # [1, D]
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cmr.config import Settings, get_settings
from cmr.rpc.client import open_channel, wait_for_health
from cmr.rpc.messages import from_vector
from cmr.v1 import common_pb2, encoder_pb2, encoder_pb2_grpc

CHUNK_BYTES = 1024 * 1024  # well under the message limit, large enough that framing costs nothing


@dataclass(frozen=True)
class StudyEncoding:
    embedding: np.ndarray
    model: common_pb2.ModelInfo
    study: common_pb2.LoaderReport
    # LVEF, volumes, mass of the SAX cine; None when the server does not measure (CMR_MEASURE=false)
    measurements: common_pb2.CardiacMeasurements | None = None
    # The embedding's parts (attention-pooling models only; empty otherwise), summing to it
    parts: tuple[common_pb2.EmbeddingPart, ...] = field(default=())

    def part_arrays(self) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray] | None:
        """(names, kinds, [G, D] parts), or None when the model does not split its embeddings."""
        if not self.parts:
            return None
        return (tuple(p.name for p in self.parts), tuple(p.kind for p in self.parts),
                np.stack([from_vector(p.vector) for p in self.parts]))


def _study_files(path: Path) -> list[tuple[str, Path]]:
    if path.is_dir():
        return [(p.relative_to(path).as_posix(), p) for p in sorted(path.rglob("*")) if p.is_file()]
    if path.is_file():
        return [(path.name, path)]
    raise FileNotFoundError(f"no study at {path}")


def upload_requests(files: Sequence[tuple[str, Path | bytes]],
                    chunk_bytes: int = CHUNK_BYTES) -> Iterator[encoder_pb2.EncodeStudyRequest]:
    """Stream (name, path-or-bytes) as FileChunk messages, reading each file only as it is sent."""
    for name, content in files:
        data = content.read_bytes() if isinstance(content, Path) else content
        for off in range(0, max(len(data), 1), chunk_bytes):
            yield encoder_pb2.EncodeStudyRequest(
                chunk=encoder_pb2.FileChunk(file_name=name, data=data[off : off + chunk_bytes]))


class EncoderClient:
    def __init__(self, url: str | None = None, *, settings: Settings | None = None,
                 timeout_s: float | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.encoder_url
        self.timeout_s = timeout_s or self.settings.request_timeout_s
        self.channel = open_channel(self.url, self.settings)
        self.stub = encoder_pb2_grpc.EncoderServiceStub(self.channel)
        self._max_texts: int | None = None  # the server's limit, asked once when a batch needs it

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        wait_for_health(self.channel, "cmr.v1.EncoderService", timeout_s)

    def encode_study(self, study: str | os.PathLike[str] | bytes) -> StudyEncoding:
        """Upload a local study (folder, zip or DICOM file) or zip bytes, and encode it."""
        if isinstance(study, (bytes, bytearray)):
            files: list[tuple[str, Path | bytes]] = [("upload", bytes(study))]
        else:
            files = list(_study_files(Path(study)))
        return self._encode(upload_requests(files))

    def encode_study_ref(self, path: str | None = None, uri: str | None = None) -> StudyEncoding:
        """Encode a study the server reads itself (a path under its study roots, or a file:// URI)."""
        ref = common_pb2.StudyRef(path=path) if path is not None else common_pb2.StudyRef(uri=uri or "")
        return self._encode(iter([encoder_pb2.EncodeStudyRequest(ref=ref)]))

    def _encode(self, requests: Iterator[encoder_pb2.EncodeStudyRequest]) -> StudyEncoding:
        r = self.stub.EncodeStudy(requests, timeout=self.timeout_s)
        return StudyEncoding(from_vector(r.embedding), r.model, r.study,
                             r.measurements if r.HasField("measurements") else None, tuple(r.parts))

    def encode_exam(self, pixels: np.ndarray, mask: np.ndarray, spec_id: str = "",
                    measurements: Mapping[str, float | None] | None = None) -> np.ndarray:
        """uint8 pixels [T, H, W] and mask [T] (and the study's measurements by CardiacMeasurements field
        name, None = not measured) -> [D]."""
        return self.encode_exam_parts(pixels, mask, spec_id, measurements)[0]

    def encode_exam_parts(self, pixels: np.ndarray, mask: np.ndarray, spec_id: str = "",
                          measurements: Mapping[str, float | None] | None = None,
                          ) -> tuple[np.ndarray, tuple[common_pb2.EmbeddingPart, ...]]:
        """As encode_exam, with the embedding's parts (empty for a CLS-pooled model): what an upsert sends."""
        px = np.ascontiguousarray(pixels, dtype=np.uint8)
        exam = common_pb2.ExamTensor(frames=px.shape[0], height=px.shape[1], width=px.shape[2],
                                     pixels=px.tobytes(), mask=np.asarray(mask, np.uint8).tobytes(),
                                     spec_id=spec_id)
        given = {k: float(v) for k, v in (measurements or {}).items() if v is not None}
        r = self.stub.EncodeExam(encoder_pb2.EncodeExamRequest(exam=exam, measurements=given), timeout=self.timeout_s)
        return from_vector(r.embedding), tuple(r.parts)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """[N, D]; more texts than the server takes in one request are sent in several."""
        return self.encode_texts_versioned(texts)[0]

    def encode_texts_versioned(self, texts: Sequence[str]) -> tuple[np.ndarray, str]:
        """([N, D], the model version that made them). A batch split over several requests that straddles a
        model change (the encoder rolled meanwhile) raises RuntimeError rather than mixing two models."""
        texts = list(texts)
        if self._max_texts is None and len(texts) > 1:
            self._max_texts = self.model_info().max_texts_per_request or 1
        step = max(len(texts), 1) if self._max_texts is None else self._max_texts
        out, versions = [], set()
        for s in range(0, max(len(texts), 1), step):
            r = self.stub.EncodeText(encoder_pb2.EncodeTextRequest(texts=texts[s : s + step]), timeout=self.timeout_s)
            out += [from_vector(v) for v in r.embeddings]
            versions.add(r.model.version)
        if len(versions) > 1:
            raise RuntimeError(f"the encoder changed model while encoding one batch ({sorted(versions)}); retry")
        return np.stack(out), versions.pop()

    def model_info(self) -> encoder_pb2.GetModelInfoResponse:
        return self.stub.GetModelInfo(encoder_pb2.GetModelInfoRequest(), timeout=self.timeout_s)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> EncoderClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EncoderClient", "StudyEncoding", "upload_requests"]
