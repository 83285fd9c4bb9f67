"""`cmr bench encoder` against its server as a fresh clone runs it: no CMR_AUTH_MODE in the environment, so the
benchmark's own TLS + token set-up (bench.dev_security) is what lets `cmr serve encoder` start and the client in.
One server (batching on), two concurrency levels, half a second per point: the path, not the speed."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.progress import Progress

from bench.dev_security import Security
import bench.encoder
from bench.encoder import exam_tensors, measure_server
from cmr.model.checkpoint import load_model


@pytest.mark.slow
def test_secured_server_points(studies: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMR_AUTH_MODE", raising=False)  # tests/conftest.py turns auth off; a fresh clone does not
    monkeypatch.setattr(bench.encoder, "CONCURRENCY", (1, 8))  # the committed run has (1, 8, 32)
    spec = load_model().spec
    folders = studies[:1]
    sec = Security.create(True, tmp_path / "security")
    with Progress(disable=True) as progress:
        points, version = measure_server(True, exam_tensors(folders, spec), folders, spec.spec_id, 0.5, progress,
                                         tmp_path / "logs", sec)
    assert version.startswith("cmr-clip")
    got = {(p.path, p.concurrency) for p in points}
    levels = bench.encoder.CONCURRENCY
    assert got == {*((path, c) for path in ("service", "triton") for c in levels), ("study", 1), ("study", 2)}
    seen = [(p.path, p.concurrency, p.requests, p.errors) for p in points]
    assert all(p.errors == 0 for p in points), seen  # the triton path once sent too few inputs: all errors
    # per path (a busy runner may finish nothing in one short window); not "study": a whole study's upload,
    # decoding and segmentation takes longer than these windows on 2 cores, so only its errors are checked
    for path in ("service", "triton"):
        assert sum(p.requests for p in points if p.path == path) > 0, (path, seen)
