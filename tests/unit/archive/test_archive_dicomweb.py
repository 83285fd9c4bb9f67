"""`cmr dataset import --dicomweb`: its failure paths, against a small fake DICOMweb server (HTTPS with a test CA,
bearer token required) that answers each study its own way: a good study, HTTP 500, a non-DICOM part, too slow,
gone (404). The real PACS path (Orthanc) is tests/integration/archive/test_import_dicomweb.py."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from pydantic import SecretStr
from typer.testing import CliRunner

from cmr.archive.dicomweb import DicomwebError, DicomwebSource, client_for, list_studies, public_url
from cmr.archive.importer import ImportRequest, import_archive
from cmr.config import Settings, get_settings
from cmr.rpc.ports import free_ports
from cmr.security.devca import issue_cert, make_ca
from cmr.synth.generate import generate_dataset
from orchestration.cli.main import app
from test_archive_reports import write_export

TOKEN = "t0k-9f2e"
GOOD, FAILING, NOT_DICOM, SLOW, GONE = (f"1.2.826.0.1.3680043.8.498.{n}" for n in (10, 20, 30, 40, 50))
TIMEOUT_S = 0.5


class FakePacs(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, good_uid: str, good_parts: list[bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.studies = sorted([good_uid, FAILING, NOT_DICOM, SLOW, GONE])
        self.good_uid, self.good_parts = good_uid, good_parts
        self.hits: Counter[str] = Counter()
        self.page_cap = 2  # fewer results per page than asked for, as some PACS do
        self.ignore_offset = False

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # the client gave up on the slow study: a broken pipe here is expected


class _Handler(BaseHTTPRequestHandler):
    server: FakePacs

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass

    def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._send(401)
        url = urlsplit(self.path)
        parts = url.path.rstrip("/").split("/")
        if parts[-1] == "studies":  # QIDO-RS
            q = parse_qs(url.query)
            offset = 0 if self.server.ignore_offset else int(q.get("offset", ["0"])[0])
            limit = min(int(q.get("limit", ["100"])[0]), self.server.page_cap)
            page = [{"0020000D": {"vr": "UI", "Value": [u]}} for u in self.server.studies[offset:offset + limit]]
            return self._send(200, json.dumps(page).encode(), "application/dicom+json")
        uid = parts[-1]
        self.server.hits[uid] += 1
        if uid == FAILING:
            return self._send(500)
        if uid == SLOW:
            time.sleep(TIMEOUT_S * 4)
            return self._send(500)
        if uid not in (self.server.good_uid, NOT_DICOM):
            return self._send(404)
        content = self.server.good_parts if uid == self.server.good_uid else [b"<html>login page</html>"]
        boundary = uuid.uuid4().hex
        body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + c + b"\r\n"
                        for c in content) + b"--" + boundary.encode() + b"--\r\n"
        self._send(200, body, f'multipart/related; type="application/dicom"; boundary={boundary}')


@pytest.fixture(scope="module")
def good_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[bytes], Path]:
    """One small synthetic study (its instances as bytes) and a CSV RIS export with its report."""
    root = tmp_path_factory.mktemp("dicomweb_unit")
    (record,) = generate_dataset(root / "synth", 1, 71, workers=1, scanner="ge_signa_1.5T", progress=False,
                                 distractors=False)
    parts = [f.read_bytes() for f in sorted((root / "synth" / record["folder"]).rglob("*.dcm"))]
    return record["study_instance_uid"], parts, write_export(root, [record["ris"]], "csv")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A test CA (its PEM bundle) and a server context with a certificate for 127.0.0.1 that it signed."""
    folder = tmp_path_factory.mktemp("dicomweb_tls")
    ca_key, ca_cert = make_ca()
    key, cert = issue_cert(ca_key, ca_cert, "fake-pacs", ["127.0.0.1"])
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", ctx


@pytest.fixture
def pacs(good_study: tuple[str, list[bytes], Path], tls: tuple[Path, ssl.SSLContext]) -> Iterator[FakePacs]:
    server = FakePacs(good_study[0], good_study[1])
    server.socket = tls[1].wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _url(pacs: FakePacs) -> str:
    return f"https://127.0.0.1:{pacs.server_address[1]}/dicom-web"


def _settings(**update: object) -> Settings:
    return get_settings().model_copy(update={"archive_dicomweb_attempts": 2, "archive_dicomweb_backoff_s": 0.01,
                                             "archive_dicomweb_timeout_s": TIMEOUT_S, **update})


def _source(pacs: FakePacs, ca: Path, token: str | None = TOKEN) -> DicomwebSource:
    return DicomwebSource(_url(pacs), timeout_s=TIMEOUT_S, attempts=2, backoff_s=0.01, ca_bundle=ca, token=token)


