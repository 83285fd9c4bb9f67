"""numpy <-> protobuf conversions shared by services and clients."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from cmr.v1 import common_pb2


def to_vector(v: np.ndarray) -> common_pb2.Vector:
    return common_pb2.Vector(values=np.asarray(v, dtype=np.float32).ravel().tolist())


def from_vector(msg: common_pb2.Vector, dim: int | None = None) -> np.ndarray:
    v = np.asarray(msg.values, dtype=np.float32)
    if dim is not None and v.shape[0] != dim:
        raise ValueError(f"vector has {v.shape[0]} values, expected {dim}")
    return v


def to_parts(names: Sequence[str], kinds: Sequence[str], vectors: Iterable[np.ndarray],
             ) -> list[common_pb2.EmbeddingPart]:
    """An embedding's parts on the wire (EncodeStudy/EncodeExam answers, ExamUpsert, ReembeddedStudy): one
    EmbeddingPart per name, kind and vector, in that order."""
    return [common_pb2.EmbeddingPart(name=n, kind=k, vector=to_vector(v))
            for n, k, v in zip(names, kinds, vectors, strict=True)]
