"""The crash harness's clients: a writer streaming Upserts and Deletes into the ledger (bench/crash_ledger.py),
and an operator taking backups and switching generations, each stopping at the first sign of a dead server."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from bench.crash_checks import random_unit
from bench.crash_ledger import DELETED, ExamState, Expected, Ledger

SECRET = "crash-harness-secret"  # the service's study-key secret (the writer derives the keys it expects)
RETRY_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED,
               grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}  # what a dying server or cut connection answers


def exam_upsert(uid: str, key: str, rng: random.Random, vectors: np.random.Generator, model_version: str,
                dim: int) -> tuple[Any, ExamState]:
    """A random but valid ExamUpsert for study `uid` (key: its study key), and the state the ledger expects."""
    from cmr.rpc.messages import to_vector
    from cmr.v1 import search_pb2

    v, r = random_unit(vectors, dim), random_unit(vectors, dim)
    impression = f"{key[:6]} revision {rng.randrange(10**6)}"
    labels = tuple(sorted(rng.sample(["lge", "dilated_lv", "reduced_ef", "disease:dcm"], 2)))
    msg = search_pb2.ExamUpsert(study_instance_uid=uid, image_embedding=to_vector(v),
                                report_embedding=to_vector(r), impression=impression, labels=list(labels),
                                model_version=model_version, vendor="siemens")
    return msg, ExamState(impression, labels, v)


class Writer(threading.Thread):
    """Streams Upserts (new studies and updates) and Deletes, one RPC at a time, into the ledger; stops at the
    first sign of a dead server (the RPC's outcome stays unknown: in flight)."""

    def __init__(self, client: Any, ledger: Ledger, rng: random.Random, model_version: str, dim: int,
                 next_uid: list[int], uids: dict[str, str], server_alive: Any) -> None:
        """next_uid: the last UID number used (shared across rounds); uids: study key -> UID of every study sent;
        server_alive(): whether the service process still runs (an error from a live server is a finding)."""
        super().__init__(daemon=True, name="crash-writer")
        self.client, self.ledger, self.rng, self.server_alive = client, ledger, rng, server_alive
        self.model_version, self.dim, self.next_uid, self.uids = model_version, dim, next_uid, uids
        self.vectors = np.random.default_rng(rng.randrange(2**32))
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from cmr.rpc.keys import study_key

        try:
            while not self.halt.is_set():
                present = self.ledger.present()
                roll = self.rng.random()
                if roll < 0.2 and present:  # delete a few stored studies
                    keys = self.rng.sample(present, min(len(present), self.rng.randint(1, 4)))
                    changes: dict[str, Expected] = {k: DELETED for k in keys}
                    call = lambda: self.client.delete(keys)  # noqa: E731
                else:
                    msgs, changes = [], {}
                    if roll < 0.4 and present:  # update studies already stored
                        picked = self.rng.sample(present, min(len(present), self.rng.randint(1, 3)))
                        uids = [self.uids[k] for k in picked]
                    else:  # new studies
                        uids = []
                        for _ in range(self.rng.randint(1, 8)):
                            self.next_uid[0] += 1
                            uids.append(f"1.2.826.0.1.3680043.10.1.{self.next_uid[0]}")
                    for uid in uids:
                        key = study_key(uid, SECRET)
                        self.uids[key] = uid
                        msg, state = exam_upsert(uid, key, self.rng, self.vectors, self.model_version, self.dim)
                        msgs.append(msg)
                        changes[key] = state
                    call = lambda: self.client.upsert(msgs)  # noqa: E731
                self.ledger.sending(changes)
                try:
                    call()
                except grpc.RpcError as exc:
                    if exc.code() in RETRY_CODES and not _still_alive(self.server_alive):
                        return  # the server is gone: the outcome stays unknown
                    self.ledger.refused(changes)
                    raise RuntimeError(f"the service refused a valid write: {exc.code().name}: {exc.details()}")
                self.ledger.ack(changes)
        except BaseException as exc:  # noqa: BLE001 - reported by the harness
            self.error = exc


def _still_alive(server_alive: Any, grace_s: float = 2.0) -> bool:
    """Whether the server outlived an RPC error by `grace_s` (a kill makes the connection drop first)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not server_alive():
            return False
        time.sleep(0.05)
    return True


@dataclass
class AdminLedger:
    """What the operator was told: the active generation after the last acknowledged switch (plus a switch in
    flight), and the backups that completed."""

    active: str = ""
    switching_to: str = ""
    backups: list[str] = field(default_factory=list)
    backups_started: int = 0
    switches: int = 0

    def allowed_active(self) -> set[str]:
        return {self.active} | ({self.switching_to} if self.switching_to else set())


class Operator(threading.Thread):
    """Backups and generation switches (force: the spare generation is empty) through IndexAdminService."""

    def __init__(self, admin: Any, ledger: AdminLedger, generations: tuple[str, str], rng: random.Random,
                 backup_seq: list[int], server_alive: Any) -> None:
        """backup_seq: the last backup number used (shared across rounds: every backup gets a new folder)."""
        super().__init__(daemon=True, name="crash-operator")
        self.admin, self.ledger, self.generations, self.rng = admin, ledger, generations, rng
        self.server_alive = server_alive
        self.seq = backup_seq
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            # paced so that writes, not the backups' write pauses, fill most of the time between kills
            while not self.halt.wait(self.rng.uniform(0.5, 1.5)):
                if self.rng.random() < 0.5:
                    self.seq[0] += 1
                    name = f"b{self.seq[0]:03d}"
                    self.ledger.backups_started += 1
                    self.admin.backup(name)
                    self.ledger.backups.append(name)
                else:
                    target = next(g for g in self.generations if g != self.ledger.active)
                    self.ledger.switching_to = target
                    self.admin.switch(target, force=True)
                    self.ledger.active, self.ledger.switching_to = target, ""
                    self.ledger.switches += 1
        except grpc.RpcError as exc:
            if exc.code() not in RETRY_CODES or _still_alive(self.server_alive):
                self.error = RuntimeError(f"admin call refused: {exc.code().name}: {exc.details()}")
        except BaseException as exc:  # noqa: BLE001 - reported by the harness
            self.error = exc
