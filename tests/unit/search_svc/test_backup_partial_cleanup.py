"""A backup killed half-way leaves `.<name>.partial` (a copy of the index): the admin service removes such
leftovers as it starts, and keeps finished backups (found by the crash harness, bench/crash_search.py)."""

from __future__ import annotations

from pathlib import Path

from cmr.config import Settings
from search_svc.admin.router import IndexRouter
from search_svc.admin.service import IndexAdminServicer, backup_root
from search_svc.store import EdgeStore


def test_half_written_backups_are_removed_at_start(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    root = backup_root(settings)
    (root / ".b007.partial" / "exams").mkdir(parents=True)
    (root / ".b007.partial" / "exams" / "segment.bin").write_bytes(b"x" * 1024)
    (root / "b006").mkdir()
    (root / "b006" / "manifest.json").write_text("{}")
    with EdgeStore(tmp_path / "index") as store:
        router = IndexRouter(store, "secret", tmp_path / "index" / "generations.json",
                             model_version="m@1", dim=4)
        IndexAdminServicer(router, settings)
    assert not (root / ".b007.partial").exists()
    assert (root / "b006" / "manifest.json").is_file()
