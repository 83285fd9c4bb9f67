"""Embedding studies and texts with a trained model: the shared entry point of `cmr embed`, the evaluation
and the services. Everything returned is L2-normalised float32 numpy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from cmr.dicom import Exam, StudySource, load_study
from cmr.dicom.model import Study
from cmr.model.clip import CMRCLIP

MAX_TEXT_CHARS = 10_000  # one impression is a few hundred characters; refuse what cannot be one


def exam_batch(exams: Sequence[Exam], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    px = torch.from_numpy(np.stack([e.pixels for e in exams])).to(device)
    mk = torch.from_numpy(np.stack([e.mask for e in exams])).to(device)
    return px, mk


def measurement_batch(model: CMRCLIP, measurements: np.ndarray | None, n: int) -> torch.Tensor | None:
    """[N, M] float32 measurement-token values (NaN = not measured) as a tensor on the model's device; None for a
    model without measurement tokens (whatever was given) or when nothing was measured."""
    if not model.measurement_names or measurements is None:
        return None
    arr = np.asarray(measurements, np.float32)
    if arr.shape != (n, len(model.measurement_names)):
        raise ValueError(f"measurements {arr.shape} do not match {n} exams x the model's "
                         f"{len(model.measurement_names)} measurement tokens ({', '.join(model.measurement_names)})")
    return torch.from_numpy(arr).to(model.device)


@torch.no_grad()
def embed_exam_arrays(model: CMRCLIP, pixels: np.ndarray, mask: np.ndarray, batch_size: int = 32,
                      measurements: np.ndarray | None = None) -> np.ndarray:
    """pixels [N, T, H, W] (uint8 0..255 or float 0..1), mask [N, T], optional [N, M] measurements -> [N, D]."""
    out = []
    meas = measurement_batch(model, measurements, len(pixels))
    for s in range(0, len(pixels), batch_size):
        px = torch.from_numpy(np.asarray(pixels[s : s + batch_size]))
        px = px.float().div_(255.0) if px.dtype == torch.uint8 else px.float()
        mk = torch.from_numpy(np.asarray(mask[s : s + batch_size])).bool()
        ms = None if meas is None else meas[s : s + batch_size]
        out.append(model.encode_exam(px.to(model.device), mk.to(model.device), ms).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.cfg.embed_dim), np.float32)


@torch.no_grad()
def embed_exams(model: CMRCLIP, exams: Sequence[Exam], measurements: np.ndarray | None = None) -> np.ndarray:
    """Embed assembled exams; `measurements` [N, M] (cmr.model.measurements.measurement_matrix with
    model.measurement_names) for a model with measurement tokens, None = not measured."""
    for e in exams:
        if e.spec != model.spec:
            raise ValueError("exam was built with a different exam spec than the model's; use model.spec")
    px, mk = exam_batch(exams, model.device)
    return model.encode_exam(px, mk, measurement_batch(model, measurements, len(exams))).float().cpu().numpy()


def study_measurements(model: CMRCLIP, studies: Sequence[Study], segmenter: Any = None) -> np.ndarray | None:
    """[N, M] measurement-token values of loaded studies, measured by `segmenter` (default: the shipped one)
    as the encoder service measures them; None for a model without measurement tokens. A study that cannot
    be measured (no short-axis cine, a failure inside the segmenter) gets NaN: it is embedded from its pixels."""
    if not model.measurement_names:
        return None
    from cmr.model.measurements import measurement_matrix
    from cmr.quant.measure import measure_study
    from cmr.quant.segmenter import load_segmenter

    seg = segmenter if segmenter is not None else load_segmenter(None)
    rows: list[dict[str, Any] | None] = []
    for study in studies:
        try:
            rows.append(measure_study(study, seg).measurements.values())
        except Exception:  # noqa: BLE001 - the study is still embedded, without numbers
            rows.append(None)
    return measurement_matrix(rows, model.measurement_names)


def embed_studies(model: CMRCLIP, sources: Sequence[StudySource]) -> np.ndarray:
    """Load each study (raises StudyLoadError for unusable input), measure it when the model reads
    measurements, and embed it."""
    studies = [load_study(s) for s in sources]
    return embed_exams(model, [st.to_exam(model.spec) for st in studies], study_measurements(model, studies))


def check_texts(texts: Sequence[str]) -> list[str]:
    cleaned = [t.strip() for t in texts]
    if not cleaned:
        raise ValueError("no text given")
    for t in cleaned:
        if not t:
            raise ValueError("empty text: give a phrase such as 'dilated LV with reduced ejection fraction'")
        if len(t) > MAX_TEXT_CHARS:
            raise ValueError(f"text of {len(t)} characters is too long (limit {MAX_TEXT_CHARS})")
    return cleaned


@torch.no_grad()
def embed_texts(model: CMRCLIP, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    texts = check_texts(texts)
    out = [model.encode_text(list(texts[s : s + batch_size])).float().cpu().numpy()
           for s in range(0, len(texts), batch_size)]
    return np.concatenate(out)

