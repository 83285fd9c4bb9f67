"""EncoderService against a real Triton Inference Server started by the fixture: the vectors equal the
in-process model's, bad input gets the right status code and a reason, and the service keeps answering."""

from __future__ import annotations

import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from cmr.dicom import ExamSpec, load_study
from cmr.model.checkpoint import DEFAULT_CHECKPOINT, load_model
from cmr.model.clip import CMRCLIP
from cmr.model.inference import embed_exam_arrays, embed_texts
from cmr.model.measurements import measurement_vector
from cmr.quant.segmenter import load_segmenter
from cmr.model.runtime import checkpoint_version
from cmr.quant.volumes import MEASUREMENT_FIELDS
from cmr.v1 import common_pb2, encoder_pb2, encoder_pb2_grpc
from realdata_paths import SUNNYBROOK_CONTOURED
from service_fixtures import MAX_MESSAGE, MAX_UPLOAD, SUNNYBROOK_CINE, SUNNYBROOK_LOCALIZERS
from encoder_svc.client import EncoderClient, upload_requests

ATOL = 2e-4  # batched vs single forwards differ in float rounding only


@pytest.fixture(scope="module")
def model() -> CMRCLIP:
    return load_model()


def _in_process(model: CMRCLIP, study: Path) -> np.ndarray:
    exam = load_study(study).to_exam(model.spec)
    return embed_exam_arrays(model, exam.pixels_uint8()[None], exam.mask[None])[0]


