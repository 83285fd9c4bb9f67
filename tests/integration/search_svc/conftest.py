"""Fixtures of the vector store tests: a store per engine in tmp_path, and a loaded collection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from search_svc.store import VectorPoint, VectorStore
from store_cases import BACKENDS, DIM, exam_points, make_store


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path) -> Iterator[VectorStore]:
    s = make_store(backend, tmp_path / backend)
    yield s
    s.close()


@pytest.fixture(scope="session")
def points() -> list[VectorPoint]:
    return exam_points(300, seed=1)


@pytest.fixture
def loaded(store: VectorStore, points: list[VectorPoint]) -> VectorStore:
    """The store with `points` in collection "exams", index built."""
    store.ensure_collection("exams", DIM)
    store.upsert("exams", points)
    store.optimize("exams")
    return store
