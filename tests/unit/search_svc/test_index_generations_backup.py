"""Index generations (switch, rollback, drop, the persisted table, server aliases) and backups of the embedded
store (round trip, damage, consistency under concurrent writes), plus the snapshot path against a recording
stand-in of qdrant-client (no Qdrant server can run here)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cmr.rpc.keys import point_id
from search_svc.admin import snapshots
from search_svc.admin.backup import backup_edge, restore_edge, verify_backup
from search_svc.admin.generations import Generation, GenerationTable, generation_name, load_table
from search_svc.admin.manifest import BackupError, Manifest, content_digest
from search_svc.admin.router import ACTIVE_ALIASES, GenerationError, IndexRouter
from search_svc.store import EdgeStore, ExamPayload, QdrantStore, VectorPoint

DIM = 8
OLD, NEW = "cmr-clip-small@aaaaaaaaaaaa", "cmr-clip-small-v2@bbbbbbbbbbbb"


def _points(n: int, version: str, seed: int, start: int = 0) -> list[VectorPoint]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(start, start + n):
        key = hashlib.md5(str(i).encode()).hexdigest()
        payload = ExamPayload(study_key=key, vendor="siemens", model_version=version, study_date="2021-03-04",
                              impression=f"impression {i}", labels=("lge",) if i % 2 else ())
        out.append(VectorPoint(point_id(key), rng.normal(size=DIM).astype(np.float32), payload))
    return out


def _router(store: Any, tmp: Path) -> IndexRouter:
    return IndexRouter(store, "secret", tmp / "generations.json", model_version=OLD, dim=DIM)


def _fill(router: IndexRouter, name: str, pts: list[VectorPoint]) -> None:
    router.get(name).index.write_points(pts, pts)


def test_generation_names_are_collection_safe() -> None:
    assert generation_name("cmr-clip-small@3f2a9c0d1b7e") == "cmr-clip-small-3f2a9c0d1b7e"
    assert generation_name("9model") == "g-9model"
    long = generation_name("x" * 100 + "@1")
    assert len(long) <= 40 and long != generation_name("x" * 100 + "@2")


def test_switch_rollback_drop_and_the_persisted_table(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "index") as store:
        router = _router(store, tmp_path)
        first = router.active().generation
        assert first.exams == "exams" and first.model_version == OLD  # an index without a table keeps its collections
        _fill(router, first.name, _points(6, OLD, 1))
        gen = router.create(NEW, DIM)
        assert router.create(NEW, DIM) == gen and gen.exams == f"exams-{generation_name(NEW)}"
        with pytest.raises(GenerationError):
            router.create(NEW, DIM + 1)
        _fill(router, gen.name, _points(5, NEW, 2))
        with pytest.raises(GenerationError, match="lacks 1 studies"):
            router.switch(gen.name)
        _fill(router, gen.name, _points(1, NEW, 3, start=5))
        table, missing = router.switch(gen.name)
        assert (table.active, table.previous, missing) == (gen.name, first.name, 0)
        assert router.for_version(OLD).generation == first and router.active().generation == gen
        assert load_table(tmp_path / "generations.json") == table  # persisted before it took effect
        with pytest.raises(GenerationError, match="active"):
            router.drop(gen.name)
        with pytest.raises(GenerationError, match="rollback target"):
            router.drop(first.name)
        assert router.rollback().active == first.name
        reopened = _router(store, tmp_path)  # a restart reads the table
        assert reopened.table.active == first.name and set(reopened.table.generations) == {first.name, gen.name}
        assert router.drop(gen.name, force=True) and not store.collection_exists(gen.exams)
        assert not router.drop(gen.name)


def test_an_old_index_keeps_the_model_it_holds(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "index") as store:
        _fill(_router(store, tmp_path / "first"), generation_name(OLD), _points(3, OLD, 8))
        # First start with generations, on the new checkpoint already: the plain collections stay the old model's.
        router = IndexRouter(store, "secret", tmp_path / "second" / "g.json", model_version=NEW, dim=DIM)
        assert router.active().generation.model_version == OLD and router.for_version(NEW) is None


def test_table_rejects_unknown_active() -> None:
    g = Generation.new(OLD, DIM)
    with pytest.raises(ValueError):
        GenerationTable({g.name: g}, "nope")
    assert GenerationTable.from_dict(GenerationTable({g.name: g}, g.name).to_dict()).active == g.name


def test_server_aliases_follow_the_active_generation(tmp_path: Path) -> None:
    with QdrantStore.local(None) as store:  # qdrant-client local mode implements aliases like a server
        router = _router(store, tmp_path)
        assert store.aliases() == {ACTIVE_ALIASES["exams"]: "exams", ACTIVE_ALIASES["reports"]: "reports"}
        gen = router.create(NEW, DIM)
        router.switch(gen.name, force=True)
        assert store.aliases() == {ACTIVE_ALIASES["exams"]: gen.exams, ACTIVE_ALIASES["reports"]: gen.reports}
        router.rollback()
        assert store.aliases()[ACTIVE_ALIASES["exams"]] == "exams"


def test_edge_backup_round_trip_while_writes_run(tmp_path: Path) -> None:
    pts = _points(160, OLD, 4)
    with EdgeStore(tmp_path / "index") as store:
        router = _router(store, tmp_path / "index")
        _fill(router, router.active().generation.name, pts[:150])
        store.optimize("exams")
        gen = router.create(NEW, DIM)
        _fill(router, gen.name, _points(20, NEW, 5))
        stop = threading.Event()

        def writer() -> None:  # upserts keep arriving; each lands wholly before or after the copy
            i = 150
            while not stop.is_set() and i < 160:
                _fill(router, router.active().generation.name, pts[i:i + 1])
                i += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            m = backup_edge(router, tmp_path / "backups" / "b1")
        finally:
            stop.set()
            t.join()
        live = {c: content_digest(store, c) for c in ("exams", "reports")}
    assert m.collection("exams").points == m.collection("reports").points  # never an exam without its report
    assert set(m.generations["generations"][0]) >= {"name", "model_version"} and len(m.collections) == 4
    assert verify_backup(tmp_path / "backups" / "b1", deep=False) == (Manifest.read(tmp_path / "backups" / "b1"), [])
    restored = restore_edge(tmp_path / "backups" / "b1", tmp_path / "restored")
    with EdgeStore(restored.index_dir) as copy:
        assert content_digest(copy, "exams") == m.collection("exams")
        assert load_table(restored.index_dir / "generations.json").active == generation_name(OLD)
    if m.collection("exams").points == 160:  # the writer finished before the pause: the copy is the live state
        assert m.collection("exams") == live["exams"]
    with pytest.raises(BackupError, match="not empty"):
        restore_edge(tmp_path / "backups" / "b1", tmp_path / "restored")


def test_damaged_backup_is_refused(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "index") as store:
        router = _router(store, tmp_path / "index")
        _fill(router, router.active().generation.name, _points(30, OLD, 6))
        backup_edge(router, tmp_path / "b")
    victim = next(p for p in sorted((tmp_path / "b" / "exams").rglob("*")) if p.is_file() and p.stat().st_size > 100)
    data = bytearray(victim.read_bytes())
    data[50] ^= 0xFF
    victim.write_bytes(bytes(data))
    _, problems = verify_backup(tmp_path / "b")
    assert problems and "checksum" in problems[0]
    with pytest.raises(BackupError, match="damaged"):
        restore_edge(tmp_path / "b", tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert verify_backup(tmp_path / "nothing")[1]


class _RecordingSnapshots:
    """Stands in for a server's snapshot API on a local-mode client: records the documented calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def create_snapshot(self, collection_name: str, wait: bool = True) -> Any:
        from qdrant_client.http.models import SnapshotDescription

        self.calls.append(("create", collection_name))
        return SnapshotDescription(name=f"{collection_name}.snap", creation_time=None, size=4,
                                   checksum=hashlib.sha256(collection_name.encode()).hexdigest())

    def delete_snapshot(self, collection_name: str, snapshot_name: str, wait: bool = True) -> bool:
        self.calls.append(("delete", snapshot_name))
        return True


