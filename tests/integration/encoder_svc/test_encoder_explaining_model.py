"""EncoderService serving a model with measurement tokens and attention pooling through a real Triton: the
served vector of a study is the offline one (pixels plus the measured numbers), and its parts sum to it. A
tiny model saved here, in its own Triton (the session's Triton serves the shipped model)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cmr.config import Settings
from cmr.dicom import load_study
from cmr.model.checkpoint import create_model, save_checkpoint
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config
from cmr.model.inference import embed_exams, study_measurements
from cmr.rpc.ports import free_ports
from encoder_svc.client import EncoderClient
from encoder_svc.server import EncoderServer
from realdata_paths import SUNNYBROOK_CONTOURED, TEST_REALDATA
from tiny_config import TINY

NAMES = ("lvef_pct", "lvedvi_ml_m2", "rv_lv_edv_ratio", "lv_mass_edv_ratio")
STUDY = SUNNYBROOK_CONTOURED / "dicom"  # a real SAX stack: the numbers are measured, not NaN

pytestmark = pytest.mark.own_triton  # its own Triton: see tests/integration/conftest.py


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[CMRCLIP, Path]:
    d: dict[str, Any] = copy.deepcopy(TINY)
    # the shipped model's architecture: numbers fused late, sum-pooled, each on its own
    d["model"]["image"].update({"measurements": list(NAMES), "pooling": "attention", "measurement_fusion": "late",
                                "measurement_pool": "sum", "measurement_depth": 0})
    model = create_model(Config.from_dict(d), seed=5).eval()
    path = tmp_path_factory.mktemp("tiny_ckpt") / "tiny-explaining.pt"
    save_checkpoint(path, model)
    return model, path


@pytest.fixture(scope="module")
def explaining(tiny: tuple[CMRCLIP, Path],
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[EncoderClient]:
    grpc_port, http_port, metrics_port = free_ports(3)
    s = Settings(data_dir=tmp_path_factory.mktemp("explaining_data"), checkpoint=tiny[1],
                 triton_grpc_port=grpc_port,
                 triton_http_port=http_port, triton_metrics_port=metrics_port, triton_exit_timeout_s=1,
                 study_roots=[TEST_REALDATA], max_concurrent_studies=1, request_timeout_s=180, measure=True,
                 device="cpu")
    with EncoderServer(s, port=0) as server, EncoderClient(server.address, settings=s) as client:
        client.wait_ready(60)
        yield client


def test_served_vector_reads_the_measurements_and_splits_into_parts(explaining: EncoderClient,
                                                                    tiny: tuple[CMRCLIP, Path]) -> None:
    model = tiny[0]
    r = explaining.encode_study_ref(path=str(STUDY))
    study = load_study(STUDY)
    meas = study_measurements(model, [study])
    assert meas is not None and np.isfinite(meas).any()  # the stack was measured: the tokens are read
    offline = embed_exams(model, [study.to_exam(model.spec)], meas)[0]
    np.testing.assert_allclose(r.embedding, offline, atol=1e-4)
    # without the numbers the vector differs: the served one is not the pixels-only vector
    assert np.abs(embed_exams(model, [study.to_exam(model.spec)])[0] - r.embedding).max() > 1e-4
    got = r.part_arrays()
    assert got is not None
    names, kinds, parts = got
    assert names == tuple(model.contribution_groups)
    assert kinds == (*["view"] * len(model.spec.slots), *["measurement"] * len(NAMES), "exam")
    np.testing.assert_allclose(parts.sum(axis=0), r.embedding, atol=1e-4)


def test_model_info_names_the_tokens_and_the_parts(explaining: EncoderClient, tiny: tuple[CMRCLIP, Path]) -> None:
    info = explaining.model_info()
    assert tuple(info.measurement_tokens) == NAMES
    assert tuple(info.parts) == tuple(tiny[0].contribution_groups)
