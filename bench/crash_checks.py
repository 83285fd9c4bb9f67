"""What the crash harness checks after a kill, with the service down: the store opened offline and read back
in full (its search compared with exact search over what it holds), the generation table, the audit chain."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.crash_ledger import ExamState

SEARCH_QUERIES = 8
TOP_K = 10


def random_unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@dataclass
class StoreCheck:
    stored: dict[str, ExamState]
    duplicated: list[str]
    half_written: set[str]  # keys with an exam point and no report point or the other way round
    search_mismatches: int
    table_problem: str
    active: str


def check_store(index_dir: Path, exams: str, reports: str, rng: np.random.Generator) -> StoreCheck:
    """Open the store offline (the service is dead) and read back everything, then compare its search with
    exact search over what it holds."""
    from search_svc.admin.generations import TABLE_FILE, load_table
    from search_svc.store import EdgeStore

    table_problem, active = "", ""
    try:
        table = load_table(index_dir / TABLE_FILE)
        if table is None:
            table_problem = "no generation table"
        else:
            active = table.active
    except (ValueError, KeyError, TypeError) as exc:
        table_problem = f"generation table unreadable: {exc}"
        table = None
    with EdgeStore(index_dir) as store:
        if table is not None:
            gone = [c for g in table.generations.values() for c in g.collections if not store.collection_exists(c)]
            if gone:
                table_problem = f"the table names collections that do not exist: {gone}"
        records = _scroll_all(store, exams)
        report_keys = {r.payload.study_key for r in _scroll_all(store, reports)}
        counts = Counter(r.payload.study_key for r in records)
        stored = {r.payload.study_key: ExamState(r.payload.impression, tuple(r.payload.labels), r.vector)
                  for r in records}
        half = report_keys ^ set(stored)
        mismatches = 0
        if records:
            ids = [r.id for r in records]
            matrix = np.stack([r.vector for r in records])
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            for _ in range(SEARCH_QUERIES):
                q = random_unit(rng, matrix.shape[1])
                exact = np.argsort(-(matrix @ q), kind="stable")[:TOP_K]
                hits = store.search(exams, q, TOP_K)
                mismatches += [h.id for h in hits] != [ids[i] for i in exact]
    return StoreCheck(stored, sorted(k for k, n in counts.items() if n > 1), half, mismatches,
                      table_problem, active)


def _scroll_all(store: Any, collection: str) -> list[Any]:
    out, token = [], None
    while True:
        page, token = store.scroll(collection, None, 1024, token, with_vectors=True)
        out += page
        if token is None:
            return out


def check_audit(audit_dir: Path) -> tuple[bool, Counter[str], str]:
    """(chains intact, OK entries per action, the first problem)."""
    from cmr.security.audit import read_entries, verify

    reports = verify(audit_dir)
    bad = [f"{r.file}: {r.problem}" for r in reports if not r.ok]
    if bad:
        return False, Counter(), bad[0]
    ok = Counter(e.action for e in read_entries(audit_dir) if e.status == "OK")
    return True, ok, ""
