"""The text tower (BERT backbone, mean pooling, projection) as ONNX, run by ONNX Runtime: fp32, and int8 by
8-bit block-wise weight quantisation. Exported from the checkpoint's own weights (nothing is downloaded) on first
use into a cache folder keyed by the model version, so every process on a machine exports once.

Why: a query is one short text; at one thread ONNX Runtime runs it ~2.5x faster than torch in fp32 and ~3.5x
in int8, with no Triton hop (docs/benchmarks/text_path.md). Equality with torch is checked in
tests/unit/model/test_text_onnx.py and by `cmr bench text` (zero-shot AUROCs).
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # torch and onnxruntime are imported where they run, not when this module is
    import onnxruntime

    from cmr.model.clip import CMRCLIP

log = logging.getLogger(__name__)

EXPORT_FORMAT = "text-tower-3"  # bump when the exported graph or quantisation recipe changes: a new cache key
OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
ONNX_RUNTIMES = ("onnx-fp32", "onnx-int8")
INT8_BLOCK = 128  # weights (and activations) per int8 scale; see export_int8


def cache_root(settings_dir: Path | None) -> Path:
    """The export cache: the configured folder, else $XDG_CACHE_HOME/cmr/onnx (~/.cache/cmr/onnx)."""
    if settings_dir is not None:
        return Path(settings_dir)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cmr" / "onnx"


def model_dir_for(root: Path, version: str) -> Path:
    """Folder of one model version's exports ('@' and other odd characters kept out of the name)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in version)
    return root / f"{safe}-{EXPORT_FORMAT}"


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One exporter per folder across processes (the search service's threads and a `cmr` command alike)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as fd:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _atomic_target(dest: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".tmp")
    os.close(fd)
    return Path(tmp)


def text_tower(model: CMRCLIP) -> Any:
    """torch Module (input_ids, attention_mask, token_type_ids) -> [N, D] projected, not yet normalised: the
    exact computation of CMRCLIP.encode_text before its L2 normalisation (done in numpy after either runtime)."""
    import torch

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.text, self.proj = model.text, model.text_proj

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            tokens = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            return self.proj(self.text(tokens))

    return TextTower().eval()


def export_fp32(model: CMRCLIP, dest: Path) -> None:
    """Trace the text tower to `dest` (dynamic batch and sequence length), written atomically."""
    import torch

    tok = model.text.tokenize(["a dilated left ventricle", "normal"])
    args = tuple(tok[k] if k in tok else torch.zeros_like(tok["input_ids"]) for k in INPUTS)
    tmp = _atomic_target(dest)
    backbone = model.text.backbone
    attention = backbone.config._attn_implementation
    try:
        # eager attention traces to plain MatMul/Softmax that ONNX Runtime fuses and runs ~10 % faster than the
        # traced SDPA call; the same numbers (cosine 1.000000 to torch), and the model is put back after
        backbone.set_attn_implementation("eager")
        with torch.no_grad():
            # the TorchScript exporter: needs no onnxscript, and MiniLM traces cleanly with it
            torch.onnx.export(text_tower(model), args, str(tmp), input_names=list(INPUTS),
                              output_names=["embedding"], opset_version=OPSET, dynamo=False,
                              dynamic_axes={**{k: {0: "batch", 1: "seq"} for k in INPUTS},
                                            "embedding": {0: "batch"}})
        tmp.replace(dest)
    finally:
        backbone.set_attn_implementation(attention)
        tmp.unlink(missing_ok=True)


def weighted_matmuls(fp32: Path) -> list[str]:
    """The MatMuls with a weight (an initializer): every linear layer of the tower and the projection."""
    import onnx

    return _weighted_matmuls(onnx.load(str(fp32), load_external_data=False).graph)


def _weighted_matmuls(graph: Any) -> list[str]:
    weights = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and any(x in weights for x in n.input)]


