"""CMR-TARGET checkpoints: config, vocabulary, decoder weights and the CMR-CLIP version they were trained on.

Plain data and tensors only, read with `weights_only=True` (a checkpoint cannot run code). The decoder only
understands the token features of the exact CLIP weights it was trained on, so loading checks that the CLIP
checkpoint the caller serves has the same `cmr.model.checkpoint.checkpoint_version` and refuses otherwise.
`last.pt` of a run is a full checkpoint too (plus the optimizer state for `--resume`).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from cmr.generator.config import TargetConfig
from cmr.generator.decoder import ReportDecoder
from cmr.generator.model import TargetGenerator
from cmr.generator.vocab import ReportVocab, tokenizer_fingerprint

FORMAT = "cmr-target-checkpoint/1"


class GeneratorCheckpointError(ValueError):
    """A CMR-TARGET checkpoint that cannot be used (not one, damaged, other CLIP, other tokenizer)."""


def resolve_clip(clip: str | Path) -> Path:
    """The CMR-CLIP checkpoint file of a config's `clip` ("shipped" or a path)."""
    from cmr.model.checkpoint import DEFAULT_CHECKPOINT

    p = DEFAULT_CHECKPOINT if str(clip) == "shipped" else Path(clip).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"CMR-CLIP checkpoint {p} does not exist")
    return p


def load_exam_encoder(clip: str | Path, device: str | torch.device = "cpu"):  # noqa: ANN201 - ExamEncoder
    """Only the image side of a CMR-CLIP checkpoint (the frozen exam encoder CMR-TARGET reads tokens from), in
    eval mode: no text backbone is loaded."""
    from cmr.model.checkpoint import CheckpointError, read_checkpoint
    from cmr.model.config import Config
    from cmr.model.image_encoder import ExamEncoder

    payload = read_checkpoint(resolve_clip(clip))
    cfg = Config.from_dict(payload["config"]).model
    encoder = ExamEncoder(cfg.image, cfg.exam)
    state = {k[len("visual."):]: v.float() if v.is_floating_point() else v
             for k, v in payload["state"].items() if k.startswith("visual.")}
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{clip}: image encoder weights do not match its config "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return encoder.to(device).eval()


def clip_version_of(clip: str | Path) -> str:
    from cmr.model.checkpoint import checkpoint_version

    return checkpoint_version(resolve_clip(clip))


def generator_payload(decoder: ReportDecoder, vocab: ReportVocab, cfg: TargetConfig, clip_version: str,
                      meta: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "tokenizer": vocab.tokenizer_name,
        "tokenizer_fingerprint": tokenizer_fingerprint(vocab.tokenizer_name),
        "vocab": vocab.to_dict(),
        "clip_version": clip_version,
        "memory_width": int(decoder.memory_width),
        "state": {k: v.detach().cpu().clone() for k, v in decoder.state_dict().items()},
        "meta": dict(meta or {}),
    }


def save_generator(path: Path, decoder: ReportDecoder, vocab: ReportVocab, cfg: TargetConfig, clip_version: str,
                   meta: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
    """Write atomically (a reader never sees half a file). `extra`: more plain data (training state)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = generator_payload(decoder, vocab, cfg, clip_version, meta)
    payload.update(extra or {})
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def read_generator_checkpoint(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise GeneratorCheckpointError(f"generator checkpoint {p} does not exist")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # never suggest weights_only=False: that would run the file's code
        why = ("not a PyTorch file, or it holds objects other than tensors and plain data"
               if isinstance(exc, pickle.UnpicklingError) else " ".join(str(exc).split()[:30]))
        raise GeneratorCheckpointError(f"{p} is not a readable checkpoint: {why}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        fmt = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise GeneratorCheckpointError(f"{p} is not a CMR-TARGET checkpoint (format {fmt!r})")
    return payload


def generator_from_payload(payload: dict[str, Any], where: str = "checkpoint") -> TargetGenerator:
    try:
        cfg = TargetConfig.from_dict(payload["config"])
        vocab = ReportVocab.from_dict(payload["vocab"])
        fp = tokenizer_fingerprint(vocab.tokenizer_name)
        if fp != payload.get("tokenizer_fingerprint"):
            raise GeneratorCheckpointError(
                f"{where} was trained with another tokenizer (fingerprint {payload.get('tokenizer_fingerprint')}, "
                f"found {fp} for {vocab.tokenizer_name!r})")
        decoder = ReportDecoder(cfg.model, len(vocab), int(payload["memory_width"]))
        decoder.load_state_dict(payload["state"])
    except GeneratorCheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise GeneratorCheckpointError(f"{where} does not match its config: {' '.join(str(exc).split()[:40])}") from exc
    return TargetGenerator(decoder.eval(), vocab, cfg, str(payload["clip_version"]), payload.get("meta"))


def load_generator(path: str | Path, clip: str | Path | None = None, *, clip_version: str | None = None,
                   device: str | torch.device = "cpu") -> TargetGenerator:
    """Load a CMR-TARGET checkpoint for the CMR-CLIP model that will produce its exam tokens.

    `clip`: that CLIP checkpoint ("shipped" or a path); None = the one named in the generator's config.
    `clip_version`: or its version string (`checkpoint_version`), e.g. as reported by a remote encoder.
    Raises GeneratorCheckpointError when the generator was trained on other CLIP weights."""
    payload = read_generator_checkpoint(path)
    trained_on = str(payload.get("clip_version"))
    given: list[tuple[str, str]] = []
    if clip_version is not None:
        given.append(("clip_version", str(clip_version)))
    if clip is not None or clip_version is None:
        source = clip if clip is not None else payload.get("config", {}).get("clip", "shipped")
        try:
            given.append((str(source), clip_version_of(source)))
        except FileNotFoundError as exc:
            raise GeneratorCheckpointError(f"cannot check the CMR-CLIP model of {path}: {exc}") from exc
    for source, version in given:
        if version != trained_on:
            raise GeneratorCheckpointError(
                f"{path} was trained on CMR-CLIP {trained_on}, but the CLIP model given ({source}) is {version}: "
                "its exam features mean something else to this decoder; retrain the generator on this CLIP "
                "checkpoint (cmr train-generator) or serve the CLIP checkpoint it was trained on")
    return generator_from_payload(payload, str(path)).to(device)
