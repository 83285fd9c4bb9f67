"""Restore equality: studies indexed through the real services (Triton encoder, search service on Qdrant
Edge), a backup taken through the admin service while searches and upserts run, restored offline with
`cmr index restore` into a new folder, served by a fresh search service, and compared: counts, every point's
payload and vector in every collection (measurements included), and the answers to a fixed set of text,
study, zero-shot and cohort queries (measurement ranges included) - identical."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from cmr.config import Settings
from cmr.v1 import search_pb2
from orchestration.cli.main import app
from measure_cases import measured_upserts
from search_svc.client import SearchClient
from search_svc.server import SearchServer
from search_svc.store import VectorStore

TEXTS = ("severely dilated left ventricle with reduced ejection fraction", "normal study",
         "late gadolinium enhancement in the inferior wall")


@pytest.fixture(scope="module")
def settings(encoder_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("backup_case")
    return encoder_settings.model_copy(update={"data_dir": root / "data", "study_key_secret": "test-secret",
                                               "backup_dir": root / "backups"})


def _all_points(store: VectorStore) -> dict[str, list[tuple[str, dict[str, Any], bytes]]]:
    out = {}
    for name in store.list_collections():
        rows, token = [], None
        while True:
            page, token = store.scroll(name, None, 512, token, with_vectors=True)
            rows += [(r.id, r.payload.to_dict(), np.asarray(r.vector, "<f4").tobytes()) for r in page]
            if token is None:
                break
        out[name] = rows
    return out


def _answers(c: SearchClient, keys: list[str]) -> list[Any]:
    """A fixed set of queries of every kind; protobuf messages compare field by field (scores exactly)."""
    out: list[Any] = [list(c.search_text(t, top_k=10)) for t in TEXTS]
    out += [list(c.search_text(TEXTS[1], top_k=24, labels_all=["lge"]))]
    out += [c.similar(study_key=k, top_k=8) for k in keys[:3]]
    out += [c.zero_shot(study_key=k) for k in keys[:3]]
    out += [c.cohort_members(all_of=["dilated left ventricle"], none_of=["normal study"], threshold=0.3)]
    out += [c.cohort_members(any_of=list(TEXTS), threshold=1e-6, where=["lvef_pct<35"])]
    out += [list(c.search_text(TEXTS[0], top_k=24, where=["lvedv_ml=150..250"]))]
    out += [c.few_shot(keys[:3], keys[3:6], whole_index=True, top_k=10)]
    return out


def test_backup_while_serving_restores_identically(settings: Settings, encoder_server: Any,
                                                   upserts: list[search_pb2.ExamUpsert], tmp_path: Path) -> None:
    runner = CliRunner()
    upserts = measured_upserts(upserts)  # most with measurements, some without (an index from before them)
    with SearchServer(settings, port=0, encoder_url=encoder_server.address) as live, \
            SearchClient(live.address, settings=settings) as client:
        client.wait_ready(30)
        keys = list(client.upsert(upserts).study_keys)
        before = _answers(client, keys)
        failures: list[BaseException] = []
        stop = threading.Event()
        rounds = [0]

        def traffic() -> None:  # searches and (idempotent) upserts keep coming during the backup
            with SearchClient(live.address, settings=settings) as c:
                while not stop.is_set():
                    try:
                        c.search_text(TEXTS[rounds[0] % 3], top_k=5)
                        c.similar(study_key=keys[rounds[0] % len(keys)], top_k=3)
                        c.upsert(upserts[rounds[0] % len(upserts):][:2])
                        rounds[0] += 1
                    except Exception as exc:  # noqa: BLE001 - every failure is counted, none expected
                        failures.append(exc)

        t = threading.Thread(target=traffic)
        t.start()
        try:
            r = runner.invoke(app, ["index", "backup", "nightly", "--url", live.address])
        finally:
            stop.set()
            t.join()
        assert r.exit_code == 0, r.output
        assert not failures and rounds[0] > 0
        live_points = _all_points(live.store)
    backup = settings.backup_dir / "nightly"
    assert "backup written to" in r.output and (backup / "manifest.json").is_file()

    r = runner.invoke(app, ["index", "verify", str(backup)])
    assert r.exit_code == 0 and ": ok" in r.output, r.output
    restored_dir = tmp_path / "restored-index"
    r = runner.invoke(app, ["index", "restore", str(backup), "--index-dir", str(restored_dir)])
    assert r.exit_code == 0 and "every point matches" in r.output, r.output

    fresh = settings.model_copy(update={"data_dir": tmp_path / "fresh-data", "index_dir": restored_dir})
    with SearchServer(fresh, port=0, encoder_url=encoder_server.address) as restored, \
            SearchClient(restored.address, settings=fresh) as client:
        client.wait_ready(30)
        assert client.stats().exams == len(upserts) == client.stats().reports
        assert _all_points(restored.store) == live_points  # ids, payloads and vector bits, every collection
        measured = [p for p in live_points["exams"] if "measurements" in p[1]]
        assert 0 < len(measured) < len(upserts) and all("lvef_pct" in p[1]["measurements"] or
                                                        p[1]["measurements"]["quality"] == "failed" for p in measured)
        assert client.get(keys[0]).exam.measurements == upserts[0].measurements
        assert _answers(client, keys) == before

    r = runner.invoke(app, ["index", "restore", str(backup), "--index-dir", str(restored_dir)])
    assert r.exit_code == 1 and "not empty" in r.output