def export_int8(fp32: Path, dest: Path) -> None:
    """int8 weights in blocks of INT8_BLOCK along the input dimension, one scale each (MatMulNBits), run with
    int8 activations quantised per block too (accuracy level 4), written atomically.

    Why not dynamic quantisation (MatMulInteger, the recipe of text-tower-2): its one activation scale per
    tensor is clipped by the GELU outliers; per-block scales keep them apart. On the labelled test set it moved
    zero-shot AUROCs by up to 0.077 with cosine >= 0.991 to torch; this one by 0.026 with cosine >= 0.998, and
    it runs faster (docs/benchmarks/text_path.md). Blocks of 32 were closer (0.019) but slower."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    tmp = _atomic_target(dest)
    try:
        graph = onnx.load(str(fp32))
        weighted = set(_weighted_matmuls(graph.graph))
        others = [n.name for n in graph.graph.node if n.op_type == "MatMul" and n.name not in weighted]
        quantiser = MatMulNBitsQuantizer(graph, bits=8, block_size=INT8_BLOCK, is_symmetric=True,
                                         accuracy_level=4, nodes_to_exclude=others)
        quantiser.process()
        quantiser.model.save_model_to_file(str(tmp), use_external_data_format=False)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_exported(checkpoint: Path, version: str, runtime: str, root: Path,
                    model: CMRCLIP | None = None) -> Path:
    """The .onnx file of `runtime` for the checkpoint of `version`, exported now if the cache lacks it.
    `model`: the loaded checkpoint, when the caller has it (saves loading it again)."""
    if runtime not in ONNX_RUNTIMES:
        raise ValueError(f"runtime {runtime!r} is not one of {ONNX_RUNTIMES}")
    folder = model_dir_for(root, version)
    fp32, int8 = folder / "text-fp32.onnx", folder / "text-int8.onnx"
    want = fp32 if runtime == "onnx-fp32" else int8
    if want.exists():
        return want
    with _locked(folder):
        if not fp32.exists():
            log.info("exporting the text tower of %s to %s", version, fp32)
            if model is None:
                from cmr.model.checkpoint import load_model

                model = load_model(checkpoint)
            export_fp32(model, fp32)
        if runtime == "onnx-int8" and not int8.exists():
            log.info("quantising %s to int8", fp32)
            export_int8(fp32, int8)
    return want


class TextTokenizer:
    """The backbone's fast tokenizer (tokenizer.json, `tokenizers`), truncating and padding as
    TextEncoder.tokenize does, without importing transformers or torch."""

    def __init__(self, model_dir: Path, max_length: int) -> None:
        from tokenizers import Tokenizer

        path = model_dir / "tokenizer.json"
        if not path.exists():
            raise FileNotFoundError(f"{model_dir} has no tokenizer.json: the ONNX text path needs the fast tokenizer")
        self.tok = Tokenizer.from_file(str(path))
        self.tok.enable_truncation(max_length)
        pad = self.tok.padding or {}
        self.tok.enable_padding(pad_id=int(pad.get("pad_id", 0)), pad_token=str(pad.get("pad_token", "[PAD]")))

    def __call__(self, texts: Sequence[str]) -> dict[str, NDArray[np.int64]]:
        enc = self.tok.encode_batch(list(texts))
        return {"input_ids": np.asarray([e.ids for e in enc], np.int64),
                "attention_mask": np.asarray([e.attention_mask for e in enc], np.int64),
                "token_type_ids": np.asarray([e.type_ids for e in enc], np.int64)}


def unit_rows(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """Rows scaled to unit length, as torch.nn.functional.normalize (eps 1e-12)."""
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class OnnxTextSession:
    """texts -> [N, D] float32 unit vectors with one ONNX Runtime session; thread-safe (ORT's run is)."""

    def __init__(self, onnx_path: Path, tokenizer: TextTokenizer, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # a query is tiny: one thread per call, the gRPC threads in parallel
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session: onnxruntime.InferenceSession = ort.InferenceSession(
            str(onnx_path), opts, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer
        self.path = onnx_path

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if not texts:
            raise ValueError("no text to encode")
        return unit_rows(self.session.run(["embedding"], dict(self.tokenizer(texts)))[0])
