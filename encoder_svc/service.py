"""The gRPC EncoderService: studies, exam tensors and texts -> CMR-CLIP vectors, through Triton."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import grpc
import numpy as np

from cmr.config import Settings
from cmr.dicom import Exam
from cmr.model.inference import MAX_TEXT_CHARS
from cmr.model.measurements import measurement_vector
from cmr.model.runtime import ModelIdentity
from cmr.quant.proto import to_proto as measurements_to_proto
from cmr.quant.volumes import MEASUREMENT_FIELDS
from cmr.rpc.errors import InvalidArgument, ResourceExhausted, rpc_errors
from cmr.rpc.messages import to_parts, to_vector
from cmr.rpc.study_loading import StudyLoaderPool
from cmr.rpc.uploads import read_upload
from cmr.v1 import common_pb2, encoder_pb2, encoder_pb2_grpc
from encoder_svc.triton_client import TritonEncoderClient
from encoder_svc.triton_models import IMAGE_MODEL, TEXT_MODEL, TRITON_MODEL_VERSION, TritonServingConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderLimits:
    max_upload_bytes: int
    max_files: int
    max_texts: int
    max_text_chars: int = MAX_TEXT_CHARS

    @classmethod
    def from_settings(cls, s: Settings) -> EncoderLimits:
        return cls(max_upload_bytes=s.max_upload_bytes, max_files=s.max_study_files,
                   max_texts=s.max_texts_per_request)


def loader_report(exam: Exam) -> common_pb2.LoaderReport:
    st = exam.study
    return common_pb2.LoaderReport(
        study_instance_uid=st.study_instance_uid, manufacturer=st.manufacturer, scanner_model=st.model,
        field_strength_t=st.field_strength or 0.0,
        study_date="" if st.study_date is None else st.study_date.isoformat(), n_files=st.n_files,
        series=[common_pb2.SeriesSummary(key=s.key, kind=s.kind, view=s.view, slices=s.slices, phases=s.phases,
                                         rows=s.rows, cols=s.cols, description=s.description, scanner=s.scanner)
                for s in exam.series],
        slots_present=[k for k, v in exam.present.items() if v], slots_missing=list(exam.missing),
        skipped=[common_pb2.SkippedFile(name=f.name, reason=f.reason) for f in st.skipped],
        warnings=list(st.warnings),
        header_quirks=[common_pb2.HeaderQuirk(message=q.message, count=q.count, files=q.files, example=q.example)
                       for q in st.header_quirks])


def exam_measurements(given: Mapping[str, float]) -> dict[str, float | None]:
    """EncodeExamRequest.measurements checked: CardiacMeasurements field names only; NaN (or inf) = not
    measured."""
    unknown = sorted(set(given) - set(MEASUREMENT_FIELDS))
    if unknown:
        raise InvalidArgument(f"unknown measurements {unknown[:5]}; known: {', '.join(MEASUREMENT_FIELDS)}")
    return {k: (float(v) if math.isfinite(v) else None) for k, v in given.items()}


class EncoderServicer(encoder_pb2_grpc.EncoderServiceServicer):
    def __init__(self, identity: ModelIdentity, triton: TritonEncoderClient, loader: StudyLoaderPool,
                 triton_config: TritonServingConfig, settings: Settings) -> None:
        self.identity = identity
        self.triton = triton
        self.loader = loader
        self.triton_config = triton_config
        self.settings = settings
        self.limits = EncoderLimits.from_settings(settings)

    def _model_info(self, triton_model: str) -> common_pb2.ModelInfo:
        return common_pb2.ModelInfo(name=self.identity.name, version=self.identity.version,
                                    embed_dim=self.identity.embed_dim, triton_model=triton_model,
                                    triton_model_version=str(TRITON_MODEL_VERSION))

    def _measurement_row(self, values: Mapping[str, float | None] | None) -> np.ndarray | None:
        """[1, M] measurement tokens for a model that reads them (NaN where not measured: its Triton model
        needs the input), None for one that does not (its Triton model has no such input)."""
        names = self.identity.measurement_names
        return measurement_vector(values, names)[None] if names else None

    def _encode_exam_arrays(self, pixels: np.ndarray, mask: np.ndarray,
                            values: Mapping[str, float | None] | None = None,
                            ) -> tuple[np.ndarray, list[common_pb2.EmbeddingPart]]:
        """The embedding [D] and, for an attention-pooling model, its parts (empty for a CLS model)."""
        meas = self._measurement_row(values)
        if not self.identity.explains:
            return self.triton.encode_exams(pixels[None], mask[None], meas)[0], []
        emb, parts = self.triton.encode_exam_parts(pixels[None], mask[None], meas)
        return emb[0], to_parts(self.identity.groups, self.identity.kinds, parts[0])

    @rpc_errors
    def EncodeStudy(self, request_iterator: Iterator[encoder_pb2.EncodeStudyRequest],
                    context: grpc.ServicerContext) -> encoder_pb2.EncodeStudyResponse:
        source = read_upload(request_iterator, max_bytes=self.limits.max_upload_bytes,
                             max_files=self.limits.max_files, roots=self.settings.study_roots)
        remaining = context.time_remaining()
        loaded = self.loader.load_measured(source, timeout_s=remaining)
        exam = loaded.exam
        measurements, values = None, None
        if loaded.measured is not None:
            if loaded.measured.error is not None:
                # The type only (the text could quote header values); the traceback at DEBUG.
                log.warning("measuring a study failed (%s); it was encoded without measurements",
                            loaded.measured.error)
                log.debug("measurement traceback (decoder worker):\n%s", loaded.measured.traceback)
            measurements = measurements_to_proto(loaded.measured.measurements)
            values = loaded.measured.measurements.values()
        # A model with measurement tokens reads what was measured (as cmr.model.inference.embed_studies does
        # offline), so the served vector is the offline one.
        vec, parts = self._encode_exam_arrays(exam.pixels_uint8(), exam.mask, values)
        return encoder_pb2.EncodeStudyResponse(embedding=to_vector(vec), model=self._model_info(IMAGE_MODEL),
                                               study=loader_report(exam), measurements=measurements,
                                               parts=parts)

    @rpc_errors
    def EncodeExam(self, request: encoder_pb2.EncodeExamRequest,
                   context: grpc.ServicerContext) -> encoder_pb2.EncodeExamResponse:
        pixels, mask = self.exam_arrays(request.exam)
        vec, parts = self._encode_exam_arrays(pixels, mask, exam_measurements(request.measurements))
        return encoder_pb2.EncodeExamResponse(embedding=to_vector(vec), model=self._model_info(IMAGE_MODEL),
                                              parts=parts)

    def exam_arrays(self, exam: common_pb2.ExamTensor) -> tuple[np.ndarray, np.ndarray]:
        """Check an ExamTensor against the model's exam spec; return pixels [T, H, W] and mask [T]."""
        spec = self.identity.spec
        want = (spec.length, spec.image_size, spec.image_size)
        if exam.spec_id and exam.spec_id != spec.spec_id:
            raise InvalidArgument(f"exam tensor built with exam spec {exam.spec_id}, the model uses "
                                  f"{spec.spec_id} (GetModelInfo.exam_spec_json describes it)")
        got = (exam.frames, exam.height, exam.width)
        if got != want:
            raise InvalidArgument(f"exam tensor of shape {got}, the model expects {want}")
        if len(exam.pixels) != int(np.prod(want)):
            raise InvalidArgument(f"pixels hold {len(exam.pixels)} bytes, expected {int(np.prod(want))} "
                                  "(uint8, frames*height*width)")
        if len(exam.mask) != want[0]:
            raise InvalidArgument(f"mask holds {len(exam.mask)} bytes, expected one per frame ({want[0]})")
        mask = np.frombuffer(exam.mask, np.uint8).astype(bool)
        if not mask.any():
            raise InvalidArgument("the exam mask marks every frame missing: nothing to encode")
        return np.frombuffer(exam.pixels, np.uint8).reshape(want), mask

    @rpc_errors
    def EncodeText(self, request: encoder_pb2.EncodeTextRequest,
                   context: grpc.ServicerContext) -> encoder_pb2.EncodeTextResponse:
        texts = [t.strip() for t in request.texts]
        if not texts:
            raise InvalidArgument("no texts given")
        if len(texts) > self.limits.max_texts:
            raise ResourceExhausted(f"{len(texts)} texts in one request; the limit is {self.limits.max_texts} "
                                    "(CMR_MAX_TEXTS_PER_REQUEST)")
        for i, t in enumerate(texts):
            if not t:
                raise InvalidArgument(f"text {i} is empty: give a phrase such as 'dilated LV with reduced "
                                      "ejection fraction'")
            if len(t) > self.limits.max_text_chars:
                raise ResourceExhausted(f"text {i} has {len(t)} characters; the limit is "
                                        f"{self.limits.max_text_chars}")
        vecs = self.triton.encode_texts(texts)
        return encoder_pb2.EncodeTextResponse(embeddings=[to_vector(v) for v in vecs],
                                              model=self._model_info(TEXT_MODEL))

    @rpc_errors
    def GetModelInfo(self, request: encoder_pb2.GetModelInfoRequest,
                     context: grpc.ServicerContext) -> encoder_pb2.GetModelInfoResponse:
        c = self.triton_config
        return encoder_pb2.GetModelInfoResponse(
            model=self._model_info(IMAGE_MODEL), spec_id=self.identity.spec_id,
            exam_spec_json=json.dumps(self.identity.spec.to_dict(), sort_keys=True),
            max_batch_size=c.max_batch_size, dynamic_batching=c.dynamic_batching,
            max_upload_bytes=self.limits.max_upload_bytes, max_texts_per_request=self.limits.max_texts,
            max_text_chars=self.limits.max_text_chars, device=self.identity.device,
            measurement_tokens=list(self.identity.measurement_names),
            parts=list(self.identity.groups) if self.identity.explains else [])
