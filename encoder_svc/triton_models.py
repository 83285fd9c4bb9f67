"""The Triton side of the encoder: model configurations as data, the model callables, and a server that
starts and stops NVIDIA Triton Inference Server (the binary shipped in the nvidia-pytriton wheel).

Two models from one checkpoint, so their vectors share one space:
- cmr_clip_image: pixels uint8 [T, H, W] + mask bool [T] -> embedding float32 [D]; a model with measurement
  tokens takes measurements float32 [M] too (NaN = not measured), an attention-pooling one also answers
  parts float32 [G, D] (summing to the embedding). Bound only for such models, so a CLS model without
  measurement tokens (the shipped one) keeps its two inputs and one output.
- cmr_clip_text:  text bytes [1] (UTF-8)                      -> embedding float32 [D]
Both with Triton's dynamic batcher (max batch size, queue delay and instance count from config), or without
it (each request runs alone: the benchmark's baseline).
"""

from __future__ import annotations

import logging
import os
import signal
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from cmr.config import Settings, get_settings
from cmr.model.runtime import EncoderRuntime

log = logging.getLogger(__name__)

IMAGE_MODEL = "cmr_clip_image"
TEXT_MODEL = "cmr_clip_text"
TRITON_MODEL_VERSION = 1  # the Triton version slot; the weights' identity is ModelInfo.version


@dataclass(frozen=True)
class TritonServingConfig:
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    max_batch_size: int = 8
    queue_delay_us: int = 2000
    dynamic_batching: bool = True
    instances: int = 1
    exit_timeout_s: int = 5
    log_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> TritonServingConfig:
        s = settings or get_settings()
        cfg = cls(grpc_port=s.triton_grpc_port, http_port=s.triton_http_port, metrics_port=s.triton_metrics_port,
                  max_batch_size=s.triton_max_batch_size, queue_delay_us=s.triton_queue_delay_us,
                  dynamic_batching=s.triton_dynamic_batching, instances=s.triton_instances,
                  exit_timeout_s=s.triton_exit_timeout_s, log_file=s.data_dir / "logs" / "triton.log")
        return replace(cfg, **overrides)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def _image_callable(runtime: EncoderRuntime) -> Callable[..., dict[str, np.ndarray]]:
    from pytriton.decorators import batch

    explaining = runtime.identity.explains

    @batch
    def infer(pixels: np.ndarray, mask: np.ndarray,
              measurements: np.ndarray | None = None) -> dict[str, np.ndarray]:
        if explaining:
            emb, parts = runtime.encode_exam_parts(pixels, mask, measurements)
            return {"embedding": emb, "parts": parts}
        return {"embedding": runtime.encode_exams(pixels, mask, measurements)}

    return infer


def image_tensors(runtime: EncoderRuntime) -> tuple[list[Any], list[Any]]:
    """(inputs, outputs) of the image model: `measurements` and `parts` only where the model has them."""
    from pytriton.model_config import Tensor

    t, h, w = runtime.exam_shape()
    ident = runtime.identity
    d, m, g = ident.embed_dim, len(ident.measurement_names), len(ident.groups)
    inputs = [Tensor(name="pixels", dtype=np.uint8, shape=(t, h, w)),
              Tensor(name="mask", dtype=np.bool_, shape=(t,))]
    if m:
        inputs.append(Tensor(name="measurements", dtype=np.float32, shape=(m,)))
    outputs = [Tensor(name="embedding", dtype=np.float32, shape=(d,))]
    if ident.explains:
        outputs.append(Tensor(name="parts", dtype=np.float32, shape=(g, d)))
    return inputs, outputs


def _text_callable(runtime: EncoderRuntime) -> Callable[..., dict[str, np.ndarray]]:
    from pytriton.decorators import batch

    @batch
    def infer(text: np.ndarray) -> dict[str, np.ndarray]:
        texts = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in text.reshape(-1)]
        return {"embedding": runtime.encode_texts(texts)}

    return infer


