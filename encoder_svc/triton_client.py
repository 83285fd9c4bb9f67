"""Calls into Triton's gRPC endpoint for the two encoder models. Triton's failures become service errors:
an unreachable server is UNAVAILABLE, a slow one DEADLINE_EXCEEDED, a refused input INVALID_ARGUMENT."""

from __future__ import annotations

import numpy as np
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

from cmr.rpc.errors import DeadlineExceeded, InvalidArgument, ServiceError, Unavailable
from encoder_svc.triton_models import IMAGE_MODEL, TEXT_MODEL, TRITON_MODEL_VERSION


def _service_error(url: str, exc: InferenceServerException) -> ServiceError:
    status = str(exc.status() or "")
    message = " ".join(str(exc.message() or exc).split())[:300]
    if "UNAVAILABLE" in status or "failed to connect" in message.lower() or "connection refused" in message.lower():
        return Unavailable(f"Triton at {url} is unavailable: {message}")
    if "DEADLINE_EXCEEDED" in status or "deadline exceeded" in message.lower():
        return DeadlineExceeded(f"Triton at {url} did not answer in time")
    if "INVALID_ARG" in status:
        return InvalidArgument(f"Triton refused the input: {message}")
    return ServiceError(f"Triton inference failed: {message}")


class TritonEncoderClient:
    """Thread-safe (tritonclient's unary calls are); one instance per service."""

    def __init__(self, url: str, timeout_s: float = 30.0, max_batch_size: int = 8) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_batch_size = max_batch_size
        self._client = triton_grpc.InferenceServerClient(url)

    def is_ready(self) -> bool:
        try:
            return bool(self._client.is_model_ready(IMAGE_MODEL, str(TRITON_MODEL_VERSION))
                        and self._client.is_model_ready(TEXT_MODEL, str(TRITON_MODEL_VERSION)))
        except InferenceServerException:
            return False

    def _infer_outputs(self, model: str, inputs: list[triton_grpc.InferInput],
                       names: tuple[str, ...] = ("embedding",)) -> list[np.ndarray]:
        try:
            result = self._client.infer(model, inputs, model_version=str(TRITON_MODEL_VERSION),
                                        outputs=[triton_grpc.InferRequestedOutput(n) for n in names],
                                        client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise _service_error(self.url, exc) from exc
        return [np.asarray(result.as_numpy(n), dtype=np.float32) for n in names]

    def _infer(self, model: str, inputs: list[triton_grpc.InferInput]) -> np.ndarray:
        return self._infer_outputs(model, inputs)[0]

    def _exam_chunks(self, pixels: np.ndarray, mask: np.ndarray, measurements: np.ndarray | None,
                     names: tuple[str, ...]) -> list[list[np.ndarray]]:
        """One Triton request per max-batch chunk; `measurements` [B, M] goes as the `measurements` input
        (bound only for a model with measurement tokens, so give it exactly for those)."""
        out = []
        for s in range(0, len(pixels), self.max_batch_size):
            px = np.ascontiguousarray(pixels[s : s + self.max_batch_size], dtype=np.uint8)
            mk = np.ascontiguousarray(mask[s : s + self.max_batch_size], dtype=np.bool_)
            a = triton_grpc.InferInput("pixels", list(px.shape), "UINT8")
            a.set_data_from_numpy(px)
            b = triton_grpc.InferInput("mask", list(mk.shape), "BOOL")
            b.set_data_from_numpy(mk)
            inputs = [a, b]
            if measurements is not None:
                ms = np.ascontiguousarray(measurements[s : s + self.max_batch_size], dtype=np.float32)
                c = triton_grpc.InferInput("measurements", list(ms.shape), "FP32")
                c.set_data_from_numpy(ms)
                inputs.append(c)
            out.append(self._infer_outputs(IMAGE_MODEL, inputs, names))
        return out

    def encode_exams(self, pixels: np.ndarray, mask: np.ndarray,
                     measurements: np.ndarray | None = None) -> np.ndarray:
        """uint8 [B, T, H, W] + bool [B, T] (+ float32 [B, M], NaN = not measured) -> float32 [B, D]."""
        return np.concatenate([c[0] for c in self._exam_chunks(pixels, mask, measurements, ("embedding",))])

    def encode_exam_parts(self, pixels: np.ndarray, mask: np.ndarray,
                          measurements: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As encode_exams, with the `parts` output of an attention-pooling model: ([B, D], [B, G, D])."""
        chunks = self._exam_chunks(pixels, mask, measurements, ("embedding", "parts"))
        return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        out = []
        for s in range(0, len(texts), self.max_batch_size):
            arr = np.array([[t.encode("utf-8")] for t in texts[s : s + self.max_batch_size]], dtype=np.object_)
            a = triton_grpc.InferInput("text", list(arr.shape), "BYTES")
            a.set_data_from_numpy(arr)
            out.append(self._infer(TEXT_MODEL, [a]))
        return np.concatenate(out)

    def close(self) -> None:
        self._client.close()
