"""Why an exam matched a query, from embedding parts (an attention-pooling model's exam vector is the sum of one
part per view, per measurement token and the CLS fallback: cmr.model.explain). A vector's parts dotted with the
other side of a cosine sum to that cosine; cmr.model.explain.shares turns them into ExamHit.why rows.

- SearchByStudy: the query study's parts (EncodeStudyResponse.parts for a study the encoder reads, or the
  parts stored with an indexed study) dotted with each hit's vector (`QueryParts`).
- SearchByText: each hit's stored parts dotted with the query text's vector (`text_why`).

Both are one-sided splits (the symmetric one of `cmr explain` needs both exams' parts); per part they differ,
the total is the same. Stored parts are float16, so their totals match the score within PARTS_SUM_TOLERANCE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray

from cmr.model.explain import PartKind, shares
from cmr.rpc.messages import from_vector
from cmr.v1 import common_pb2, search_pb2
from search_svc.store import StoredParts
from search_svc.store.schema import MAX_PARTS, PART_KINDS

KINDS: frozenset[str] = frozenset(PART_KINDS)


def _rows(contributions: NDArray[np.float64], groups: Sequence[str],
          kinds: Sequence[str]) -> list[search_pb2.MatchShare]:
    return [search_pb2.MatchShare(part=s.part, kind=s.kind, contribution=s.contribution, share=s.share)
            for s in shares(contributions, groups, cast(Sequence[PartKind], kinds))]


def stored_parts(parts: Sequence[common_pb2.EmbeddingPart],
                 vector: NDArray[np.float32]) -> StoredParts | None:
    """A writer's parts of an exam `vector` (ExamUpsert.parts, ReembeddedStudy.parts) as the index stores
    them; None when it sent none. ValueError naming what is wrong: too many, not of the vector's dimension,
    non-finite, an unknown kind, or not summing to the vector (parts of another one)."""
    if not parts:
        return None
    if len(parts) > MAX_PARTS:  # before decoding any of them
        raise ValueError(f"{len(parts)} parts; an exam has at most {MAX_PARTS}")
    dim = np.asarray(vector).shape[-1]
    vectors = []
    for p in parts:
        try:
            vectors.append(from_vector(p.vector, dim))
        except ValueError as exc:
            raise ValueError(f"part {p.name!r}: {exc} (the exam vector's dimension)") from exc
    stored = StoredParts.of([p.name for p in parts], [p.kind for p in parts], np.stack(vectors))
    stored.check_sums_to(vector)
    return stored


def text_why(parts: StoredParts | None, text_vector: NDArray[np.float32]) -> list[search_pb2.MatchShare]:
    """A text hit's MatchShare rows, largest first: its stored parts dotted with the query text's vector (they
    sum to the hit's cosine). Empty for a hit stored without parts."""
    t = np.asarray(text_vector, np.float64)
    norm = float(np.linalg.norm(t))
    if parts is None or t.shape != (parts.dim,) or not 0.0 < norm < np.inf:
        return []
    return _rows(parts.contributions(t / norm), parts.names, parts.kinds)  # the score is the cosine


@dataclass(frozen=True)
class QueryParts:
    """A query study's parts [G, D] over `groups` (of `kinds`), summing to its embedding."""

    groups: tuple[str, ...]
    kinds: tuple[PartKind, ...]
    parts: NDArray[np.float32]

    @classmethod
    def of(cls, parts: Sequence[common_pb2.EmbeddingPart], dim: int) -> QueryParts | None:
        """From an EncodeStudy response's parts; None when there are none (a CLS model) or they are malformed
        (an explanation is an extra: a bad one is dropped, never an error of the search)."""
        if not parts or any(p.kind not in KINDS for p in parts):
            return None
        try:
            arr = np.stack([from_vector(p.vector, dim) for p in parts])
        except ValueError:
            return None
        return cls(tuple(p.name for p in parts), tuple(cast(PartKind, p.kind) for p in parts), arr)

    @classmethod
    def stored(cls, parts: StoredParts | None, dim: int) -> QueryParts | None:
        """From the parts stored with an indexed study; None when it has none (or of another dimension)."""
        if parts is None or parts.dim != dim:
            return None
        return cls(parts.names, tuple(cast(PartKind, k) for k in parts.kinds), parts.matrix.astype(np.float32))

    def why(self, hit_vector: NDArray[np.float32] | None) -> list[search_pb2.MatchShare]:
        """The hit's MatchShare rows, largest first; empty without a hit vector."""
        if hit_vector is None:
            return []
        return _rows(self.parts.astype(np.float64) @ np.asarray(hit_vector, np.float64), self.groups, self.kinds)
