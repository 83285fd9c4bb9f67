"""Tuning a saved CMR-TARGET checkpoint's finding-plan thresholds (`cmr train-generator --tune-data`): the
thresholds of `cmr.generator.plan`, fitted on studies the decoder was not trained on, written back into the
checkpoint. Apart from plan.py, which the generator model uses while drafting: loading and saving a
checkpoint needs the model, so plan.py must not."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmr.generator.checkpoint import (
    generator_from_payload,
    load_exam_encoder,
    read_generator_checkpoint,
    resolve_clip,
    save_generator,
)
from cmr.generator.features import build_token_features
from cmr.generator.plan import (
    PlanThresholds,
    apply_thresholds,
    reader_probabilities,
    truth_matrix,
    tune_thresholds,
)


def tune_checkpoint(checkpoint: Path, data_dir: Path, *, workers: int = 0, progress: bool = True) -> PlanThresholds:
    """Tune the plan thresholds of a CMR-TARGET checkpoint on every study of `data_dir` and write them into
    the checkpoint (atomically; its meta records the tuning set and the per-finding F1)."""
    payload = read_generator_checkpoint(checkpoint)
    gen = generator_from_payload(payload, str(checkpoint))
    clip_path = resolve_clip(gen.config.clip)
    encoder = load_exam_encoder(clip_path)
    feats = build_token_features(Path(data_dir), encoder, gen.clip_version, workers=workers, progress=progress)
    idx = np.flatnonzero(feats.ok)
    if len(idx) == 0:
        raise ValueError(f"{data_dir}: no usable studies to tune the plan thresholds on")
    tuned = tune_thresholds(reader_probabilities(gen.decoder, feats, idx), truth_matrix(feats.records, idx),
                            source=str(data_dir))
    apply_thresholds(gen.decoder, tuned)
    extra = {k: v for k, v in payload.items() if k not in ("format", "config", "tokenizer", "tokenizer_fingerprint",
                                                          "vocab", "clip_version", "memory_width", "state", "meta")}
    save_generator(Path(checkpoint), gen.decoder, gen.vocab, gen.config, gen.clip_version,
                   meta={**gen.meta, "plan_thresholds": tuned.to_dict()}, extra=extra)
    return tuned


__all__ = ["tune_checkpoint"]
