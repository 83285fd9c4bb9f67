"""The PACS path with a real Orthanc (Debian's, with its DICOMweb plugin) on free ports: one study arrives by
STOW-RS, one by C-STORE; the bridge publishes each once it is stable; the worker pulls it back over DICOMweb
(WADO-RS) and it ends up searchable."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from cmr.config import Settings
from cmr.rpc.keys import study_key
from ingest_cases import make_variants
from ingest_svc.orthanc import OrthancBridge, OrthancServer, c_store, dicomweb_plugin, orthanc_binary
from ingest_svc.worker import IngestWorker
from search_svc.client import SearchClient

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(orthanc_binary() is None or dicomweb_plugin() is None,
                       reason="Orthanc with the DICOMweb plugin is not installed (make setup installs the Debian "
                              "packages orthanc and orthanc-dicomweb as root)"),
]


def stow_rs(dicomweb_url: str, files: list[Path]) -> None:
    boundary = uuid.uuid4().hex
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + f.read_bytes()
                    + b"\r\n" for f in files) + b"--" + boundary.encode() + b"--\r\n"
    r = requests.post(f"{dicomweb_url}/studies", data=body, timeout=60, headers={
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json"})
    assert r.status_code == 200, r.text[:500]


def test_studies_sent_to_orthanc_become_searchable(ingest_env: Settings, ingest_search: SearchClient,
                                                    synth_dir: Path, ingest_root: Path) -> None:
    s = ingest_env
    stowed, stored = make_variants(synth_dir, ingest_root / "pacs", 2, start=5000)
    with OrthancServer(stable_age_s=1) as pacs:
        worker = IngestWorker(s)
        bridge = OrthancBridge(s, orthanc_url=pacs.url)
        threads = [threading.Thread(target=worker.run, daemon=True),
                   threading.Thread(target=bridge.run, kwargs={"poll_s": 0.5}, daemon=True)]
        for t in threads:
            t.start()
        try:
            stow_rs(pacs.dicomweb_url, sorted(f for f in stowed.path.rglob("*") if f.is_file()))
            files = sorted(f for f in stored.path.rglob("*") if f.is_file())
            assert c_store(files, "127.0.0.1", pacs.dicom_port, pacs.aet) == len(files)
            keys = [study_key(v.uid, s.study_key_secret) for v in (stowed, stored)]
            deadline = time.monotonic() + 90
            while worker.stats.indexed < 2 and time.monotonic() < deadline:
                assert all(t.is_alive() for t in threads)
                time.sleep(0.5)
            assert worker.stats.indexed == 2, (worker.stats, bridge.published)
            assert bridge.published == 2  # once per study, though each had many instances
            for k in keys:
                exam = ingest_search.get(k).exam
                assert exam.study_key == k and exam.views
            assert set(keys) <= {h.exam.study_key for h in ingest_search.search_text("heart", top_k=200)}
        finally:
            bridge.stop()
            worker.request_stop()
            for t in threads:
                t.join(30)
            bridge.close()
