"""A real full filesystem under the embedded index (a small tmpfs this test mounts; skipped where mounting is
not allowed): writes are refused with DiskFullError before the engine hits the wall (without the guard the
process dies of SIGBUS and cannot reopen until space returns), the process stays alive and searches go on,
and once the filesystem grows every acknowledged point is there and writes work again. Each phase runs in its
own process, so a regression kills a child, not the test run."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
MIN_FREE_MB = 48  # above the engine's 32 MB WAL segment: a new segment must always fit

_FILL = """
import json, sys
import numpy as np
from pathlib import Path
from cmr.rpc.keys import point_id
from search_svc.store import DiskFullError, EdgeStore, ExamPayload, VectorPoint

def points(start, n):
    rng = np.random.default_rng(start)
    return [VectorPoint(point_id("%032x" % i), rng.normal(size=256).astype(np.float32),
                        ExamPayload(study_key="%032x" % i, vendor="siemens", model_version="m@1",
                                    impression="x" * 200)) for i in range(start, start + n)]

root, min_free_mb, start, limit = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
store = EdgeStore(root, min_free_mb=min_free_mb)
store.ensure_collection("exams", 256)
acked, refused = start, ""
while acked < start + limit:
    try:
        store.upsert("exams", points(acked, 64))
    except DiskFullError as exc:
        refused = str(exc)
        break
    acked += 64
hits = len(store.search("exams", np.ones(256, np.float32), 5))
print(json.dumps({"acked": acked, "refused": refused, "count": store.count("exams"), "hits": hits}))
store.close()
"""


def _run(root: Path, min_free_mb: float, start: int, limit: int) -> dict:
    done = subprocess.run([sys.executable, "-c", _FILL, str(root), str(min_free_mb), str(start), str(limit)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, f"rc {done.returncode} (-7 = SIGBUS): {done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small filesystem here (needs root / CAP_SYS_ADMIN)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_index_disk_refuses_writes_keeps_serving_and_recovers(small_fs: Path) -> None:
    root = small_fs / "index"
    first = _run(root, MIN_FREE_MB, 0, 1_000_000)
    assert "index disk is full" in first["refused"] and str(root) in first["refused"]
    assert first["count"] == first["acked"] > 0 and first["hits"] == 5
    subprocess.run(["mount", "-o", "remount,size=256m", str(small_fs)], check=True)  # space returns
    again = _run(root, MIN_FREE_MB, first["acked"], 640)
    assert again["refused"] == "" and again["count"] == first["acked"] + 640