def test_server_snapshot_backup_and_restore_call_the_documented_api(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _RecordingSnapshots()
    source = QdrantStore.local(None)
    source.local = False  # pretend it is a server: the snapshot path refuses local mode
    router = _router(source, tmp_path / "a")
    pts = _points(12, OLD, 7)
    _fill(router, router.active().generation.name, pts)
    monkeypatch.setattr(source.client, "create_snapshot", rec.create_snapshot, raising=False)
    monkeypatch.setattr(source.client, "delete_snapshot", rec.delete_snapshot, raising=False)

    def download(url: str, api_key: str | None, dest: Path) -> str:
        rec.calls.append(("download", url))
        name = url.rsplit("/", 1)[-1].removesuffix(".snap")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(name.encode())
        return hashlib.sha256(name.encode()).hexdigest()

    monkeypatch.setattr(snapshots, "_download", download)
    m = snapshots.backup_server(router, tmp_path / "snap", "http://qdrant:6333", None)
    assert rec.calls[:2] == [("create", "exams"), ("create", "reports")]
    assert ("download", "http://qdrant:6333/collections/exams/snapshots/exams.snap") in rec.calls
    assert ("delete", "exams.snap") in rec.calls and m.backend == "qdrant-server"
    assert json.loads((tmp_path / "snap" / "manifest.json").read_text())["files"]

    target = QdrantStore.local(None)

    class Uploaded:
        def raise_for_status(self) -> None: ...

    def post(url: str, **kw: Any) -> Uploaded:  # the server would recover the snapshot: the same points
        name = url.split("/collections/")[1].split("/")[0]
        assert url.endswith("/snapshots/upload") and kw["params"]["priority"] == "snapshot"
        target.ensure_collection(name, DIM)
        target.upsert(name, pts)
        return Uploaded()

    monkeypatch.setattr(snapshots.httpx, "post", post)
    snapshots.restore_server(tmp_path / "snap", target, "http://fresh:6333", None, tmp_path / "t" / "g.json")
    assert load_table(tmp_path / "t" / "g.json").active == router.table.active
    with pytest.raises(BackupError, match="already has"):
        snapshots.restore_server(tmp_path / "snap", target, "http://fresh:6333", None, tmp_path / "t" / "g.json")
    source.local = True
    source.close()
    target.close()


def test_every_admin_rpc_is_admin_only() -> None:
    from cmr.security.roles import Role, allowed_roles
    from cmr.v1 import admin_pb2

    service = admin_pb2.DESCRIPTOR.services_by_name["IndexAdminService"]
    methods = [f"/{service.full_name}/{m.name}" for m in service.methods]
    assert len(methods) == 9 and all(allowed_roles(m) == {Role.ADMIN} for m in methods)
