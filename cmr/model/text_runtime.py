"""Text embedding in this process, behind one small interface: torch (the reference), or the ONNX export
(cmr.model.text_onnx) in fp32 or int8. The search service embeds queries with it instead of a round trip
through the encoder service and Triton; `cmr bench text` compares the three."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from cmr.config import Settings, get_settings
from cmr.model.inference import MAX_TEXT_CHARS

TEXT_RUNTIMES = ("torch", "onnx-fp32", "onnx-int8")


class TextEmbedder(Protocol):
    """texts -> [N, D] float32 unit vectors of one model version."""

    version: str  # the checkpoint version (cmr.model.checkpoint.checkpoint_version) the vectors belong to
    runtime: str  # one of TEXT_RUNTIMES

    def encode(self, texts: list[str]) -> NDArray[np.float32]: ...


def check_texts(texts: list[str]) -> None:
    if not texts:
        raise ValueError("no text to encode")
    if any(not t.strip() or len(t) > MAX_TEXT_CHARS for t in texts):
        raise ValueError(f"texts must be non-empty and at most {MAX_TEXT_CHARS} characters")


class TorchTextEmbedder:
    """The checkpoint's own torch text tower (CMRCLIP.encode_text), at `threads` intra-op threads."""

    runtime = "torch"

    def __init__(self, checkpoint: Path, version: str, threads: int = 1) -> None:
        import torch

        from cmr.model.checkpoint import load_model

        if threads:
            torch.set_num_threads(threads)
        self.model = load_model(checkpoint)
        self.version = version

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        import torch

        check_texts(texts)
        with torch.inference_mode():
            return self.model.encode_text(texts).float().cpu().numpy()


class OnnxTextEmbedder:
    """The checkpoint's text tower exported to ONNX (exported on first use into the cache) in ONNX Runtime."""

    def __init__(self, checkpoint: Path, version: str, runtime: str, cache_dir: Path | None = None,
                 threads: int = 1) -> None:
        from cmr.model.checkpoint import read_checkpoint
        from cmr.model.config import Config
        from cmr.model.text_encoder import resolve_backbone
        from cmr.model.text_onnx import OnnxTextSession, TextTokenizer, cache_root, ensure_exported

        text_cfg = Config.from_dict(read_checkpoint(checkpoint)["config"]).model.text
        path = ensure_exported(checkpoint, version, runtime, cache_root(cache_dir))
        self.session = OnnxTextSession(path, TextTokenizer(resolve_backbone(text_cfg.backbone), text_cfg.max_length),
                                       threads=threads)
        self.version = version
        self.runtime = runtime

    def encode(self, texts: list[str]) -> NDArray[np.float32]:
        check_texts(texts)
        return self.session.encode(texts)


def text_embedder(runtime: str, settings: Settings | None = None, checkpoint: Path | None = None) -> TextEmbedder:
    """The in-process embedder of `runtime` for the served checkpoint (settings.checkpoint) or `checkpoint`."""
    from cmr.model.checkpoint import checkpoint_version
    from cmr.model.runtime import checkpoint_path

    settings = settings or get_settings()
    path = Path(checkpoint or checkpoint_path(settings))
    version = checkpoint_version(path)
    if runtime == "torch":
        return TorchTextEmbedder(path, version, settings.text_threads)
    if runtime in ("onnx-fp32", "onnx-int8"):
        return OnnxTextEmbedder(path, version, runtime, settings.onnx_cache_dir, settings.text_threads)
    raise ValueError(f"text runtime {runtime!r}: use one of {', '.join(TEXT_RUNTIMES)}")