def _code(exc: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc.value.code()  # type: ignore[no-any-return]


def _assert_alive(encoder: EncoderClient) -> None:
    health = health_pb2_grpc.HealthStub(encoder.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="cmr.v1.EncoderService"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert encoder.encode_texts(["normal study"]).shape == (1, 256)


# --- good input -----------------------------------------------------------------------------------------------

def test_synthetic_study_upload_equals_in_process_model(encoder: EncoderClient, model: CMRCLIP,
                                                        studies: list[Path]) -> None:
    r = encoder.encode_study(studies[0])
    np.testing.assert_allclose(r.embedding, _in_process(model, studies[0]), atol=ATOL)
    assert abs(np.linalg.norm(r.embedding) - 1) < 1e-4
    # The shipped model pools by attention: the answer splits into its views and numbers, summing to the vector.
    arrays = r.part_arrays()
    assert arrays is not None and arrays[0] == tuple(model.contribution_groups)
    np.testing.assert_allclose(arrays[2].sum(axis=0), r.embedding, atol=1e-4)
    assert r.model.version == checkpoint_version(DEFAULT_CHECKPOINT)
    assert r.model.triton_model == "cmr_clip_image" and r.model.triton_model_version == "1"
    assert "cine_sax" in r.study.slots_present and r.study.manufacturer
    assert {s.kind for s in r.study.series} >= {"cine"}


def test_sunnybrook_study_equals_in_process_model(encoder: EncoderClient, model: CMRCLIP) -> None:
    r = encoder.encode_study(SUNNYBROOK_CINE)
    np.testing.assert_allclose(r.embedding, _in_process(model, SUNNYBROOK_CINE), atol=ATOL)
    assert r.study.slots_present == ["cine_sax"]
    assert "cine_4ch" in r.study.slots_missing


def test_sunnybrook_stack_is_measured(measuring_encoder: EncoderClient, encoder: EncoderClient,
                                     model: CMRCLIP) -> None:
    """A real short-axis stack (SCD0000201, 13 slices): measurements with a quality flag, every field either
    measured or explained; the vector is the in-process model's fed those numbers, and the non-measuring
    encoder's is the same model's without them."""
    study = str(SUNNYBROOK_CONTOURED / "dicom")
    r = measuring_encoder.encode_study_ref(path=study)
    m = r.measurements
    assert m is not None and m.quality in ("ok", "check", "failed") and m.model == load_segmenter().version
    for f in MEASUREMENT_FIELDS:
        assert m.HasField(f) or m.unavailable[f], f
    if m.quality != "failed":
        assert m.quality == "ok" or m.quality_reasons  # "check" always says why
        assert m.HasField("lvedv_ml") and m.HasField("ed_phase") and len(m.lv_volume_curve_ml) >= 2
    assert not m.HasField("bsa_m2") and m.unavailable["bsa_m2"]  # Sunnybrook headers carry no height/weight
    plain = encoder.encode_study_ref(path=study)
    assert plain.measurements is None  # CMR_MEASURE=false: no message at all
    exam = load_study(study).to_exam(model.spec)
    values = {f: getattr(m, f) for f in MEASUREMENT_FIELDS if m.HasField(f)}
    tokens = measurement_vector(values, model.measurement_names)[None]
    assert np.isfinite(tokens).any()  # the shipped model reads the numbers this stack gave
    with_numbers = embed_exam_arrays(model, exam.pixels_uint8()[None], exam.mask[None], measurements=tokens)[0]
    np.testing.assert_allclose(r.embedding, with_numbers, atol=ATOL)
    np.testing.assert_allclose(plain.embedding, _in_process(model, Path(study)), atol=ATOL)
    assert list(r.study.slots_present) == list(plain.study.slots_present)


def test_a_single_slice_is_explained_not_measured(measuring_encoder: EncoderClient) -> None:
    m = measuring_encoder.encode_study(SUNNYBROOK_CINE).measurements  # uploaded: measured in the worker too
    assert m is not None and m.quality == "failed" and "one short-axis cine slice" in m.quality_reasons[0]
    assert set(m.unavailable) == set(MEASUREMENT_FIELDS) and not any(m.HasField(f) for f in MEASUREMENT_FIELDS)


def test_zip_upload_and_server_side_refs_agree(encoder: EncoderClient, studies: list[Path]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(studies[1].rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(studies[1]).as_posix())
    by_zip = encoder.encode_study(buf.getvalue()).embedding
    by_path = encoder.encode_study_ref(path=str(studies[1])).embedding
    by_uri = encoder.encode_study_ref(uri=studies[1].resolve().as_uri()).embedding
    by_files = encoder.encode_study(studies[1]).embedding
    for v in (by_path, by_uri, by_files):
        np.testing.assert_allclose(v, by_zip, atol=ATOL)


def test_exam_tensor_equals_in_process_model(encoder: EncoderClient, model: CMRCLIP, studies: list[Path]) -> None:
    exam = load_study(studies[2]).to_exam(model.spec)
    v = encoder.encode_exam(exam.pixels_uint8(), exam.mask, spec_id=model.spec.spec_id)
    np.testing.assert_allclose(v, embed_exam_arrays(model, exam.pixels_uint8()[None], exam.mask[None])[0],
                               atol=ATOL)


def test_texts_equal_in_process_model_and_share_the_space(encoder: EncoderClient, model: CMRCLIP,
                                                          studies: list[Path]) -> None:
    texts = ["severely dilated left ventricle with reduced ejection fraction", "normal study",
             "  extensive subendocardial late gadolinium enhancement  "]
    got = encoder.encode_texts(texts)
    np.testing.assert_allclose(got, embed_texts(model, texts), atol=ATOL)
    # One space: the server's text and exam vectors score exactly as the in-process model's do.
    exam_vec = encoder.encode_study(studies[0]).embedding
    np.testing.assert_allclose(got @ exam_vec, embed_texts(model, texts) @ _in_process(model, studies[0]), atol=1e-3)


def test_model_info_describes_the_served_model(encoder: EncoderClient, model: CMRCLIP) -> None:
    info = encoder.model_info()
    assert info.model.version == checkpoint_version(DEFAULT_CHECKPOINT) and info.model.embed_dim == 256
    assert ExamSpec.from_dict(json.loads(info.exam_spec_json)) == model.spec
    assert info.spec_id == model.spec.spec_id
    assert info.dynamic_batching and info.max_batch_size == 8 and info.device == "cpu"
    assert tuple(info.measurement_tokens) == model.measurement_names
    assert tuple(info.parts) == (tuple(model.contribution_groups) if model.cfg.image.pooling == "attention" else ())


def test_concurrent_clients_get_their_own_results(encoder: EncoderClient, model: CMRCLIP,
                                                  studies: list[Path]) -> None:
    exams = [load_study(s).to_exam(model.spec) for s in studies]
    rng = np.random.default_rng(0)
    # Four distinct exams: three studies and one with half its frames dropped.
    tensors = [(e.pixels_uint8(), e.mask) for e in exams]
    m = exams[0].mask.copy()
    m[rng.permutation(np.flatnonzero(m))[: m.sum() // 2]] = False
    tensors.append((exams[0].pixels_uint8(), m))
    expected = [encoder.encode_exam(px, mk) for px, mk in tensors]
    assert min(np.linalg.norm(a - b) for i, a in enumerate(expected) for b in expected[i + 1:]) > 1e-3
    phrases = ["dilated right ventricle", "hypertrophic cardiomyopathy", "normal"]
    expected_text = encoder.encode_texts(phrases)
    jobs = [int(i) for i in rng.integers(0, len(tensors) + len(phrases), 96)]

    def run(j: int) -> np.ndarray:
        if j < len(tensors):
            return encoder.encode_exam(*tensors[j])
        return encoder.encode_texts([phrases[j - len(tensors)]])[0]

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(run, jobs))
    for j, got in zip(jobs, results):
        want = expected[j] if j < len(tensors) else expected_text[j - len(tensors)]
        np.testing.assert_allclose(got, want, atol=ATOL)


def test_health_and_reflection(encoder: EncoderClient) -> None:
    _assert_alive(encoder)
    stub = reflection_pb2_grpc.ServerReflectionStub(encoder.channel)
    reply = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                           timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert {"cmr.v1.EncoderService", "grpc.health.v1.Health"} <= names


# --- bad input ------------------------------------------------------------------------------------------------

def _truncated_study(src: Path) -> dict[str, bytes]:
    files = sorted(p for p in src.rglob("*") if p.is_file())
    return {p.relative_to(src).as_posix(): p.read_bytes()[: p.stat().st_size // 3] for p in files[:5]}


@pytest.mark.parametrize("case", ["not_dicom", "truncated", "no_cine", "empty_stream", "ref_then_chunk",
                                  "split_file"])
def test_bad_study_is_invalid_argument_with_the_reason(encoder: EncoderClient, studies: list[Path],
                                                       case: str) -> None:
    ref = encoder_pb2.EncodeStudyRequest(ref=common_pb2.StudyRef(path=str(studies[0])))
    chunk = encoder_pb2.EncodeStudyRequest(chunk=encoder_pb2.FileChunk(file_name="a.dcm", data=b"x"))
    other = encoder_pb2.EncodeStudyRequest(chunk=encoder_pb2.FileChunk(file_name="b.dcm", data=b"y"))
    requests, reason = {
        "not_dicom": (list(upload_requests([("notes.txt", b"this is a text file, not DICOM")])), "not a DICOM"),
        "truncated": (list(upload_requests(list(_truncated_study(studies[0]).items()))), "truncated"),
        "no_cine": (list(upload_requests([(p.name, p) for p in sorted(SUNNYBROOK_LOCALIZERS.rglob("*.dcm"))])),
                    "cine"),
        "empty_stream": ([], "no study received"),
        "ref_then_chunk": ([ref, chunk], "only message"),
        "split_file": ([chunk, other, chunk], "two separate runs"),
    }[case]
    if case == "no_cine" and not SUNNYBROOK_LOCALIZERS.is_dir():
        pytest.skip("Sunnybrook sample not available")
    with pytest.raises(grpc.RpcError) as exc:
        encoder.stub.EncodeStudy(iter(requests), timeout=60)
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT
    assert reason.lower() in exc.value.details().lower()
    _assert_alive(encoder)


def test_refs_outside_the_roots_missing_or_remote(encoder: EncoderClient, tmp_path: Path) -> None:
    cases = [
        (dict(path="/etc"), grpc.StatusCode.PERMISSION_DENIED, "outside"),
        (dict(path=str(tmp_path)), grpc.StatusCode.PERMISSION_DENIED, "outside"),
        (dict(uri="https://pacs.example/dicomweb/studies/1.2.3"), grpc.StatusCode.INVALID_ARGUMENT, "scheme"),
        (dict(path=""), grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    ]
    for kwargs, code, words in cases:
        with pytest.raises(grpc.RpcError) as exc:
            encoder.encode_study_ref(**kwargs)
        assert _code(exc) == code and words in exc.value.details(), kwargs
    root = encoder.settings.study_roots[0]
    with pytest.raises(grpc.RpcError) as exc:
        encoder.encode_study_ref(path=str(root / "no-such-study"))
    assert _code(exc) == grpc.StatusCode.NOT_FOUND
    _assert_alive(encoder)


def test_oversized_upload_is_resource_exhausted(encoder: EncoderClient) -> None:
    block = b"\0" * (1024 * 1024)
    files = [(f"f{i}.dcm", block) for i in range(MAX_UPLOAD // len(block) + 2)]
    with pytest.raises(grpc.RpcError) as exc:
        encoder.stub.EncodeStudy(upload_requests(files), timeout=60)
    assert _code(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED and "upload limit" in exc.value.details()
    _assert_alive(encoder)


def test_oversized_message_is_resource_exhausted(encoder: EncoderClient) -> None:
    big = grpc.insecure_channel(encoder.url, options=[("grpc.max_send_message_length", 64 * 1024**2)])
    stub = encoder_pb2_grpc.EncoderServiceStub(big)
    req = encoder_pb2.EncodeStudyRequest(chunk=encoder_pb2.FileChunk(file_name="a", data=b"\0" * (MAX_MESSAGE + 1)))
    with pytest.raises(grpc.RpcError) as exc:
        stub.EncodeStudy(iter([req]), timeout=30)
    assert _code(exc) == grpc.StatusCode.RESOURCE_EXHAUSTED
    big.close()
    _assert_alive(encoder)


def test_bad_texts(encoder: EncoderClient) -> None:
    cases = [([], grpc.StatusCode.INVALID_ARGUMENT, "no texts"),
             (["ok", "   "], grpc.StatusCode.INVALID_ARGUMENT, "text 1 is empty"),
             (["x"] * 17, grpc.StatusCode.RESOURCE_EXHAUSTED, "limit is 16"),
             (["x" * 10_001], grpc.StatusCode.RESOURCE_EXHAUSTED, "characters")]
    for texts, code, words in cases:  # the raw stub: the client would split an oversized batch
        with pytest.raises(grpc.RpcError) as exc:
            encoder.stub.EncodeText(encoder_pb2.EncodeTextRequest(texts=texts), timeout=30)
        assert _code(exc) == code and words in exc.value.details(), texts
    assert encoder.encode_texts([f"finding {i}" for i in range(17)]).shape == (17, 256)  # split to the limit
    _assert_alive(encoder)


def test_bad_exam_tensors(encoder: EncoderClient, model: CMRCLIP) -> None:
    t, s = model.spec.length, model.spec.image_size
    px, mk = np.zeros((t, s, s), np.uint8), np.ones(t, bool)
    cases = [(dict(pixels=px[:, :32, :32], mask=mk), "shape"),
             (dict(pixels=px, mask=mk[:-1]), "mask"),
             (dict(pixels=px, mask=np.zeros(t, bool)), "every frame missing"),
             (dict(pixels=px, mask=mk, spec_id="0123456789ab"), "exam spec")]
    for kwargs, words in cases:
        with pytest.raises(grpc.RpcError) as exc:
            encoder.encode_exam(**kwargs)
        assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT and words in exc.value.details()
    req = encoder_pb2.EncodeExamRequest(exam=common_pb2.ExamTensor(frames=t, height=s, width=s, pixels=b"\0" * 10,
                                                                   mask=b"\1" * t))
    with pytest.raises(grpc.RpcError) as exc:
        encoder.stub.EncodeExam(req, timeout=10)
    assert _code(exc) == grpc.StatusCode.INVALID_ARGUMENT and "bytes" in exc.value.details()
    _assert_alive(encoder)


def test_deadline_is_honoured(encoder: EncoderClient, studies: list[Path]) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        files = [(p.relative_to(studies[0]).as_posix(), p) for p in sorted(studies[0].rglob("*.dcm"))]
        encoder.stub.EncodeStudy(upload_requests(files), timeout=0.05)
    assert _code(exc) == grpc.StatusCode.DEADLINE_EXCEEDED
    _assert_alive(encoder)
