"""The PACS path: Debian's Orthanc with its DICOMweb plugin receives studies (C-STORE or STOW-RS); the bridge
polls Orthanc's changes API for StableStudy (no new instance for StableAge seconds, so a study is published
once it is complete) and publishes a NewExam whose reference is the study's DICOMweb URL; the worker pulls the
study back with WADO-RS.

Polling the changes API was chosen over an in-Orthanc Python/Lua callback: it needs no plugin beyond DICOMweb
(Debian's orthanc-python is a separate package tied to one Python), survives bridge restarts by resuming from
the last change sequence (kept in a small state file), and keeps Kafka credentials out of the PACS.

`OrthancServer` runs a private Orthanc (temporary storage, free ports, 127.0.0.1 only) for the tests, the
benchmark and the one-machine stack; production points the bridge at the hospital's PACS (CMR_ORTHANC_URL).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pydicom
import requests
from kafka.errors import KafkaError
from tenacity import RetryCallState

from cmr.config import Settings
from cmr.kafka_io import ensure_topics, make_producer
from cmr.kafka_wait import BROKER_ATTEMPT_S, kafka_connection_logs_quiet, kafka_retrying, retry_outline
from cmr.v1 import events_pb2
from cmr.rpc.ports import free_ports
from ingest_svc.messages import new_exam, study_ref
from ingest_svc.process import wait_until_ready
from ingest_svc.producer import ExamPublisher

log = logging.getLogger(__name__)
DICOMWEB_PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))


def orthanc_binary() -> Path | None:
    found = shutil.which("Orthanc") or (Path("/usr/sbin/Orthanc") if Path("/usr/sbin/Orthanc").exists() else None)
    return Path(found) if found else None


def dicomweb_plugin() -> Path | None:
    for d in DICOMWEB_PLUGIN_DIRS:
        for name in ("libOrthancDicomWeb.so", "libOrthancDicomWeb.so.1.7"):
            if (d / name).exists():
                return d / name
    return None


class OrthancServer:
    """A private Orthanc: `start()`, `url`, `dicomweb_url`, `dicom_port`, `stop()` (or `with`)."""

    def __init__(self, http_port: int | None = None, dicom_port: int | None = None, *,
                 storage_dir: str | Path | None = None, aet: str = "CMRPACS", stable_age_s: int = 2) -> None:
        binary, plugin = orthanc_binary(), dicomweb_plugin()
        if binary is None or plugin is None:
            raise FileNotFoundError("Orthanc or its DICOMweb plugin is not installed (apt-get install orthanc "
                                    "orthanc-dicomweb; `make setup` does it as root)")
        self.binary, self.plugin = binary, plugin
        ports = free_ports(2)
        self.http_port = http_port or ports[0]
        self.dicom_port = dicom_port or ports[1]
        self.aet = aet
        self.stable_age_s = stable_age_s
        self._tmp = None if storage_dir else tempfile.TemporaryDirectory(prefix="orthanc-")
        self.root = Path(storage_dir or self._tmp.name)  # type: ignore[union-attr]
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Orthanc's process id while it runs (benchmarks read its CPU time in /proc)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def config(self) -> dict[str, object]:
        return {
            "Name": "cmr-test-pacs", "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "index"), "HttpPort": self.http_port, "DicomPort": self.dicom_port,
            "DicomAet": self.aet, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False, "DicomAlwaysAllowStore": True, "UnknownSopClassAccepted": True,
            "StableAge": self.stable_age_s, "Plugins": [str(self.plugin)], "HttpTimeout": 60,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True, "Ssl": False,
                         "StudiesMetadata": "Full"},
            "SaveJobs": False, "ConcurrentJobs": 1, "LogExportedResources": False,
        }

    def start(self, timeout_s: float = 30.0) -> OrthancServer:
        cfg = {k: v for k, v in self.config().items() if v is not None}
        (self.root / "storage").mkdir(parents=True, exist_ok=True)
        cfg_path = self.root / "orthanc.json"
        cfg_path.write_text(json.dumps(cfg, indent=2))
        log_path = self.root / "orthanc.log"
        with open(log_path, "ab") as logf:
            self._proc = subprocess.Popen([str(self.binary), str(cfg_path)], stdout=logf, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        if wait_until_ready(self._proc, self._answers, log_path, "Orthanc", timeout_s, poll_s=0.2):
            return self
        self.stop()
        raise TimeoutError(f"Orthanc did not answer on {self.url} within {timeout_s:.0f} s")

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/system", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> OrthancServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class BridgeStopping(Exception):
    """Raised inside a Kafka wait of the bridge when it is asked to stop."""


class OrthancBridge:
    """Publishes each stable study of an Orthanc to the NewExam topic, once per StableStudy change.

    Kafka away (down when the bridge starts, or restarted under it): each publish waits with the platform's
    Kafka backoff (cmr/kafka_wait.py), one warning per attempt, a new producer each time (a restarted broker
    does not know the old one's producer id) and the topic re-created, until the broker takes the record or the
    bridge is stopped. The change position is saved only after a poll's studies are all published, so a study
    never published is published after a restart of the bridge; none is skipped."""

    def __init__(self, settings: Settings, *, orthanc_url: str | None = None, dicomweb_url: str | None = None,
                 state_file: Path | None = None, publisher: ExamPublisher | None = None,
                 connect: Callable[[], ExamPublisher] | None = None) -> None:
        """publisher: used until it fails; connect(): a new publisher (default: the topic, then a producer)."""
        self.settings = settings
        self.url = (orthanc_url or settings.orthanc_url).rstrip("/")
        self.dicomweb_url = (dicomweb_url or settings.orthanc_dicomweb_url or f"{self.url}/dicom-web").rstrip("/")
        self.state_file = state_file
        self.publisher = publisher
        self._connect = connect or self._default_connect
        self.since = self._load_since()
        self.published = 0
        self.kafka_retries = 0
        self._stop = threading.Event()
        self._http = requests.Session()

    def _load_since(self) -> int:
        if self.state_file and self.state_file.exists():
            try:
                return int(json.loads(self.state_file.read_text())["since"])
            except (ValueError, KeyError, json.JSONDecodeError):
                log.warning("unreadable bridge state %s; starting from the beginning", self.state_file)
        return 0

    def _save_since(self) -> None:
        if self.state_file:
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps({"since": self.since}))
            tmp.replace(self.state_file)  # atomic: a crash leaves the old or the new state, never half

    def changes(self) -> Iterator[dict[str, object]]:
        """New changes since the last call (following Orthanc's paging)."""
        while True:
            r = self._http.get(f"{self.url}/changes", params={"since": self.since, "limit": 100}, timeout=10)
            r.raise_for_status()
            body = r.json()
            yield from body.get("Changes", [])
            self.since = int(body.get("Last", self.since))
            if body.get("Done", True):
                return

    def poll_once(self) -> int:
        """Publish the studies that became stable since the last poll; returns how many."""
        n = 0
        for change in self.changes():
            if change.get("ChangeType") != "StableStudy":
                continue
            orthanc_id = str(change["ID"])
            r = self._http.get(f"{self.url}/studies/{orthanc_id}", timeout=10)
            if r.status_code == 404:
                continue  # deleted since
            r.raise_for_status()
            uid = r.json().get("MainDicomTags", {}).get("StudyInstanceUID", "")
            if not uid:
                continue
            ref = study_ref(uri=f"{self.dicomweb_url}/studies/{uid}")
            msg = new_exam(ref, source="orthanc", metadata={"orthanc_study_id": orthanc_id,
                                                            "series": str(len(r.json().get("Series", [])))})
            # The record is durable before the position advances: a crash re-publishes, never skips.
            self.publish(msg, uid)
            n += 1
            log.info("published Orthanc study %s as event %s", orthanc_id, msg.event_id)
        self._save_since()
        self.published += n
        return n

    def publish(self, msg: events_pb2.NewExam, uid: str) -> None:
        """Publish (awaited), waiting for Kafka for as long as it takes; BridgeStopping when stopped first,
        KafkaError for what no retry can fix (PERMANENT_KAFKA_ERRORS)."""
        what = f"Kafka at {self.settings.kafka_bootstrap}"

        def before_retry(state: RetryCallState) -> None:
            exc, pause = retry_outline(state)
            self.kafka_retries += 1
            log.warning("bridge waiting for %s: attempt %d failed (%s: %s); next attempt in %.1f s", what,
                        state.attempt_number, type(exc).__name__, exc, pause)

        retrying = kafka_retrying(self.settings, before_retry, self._sleep)
        with kafka_connection_logs_quiet():
            for attempt in retrying:
                with attempt:
                    if self.publisher is None:
                        self.publisher = self._connect()
                    try:
                        self.publisher.publish(msg, uid)
                    except KafkaError:
                        self._drop_publisher()
                        raise
        if retrying.statistics.get("attempt_number", 1) > 1:
            log.info("%s answers again", what)

    def _default_connect(self) -> ExamPublisher:
        s = self.settings
        ensure_topics(s, [s.kafka_topic_new], timeout_s=BROKER_ATTEMPT_S)  # a restarted broker lacks it
        return ExamPublisher(s, make_producer(s, client_id="cmr-orthanc-bridge"))

    def _drop_publisher(self) -> None:
        publisher, self.publisher = self.publisher, None
        if publisher is not None:
            try:
                publisher.producer.close(timeout=0)
            except Exception:  # noqa: BLE001 - a broken producer may fail to close; it is dropped either way
                log.debug("closing a failed producer failed", exc_info=True)

    def _sleep(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise BridgeStopping()

    def run(self, poll_s: float | None = None) -> None:
        interval = poll_s or self.settings.orthanc_poll_s
        while not self._stop.is_set():
            try:
                self.poll_once()
            except requests.RequestException as exc:
                log.warning("Orthanc at %s not reachable (%s); retrying", self.url, type(exc).__name__)
            except BridgeStopping:
                break
            self._stop.wait(interval)

    def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.producer.close(timeout=10)


def c_store(files: Sequence[Path], host: str, port: int, aet: str = "ANY-SCP", calling_aet: str = "CMRINGEST") -> int:
    """Send DICOM files to a PACS by C-STORE (pynetdicom); returns how many were stored."""
    from pynetdicom import AE, StoragePresentationContexts

    ae = AE(ae_title=calling_aet)
    ae.requested_contexts = StoragePresentationContexts[:120]  # at most 128 contexts in one association
    assoc = ae.associate(host, port, ae_title=aet)
    if not assoc.is_established:
        raise ConnectionError(f"C-STORE association with {aet}@{host}:{port} was not accepted")
    stored = 0
    try:
        for f in files:
            status = assoc.send_c_store(pydicom.dcmread(f))
            if status and status.Status == 0x0000:
                stored += 1
            else:
                log.warning("C-STORE of a file refused (status %s)", getattr(status, "Status", "none"))
    finally:
        assoc.release()
    return stored


__all__ = ["BridgeStopping", "OrthancBridge", "OrthancServer", "c_store", "dicomweb_plugin", "orthanc_binary"]
