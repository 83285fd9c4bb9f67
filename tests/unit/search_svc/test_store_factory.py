"""open_store picks the engine the settings describe; the stores' readers-writer lock; index parameters."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cmr.config import Settings
from search_svc.store import EdgeStore, IndexParams, QdrantStore, Quantization, open_store
from search_svc.store.locks import ReadWriteLock


def test_default_is_edge_under_the_data_dir(tmp_path: Path) -> None:
    with open_store(Settings(data_dir=tmp_path)) as store:
        assert isinstance(store, EdgeStore) and store.root == tmp_path / "index"
        store.ensure_collection("exams", 4)
    assert (tmp_path / "index" / "exams" / "collection.json").is_file()


def test_index_dir_and_hnsw_settings_are_used(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, index_dir=tmp_path / "idx", hnsw_m=24, hnsw_ef_construct=200,
                        hnsw_ef_search=128)
    with open_store(settings, quantization="int8") as store:
        assert isinstance(store, EdgeStore) and store.root == tmp_path / "idx"
        assert store.params == IndexParams(24, 200, 128, Quantization.INT8)
        assert store.ensure_collection("exams", 4).quantization is Quantization.INT8


def test_explicit_backends(tmp_path: Path) -> None:
    with open_store(Settings(data_dir=tmp_path), backend="client-local") as store:
        assert isinstance(store, QdrantStore) and store.local and store.backend == "client-local"
    with open_store(Settings(data_dir=tmp_path), backend="client-local", path=tmp_path / "local") as store:
        store.ensure_collection("reports", 4)
    assert (tmp_path / "local").is_dir()
    with open_store(Settings(data_dir=tmp_path), backend="edge", path=tmp_path / "e") as store:
        assert isinstance(store, EdgeStore) and store.root == tmp_path / "e"


def test_remote_needs_a_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="CMR_QDRANT_URL"):
        open_store(Settings(data_dir=tmp_path), backend="remote")
    with pytest.raises(ValueError, match="unknown store backend"):
        open_store(Settings(data_dir=tmp_path), backend="faiss")  # type: ignore[arg-type]


def test_qdrant_url_selects_the_server_client(tmp_path: Path) -> None:
    # No server listens there: the client checks the server version in a thread of its own and warns.
    before = set(threading.enumerate())
    with pytest.warns(UserWarning, match="server version"):
        store = open_store(Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:9"))
        for thread in set(threading.enumerate()) - before:
            thread.join(timeout=10)
    assert isinstance(store, QdrantStore) and not store.local and store.backend == "qdrant-server"
    store.close()


def test_index_params_are_validated() -> None:
    with pytest.raises(ValueError, match="hnsw_m"):
        IndexParams(hnsw_m=2)
    with pytest.raises(ValueError, match="hnsw_ef_search"):
        IndexParams(hnsw_ef_search=0)
    with pytest.raises(ValueError):
        IndexParams(quantization="int4")  # type: ignore[arg-type]


def test_readers_share_and_a_waiting_writer_goes_first() -> None:
    lock = ReadWriteLock()
    events: list[str] = []

    def take(acquire, name: str) -> None:  # type: ignore[no-untyped-def]
        with acquire():
            events.append(name)

    def start(acquire, name: str) -> threading.Thread:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=take, args=(acquire, name))
        thread.start()
        return thread

    with lock.read():
        start(lock.read, "reader").join(timeout=5)
        assert events == ["reader"]  # a second reader does not wait
        writer = start(lock.write, "writer")
        time.sleep(0.1)
        late = start(lock.read, "late reader")
        time.sleep(0.1)
        assert events == ["reader"]  # the writer waits for the reader; the late reader waits for the writer
    writer.join(timeout=5)
    late.join(timeout=5)
    assert events == ["reader", "writer", "late reader"]
