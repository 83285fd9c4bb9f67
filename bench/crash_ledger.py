"""What a crash harness's client was told: every acknowledged write, and the writes in flight when the service
died (their outcome is unknown: either result is correct). After a restart the stored state is checked against
it, and the in-flight writes are settled to whatever the store kept, so the next round starts from the truth.

Pure bookkeeping, no I/O: the harness (bench/crash_search.py) feeds it what it sent and what it read back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

VECTOR_MATCH = 0.9999  # cosine between the vector sent and the one read back (the store keeps it normalised)


@dataclass(frozen=True)
class ExamState:
    """The part of an exam the checks compare: payload fields the writer chose, and the vector's direction."""

    impression: str
    labels: tuple[str, ...]
    vector: NDArray[np.float32] = field(compare=False, repr=False)

    def same_as(self, other: ExamState) -> bool:
        if self.impression != other.impression or tuple(sorted(self.labels)) != tuple(sorted(other.labels)):
            return False
        a, b = self.vector, other.vector
        cos = float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
        return cos >= VECTOR_MATCH


DELETED = None  # an expected state of "not there"
Expected = ExamState | None


@dataclass
class Problems:
    """Every way the stored state can disagree with what was acknowledged (empty lists: all is well)."""

    lost: list[str] = field(default_factory=list)         # an acknowledged upsert is missing
    wrong: list[str] = field(default_factory=list)        # present with another payload/vector than acknowledged
    resurrected: list[str] = field(default_factory=list)  # an acknowledged delete came back
    phantom: list[str] = field(default_factory=list)      # a key no write ever named
    duplicated: list[str] = field(default_factory=list)   # more than one point for one key

    @property
    def count(self) -> int:
        return sum(len(v) for v in (self.lost, self.wrong, self.resurrected, self.phantom, self.duplicated))

    def summary(self) -> str:
        parts = [f"{name} {len(v)} (e.g. {v[:2]})" for name, v in vars(self).items() if v]
        return "; ".join(parts) or "none"


class Ledger:
    """Acknowledged state per study key, and the writes whose answer never came."""

    def __init__(self) -> None:
        self.acked: dict[str, Expected] = {}
        self.in_flight: dict[str, list[Expected]] = {}  # key -> states it may be in now
        self.acked_upserts = 0
        self.acked_deletes = 0

    # --- the writer's side -----------------------------------------------------------------------------------
    def sending(self, changes: Mapping[str, Expected]) -> None:
        """Before the RPC leaves: its outcome is unknown until ack() (or a crash settles it)."""
        for key, state in changes.items():
            self.in_flight.setdefault(key, []).append(state)

    def ack(self, changes: Mapping[str, Expected]) -> None:
        """The RPC answered OK: these states are now promised."""
        for key, state in changes.items():
            self.acked[key] = state
            self.in_flight.pop(key, None)
        if any(s is not DELETED for s in changes.values()):
            self.acked_upserts += 1
        else:
            self.acked_deletes += 1

    def refused(self, changes: Mapping[str, Expected]) -> None:
        """The RPC answered with an error the service guarantees wrote nothing (INVALID_ARGUMENT and the like)."""
        for key in changes:
            self.in_flight.pop(key, None)

    def present(self) -> list[str]:
        """Keys the client believes are stored (candidates for updates and deletes)."""
        return [k for k, s in self.acked.items() if s is not DELETED and k not in self.in_flight]

    # --- the checker's side ----------------------------------------------------------------------------------
    def check(self, stored: Mapping[str, ExamState], duplicated: Iterable[str] = ()) -> Problems:
        """Compare what the store holds (key -> state) with what was acknowledged."""
        p = Problems(duplicated=sorted(duplicated))
        for key in sorted(set(self.acked) | set(self.in_flight) | set(stored)):
            allowed: list[Expected] = list(self.in_flight.get(key, []))
            if key in self.acked:
                allowed.append(self.acked[key])
            elif key in self.in_flight:
                allowed.append(DELETED)  # a first upsert in flight may not have landed
            have = stored.get(key)
            if not allowed:
                p.phantom.append(key)
            elif have is None:
                if DELETED not in allowed:
                    p.lost.append(key)
            elif not any(s is not DELETED and s.same_as(have) for s in allowed):
                (p.resurrected if all(s is DELETED for s in allowed) else p.wrong).append(key)
        return p

    def settle(self, stored: Mapping[str, ExamState]) -> int:
        """After a crash: the writes in flight became whatever the store kept. Returns how many were kept."""
        kept = 0
        for key in list(self.in_flight):
            have = stored.get(key)
            self.acked[key] = have
            kept += have is not None and any(s is not DELETED and s.same_as(have) for s in self.in_flight[key])
            del self.in_flight[key]
        return kept
