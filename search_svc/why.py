"""Why a similar exam matched a query study: the query's embedding parts (EncodeStudyResponse.parts, from an
attention-pooling model) dotted with the hit's stored vector. The parts sum to the query's unit embedding, so
the contributions sum to the hit's cosine; cmr.model.explain.shares turns them into ExamHit.why rows.

Query-side only: the index stores no parts, so the hit's own split (the symmetric one of `cmr explain`) is not
available here. The two differ per part but agree on the total.
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

KINDS: frozenset[str] = frozenset({"view", "measurement", "exam"})


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

    def why(self, hit_vector: NDArray[np.float32] | None) -> list[search_pb2.MatchShare]:
        """The hit's MatchShare rows, largest first; empty without a hit vector."""
        if hit_vector is None:
            return []
        contributions = self.parts.astype(np.float64) @ np.asarray(hit_vector, np.float64)
        return [search_pb2.MatchShare(part=s.part, kind=s.kind, contribution=s.contribution, share=s.share)
                for s in shares(contributions, self.groups, self.kinds)]