def test_failed_fetches_are_exclusions_with_their_reason_and_are_retried_on_resume(
        pacs: FakePacs, good_study: tuple[str, list[bytes], Path], tls: tuple[Path, ssl.SSLContext],
        tmp_path: Path) -> None:
    uid, _, export = good_study
    out = tmp_path / "out"
    req = ImportRequest(None, export, out, workers=1, progress=False, dicomweb=_source(pacs, tls[0]))
    result = import_archive(req, _settings())
    card = result.card
    assert card["counts"]["imported"] == 1 and card["counts"]["excluded_studies"] == 4
    order = {u: i for i, u in enumerate(pacs.studies)}
    reasons = {x["study"].split()[0]: (x["stage"], x["reason"]) for x in card["exclusions"]}
    assert reasons == {
        f"#{order[FAILING]}": ("fetch", "WADO-RS fetch failed: HTTP 500 after 2 tries"),
        f"#{order[NOT_DICOM]}": ("fetch", "WADO-RS fetch failed: a part of the WADO-RS answer is not DICOM"),
        f"#{order[SLOW]}": ("fetch", f"WADO-RS fetch failed: no answer within {TIMEOUT_S:g} s "
                                     "(CMR_ARCHIVE_DICOMWEB_TIMEOUT_S) after 2 tries"),
        f"#{order[GONE]}": ("fetch", "WADO-RS fetch failed: HTTP 404 (study not found)"),
    }
    # Transient failures were retried (one policy: 2 tries), answers that will not change were not.
    assert pacs.hits == {uid: 1, FAILING: 2, NOT_DICOM: 1, SLOW: 2, GONE: 1}
    assert card["source"] == {"kind": "dicomweb", "url": _url(pacs)}

    # A rerun tries the failed fetches again (the PACS may answer now) and not the imported study.
    pacs.hits.clear()
    again = import_archive(req, _settings())
    assert again.resumed == 1 and again.imported == 1
    assert pacs.hits == {FAILING: 2, NOT_DICOM: 1, SLOW: 2, GONE: 1}


def test_listing_pages_until_nothing_new(pacs: FakePacs, tls: tuple[Path, ssl.SSLContext]) -> None:
    """QIDO-RS paging ends both on a server that caps its pages and on one that ignores the offset."""
    assert list_studies(_source(pacs, tls[0])) == pacs.studies  # 5 studies in pages of 2
    pacs.ignore_offset = True
    assert list_studies(_source(pacs, tls[0])) == pacs.studies[:2]


def test_refused_credentials_and_an_untrusted_certificate_are_one_clear_line(
        pacs: FakePacs, tls: tuple[Path, ssl.SSLContext]) -> None:
    with pytest.raises(DicomwebError, match=r"\(QIDO-RS\): HTTP 401 \(credentials refused"):
        list_studies(_source(pacs, tls[0], token="wrong"))
    with pytest.raises(DicomwebError, match=r"TLS certificate not trusted \(--dicomweb-ca"):
        list_studies(_source(pacs, None))  # type: ignore[arg-type]


def test_unreachable_url_is_one_line_without_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (port,) = free_ports(1)  # nothing listens there
    monkeypatch.setattr("cmr.config.get_settings", lambda: _settings())
    export = tmp_path / "r.csv"
    export.write_text("AccessionNumber,ReportText\nA1,IMPRESSION: normal.\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["dataset", "import", "--dicomweb", f"http://who:pw-5ecret@127.0.0.1:{port}"
                                      "/dicom-web?token=q-5ecret", "--reports", str(export), "--out", str(out)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: cannot list the studies at http://127.0.0.1:{port}/dicom-web (QIDO-RS): cannot "
                     "connect (refused, unreachable or dropped) after 2 tries"]
    assert not out.exists()


def test_studies_and_dicomweb_go_alone(tmp_path: Path) -> None:
    export = tmp_path / "r.csv"
    export.write_text("AccessionNumber,ReportText\n")
    both = ["--studies", str(tmp_path), "--dicomweb", "http://127.0.0.1:1/dicom-web"]
    for given in (both, []):
        result = CliRunner().invoke(app, ["dataset", "import", *given, "--reports", str(export), "--out",
                                          str(tmp_path / "out")])
        assert result.exit_code == 2 and "give one of --studies DIR and --dicomweb URL" in result.output


def test_source_settings_credentials_and_public_url(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    s = _settings(archive_dicomweb_username="svc", archive_dicomweb_password=SecretStr("from-env"),
                  archive_dicomweb_ca=ca)
    src = DicomwebSource.from_settings("https://pacs.example:8443/dicom-web/", s)
    assert (src.url, src.username, src.password, src.ca_bundle, src.token) == (
        "https://pacs.example:8443/dicom-web", "svc", "from-env", ca, None)
    src = DicomwebSource.from_settings("https://u%40x:p%3Aw@pacs.example/dicom-web?k=v", s)
    assert (src.url, src.username, src.password) == ("https://pacs.example/dicom-web", "u@x", "p:w")
    assert "p:w" not in repr(src) and "from-env" not in repr(src)
    assert DicomwebSource.from_settings("http://pacs/dw", _settings(archive_dicomweb_token=SecretStr(TOKEN))).token == TOKEN
    assert public_url("http://a:b@[::1]:8042/dw#f") == "http://[::1]:8042/dw"
    with pytest.raises(ValueError, match="http"):
        DicomwebSource.from_settings("ftp://pacs/dicom-web", s)
    with pytest.raises(FileNotFoundError, match="no such CA bundle"):
        DicomwebSource.from_settings("https://pacs/dicom-web", s, tmp_path / "missing.pem")


def test_a_forked_worker_does_not_reuse_its_parents_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    source = DicomwebSource("http://127.0.0.1:1/dicom-web")
    parent = client_for(source)
    assert client_for(source) is parent  # one session per process: connections kept alive between studies
    monkeypatch.setattr("cmr.archive.dicomweb.os.getpid", lambda: -1)  # as seen from a forked worker
    assert client_for(source) is not parent