def _use_interpreter_libpython() -> None:
    """Triton's Python-backend stub links libpython; a venv/pyenv interpreter's own copy must win over the
    system one, or model load fails with "'_thread.RLock' object has no attribute '_recursion_count'"."""
    libdir = sysconfig.get_config_var("LIBDIR")
    current = os.environ.get("LD_LIBRARY_PATH", "")
    if libdir and libdir not in current.split(":"):
        os.environ["LD_LIBRARY_PATH"] = f"{libdir}:{current}" if current else libdir


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def _backend_stubs_of(root: int) -> list[int]:
    """Triton's Python-backend stub processes under `root` (Linux /proc; empty elsewhere)."""
    tree, found, todo = _children(), [], [root]
    while todo:
        for child in tree.get(todo.pop(), []):
            todo.append(child)
            try:
                if "triton_python_backend_stub" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                    found.append(child)
            except OSError:
                pass
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _reap(pids: list[int], wait_s: float = 3.0) -> None:
    """A stub whose Triton exited on its exit timeout can outlive it, orphaned: end those (ours only)."""
    deadline = time.monotonic() + wait_s
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.1)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
            log.warning("killed Triton backend stub %d that outlived the server", pid)
        except ProcessLookupError:
            pass


class TritonEncoderServer:
    """Binds both models to a Triton server and runs it in the background (`start`/`stop`, or `with`)."""

    def __init__(self, runtime: EncoderRuntime, config: TritonServingConfig) -> None:
        self.runtime = runtime
        self.config = config
        self._triton: Any = None

    def _model_config(self) -> Any:
        from pytriton.model_config import DynamicBatcher, ModelConfig

        c = self.config
        batcher = DynamicBatcher(max_queue_delay_microseconds=c.queue_delay_us) if c.dynamic_batching else None
        return ModelConfig(max_batch_size=c.max_batch_size, batcher=batcher)

    def _warm_up(self) -> None:
        """First forwards allocate and pick kernels: pay that before serving, at the batch sizes served."""
        t, h, w = self.runtime.exam_shape()
        rt = self.runtime
        m = len(rt.identity.measurement_names)
        encode = rt.encode_exam_parts if rt.identity.explains else rt.encode_exams
        for b in sorted({1, self.config.max_batch_size}):
            meas = np.full((b, m), np.nan, np.float32) if m else None
            encode(np.zeros((b, t, h, w), np.uint8), np.ones((b, t), bool), meas)
        self.runtime.encode_texts(["normal biventricular size and function"] * min(4, self.config.max_batch_size))

    def start(self) -> TritonEncoderServer:
        from pytriton.model_config import Tensor
        from pytriton.triton import Triton, TritonConfig

        _use_interpreter_libpython()
        self._warm_up()
        c = self.config
        if c.log_file is not None:
            c.log_file.parent.mkdir(parents=True, exist_ok=True)
        triton = Triton(config=TritonConfig(
            grpc_address="127.0.0.1", grpc_port=c.grpc_port, http_address="127.0.0.1", http_port=c.http_port,
            metrics_port=c.metrics_port, exit_timeout_secs=c.exit_timeout_s, log_verbose=0,
            log_file=c.log_file))
        d = self.runtime.identity.embed_dim
        image_inputs, image_outputs = image_tensors(self.runtime)
        try:
            triton.bind(IMAGE_MODEL, [_image_callable(self.runtime) for _ in range(c.instances)],
                        inputs=image_inputs, outputs=image_outputs,
                        config=self._model_config(), model_version=TRITON_MODEL_VERSION, strict=True)
            triton.bind(TEXT_MODEL, [_text_callable(self.runtime) for _ in range(c.instances)],
                        inputs=[Tensor(name="text", dtype=bytes, shape=(1,))],
                        outputs=[Tensor(name="embedding", dtype=np.float32, shape=(d,))],
                        config=self._model_config(), model_version=TRITON_MODEL_VERSION, strict=True)
            triton.run()
        except Exception:
            triton.stop()
            raise
        self._triton = triton
        log.info("Triton serving %s and %s on %s (dynamic batching %s, max batch %d, %d instance(s))",
                 IMAGE_MODEL, TEXT_MODEL, c.url, "on" if c.dynamic_batching else "off", c.max_batch_size,
                 c.instances)
        return self

    def stop(self) -> None:
        if self._triton is not None:
            triton, self._triton = self._triton, None
            stubs = _backend_stubs_of(os.getpid())
            try:
                triton.stop()
            except Exception:  # noqa: BLE001 - stopping must finish; Triton's own exit still runs
                log.exception("Triton did not stop cleanly")
            _reap(stubs)

    def __enter__(self) -> TritonEncoderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
