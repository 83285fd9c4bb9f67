"""numpy <-> protobuf conversions shared by services and clients."""

from __future__ import annotations

import numpy as np

from cmr.v1 import common_pb2


def to_vector(v: np.ndarray) -> common_pb2.Vector:
    return common_pb2.Vector(values=np.asarray(v, dtype=np.float32).ravel().tolist())


def from_vector(msg: common_pb2.Vector, dim: int | None = None) -> np.ndarray:
    v = np.asarray(msg.values, dtype=np.float32)
    if dim is not None and v.shape[0] != dim:
        raise ValueError(f"vector has {v.shape[0]} values, expected {dim}")
    return v
