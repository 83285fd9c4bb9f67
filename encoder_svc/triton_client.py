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

    def _infer(self, model: str, inputs: list[triton_grpc.InferInput]) -> np.ndarray:
        try:
            result = self._client.infer(model, inputs, model_version=str(TRITON_MODEL_VERSION),
                                        outputs=[triton_grpc.InferRequestedOutput("embedding")],
                                        client_timeout=self.timeout_s)
        except InferenceServerException as exc:
            raise _service_error(self.url, exc) from exc
        return np.asarray(result.as_numpy("embedding"), dtype=np.float32)

    def encode_exams(self, pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """uint8 [B, T, H, W] + bool [B, T] -> float32 [B, D]; one Triton request per max-batch chunk."""
        out = []
        for s in range(0, len(pixels), self.max_batch_size):
            px = np.ascontiguousarray(pixels[s : s + self.max_batch_size], dtype=np.uint8)
            mk = np.ascontiguousarray(mask[s : s + self.max_batch_size], dtype=np.bool_)
            a = triton_grpc.InferInput("pixels", list(px.shape), "UINT8")
            a.set_data_from_numpy(px)
            b = triton_grpc.InferInput("mask", list(mk.shape), "BOOL")
            b.set_data_from_numpy(mk)
            out.append(self._infer(IMAGE_MODEL, [a, b]))
        return np.concatenate(out)

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
