"""cmr.durable.fsync_path: files and folders are fsynced; a path removed meanwhile raises unless missing_ok."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmr.durable import fsync_path


def test_files_and_folders_are_synced_and_a_missing_path_is_refused_unless_allowed(tmp_path: Path) -> None:
    f = tmp_path / "log"
    f.write_bytes(b"entry\n")
    assert fsync_path(f) and fsync_path(tmp_path)
    gone = tmp_path / "rotated-away"
    assert fsync_path(gone, missing_ok=True) is False
    with pytest.raises(FileNotFoundError):
        fsync_path(gone)
