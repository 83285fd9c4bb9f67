"""`cmr up` end to end on a small demo (6 studies, a temp data folder, free ports), secured as it ships (TLS
everywhere, HTTPS UI with a login, tokens on every RPC): every page under AppTest against the real services,
then the UI in real headless Chromium (Debian's chromium + chromedriver via selenium, trusting exactly the UI's
certificate): a wrong password is refused, each role sees only its pages, a text search shows result cards with
cine images, a cohort is built and its CSV downloaded, a study is uploaded (its measurements and the contours the
UI segments from it appear); then stop (SIGTERM) and start again
keeps the index, and `cmr down` stops it. Screenshots go to $CMR_E2E_SCREENSHOTS (default: a temp dir).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cmr.config import Settings
from cmr.rpc.health import grpc_health, http_health
from cmr.rpc.ports import free_ports
from cmr.security.devca import init_dev
from search_svc.client import SearchClient

N_DEMO = 6
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
VIEWS = Path(__file__).resolve().parents[3] / "ui" / "views"

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    env: dict[str, str]
    data: Path
    settings: Settings
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    ui_seconds: float = 0.0

    @property
    def ui_url(self) -> str:
        return f"https://127.0.0.1:{self.settings.ui_port}"

    @property
    def ca(self) -> str:
        return str(self.data / "security" / "ca.pem")

    def password(self, user: str) -> str:
        lines = (self.data / "security" / "passwords.txt").read_text().splitlines()
        return dict(line.split(" ", 1) for line in lines)[user]

    def start(self, timeout_s: float = 240) -> None:
        t0 = time.monotonic()
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([sys.executable, "-m", "orchestration.cli.main", "up"], env=self.env, stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        while time.monotonic() - t0 < timeout_s:
            assert self.proc.poll() is None, f"cmr up exited: {self.log.read_text()[-3000:]}"
            if http_health(self.ui_url + "/_stcore/health", 1, cafile=self.ca).ok:
                self.ui_seconds = time.monotonic() - t0
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"UI not up in {timeout_s} s: {self.log.read_text()[-3000:]}")
        while time.monotonic() - t0 < timeout_s:
            if grpc_health(self.settings.search_url, "cmr.v1.SearchService", settings=self.settings).ok and \
                    grpc_health(self.settings.encoder_url, "cmr.v1.EncoderService", settings=self.settings).ok:
                return
            time.sleep(0.5)
        pytest.fail(f"services not up in {timeout_s} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(150)
        self.proc = None
        return code

    def seed_log(self) -> str:
        p = self.data / "stack" / "logs" / "seed.log"
        return p.read_text() if p.exists() else ""

    def wait_seeded(self, runs: int, timeout_s: float = 300) -> None:
        """Until the seeder has finished `runs` times and the index holds every demo study."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.seed_log().count("done:") >= runs and self.exams() >= N_DEMO:
                return
            time.sleep(1)
        pytest.fail(f"demo not indexed in {timeout_s} s: {self.seed_log()[-2000:]}")

    def exams(self) -> int:
        with SearchClient(self.settings.search_url, settings=self.settings, timeout_s=10) as c:
            return int(c.stats().exams)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Iterator[Stack]:
    data = tmp_path_factory.mktemp("up_stack") / "data"
    # The session's synthetic studies (seed 21) stand in for the demo: hard links, so nothing is copied and the
    # seeder finds them generated already.
    shutil.copytree(synth_dir, data / "demo", copy_function=os.link)
    enc, search, gen, ui, tg, th, tm, broker, metrics = free_ports(9)
    env = {**os.environ, "CMR_DATA_DIR": str(data), "CMR_UP_DEMO_STUDIES": str(N_DEMO), "CMR_UP_DEMO_SEED": "21",
           "CMR_ENCODER_PORT": str(enc), "CMR_SEARCH_PORT": str(search), "CMR_GENERATOR_PORT": str(gen),
           "CMR_UI_PORT": str(ui), "CMR_TRITON_GRPC_PORT": str(tg), "CMR_TRITON_HTTP_PORT": str(th),
           "CMR_TRITON_METRICS_PORT": str(tm), "CMR_UP_BROKER_PORT": str(broker), "CMR_INGEST_METRICS_PORT": str(metrics),
           "CMR_TRITON_EXIT_TIMEOUT_S": "1", "CMR_STUDY_KEY_SECRET": "e2e-secret", "CMR_STUDY_ROOTS": "[]"}
    for k in ("CMR_ENCODER_URL", "CMR_SEARCH_URL", "CMR_GENERATOR_URL", "CMR_INDEX_DIR", "CMR_UP_DEMO_DIR"):
        env.pop(k, None)
    env.pop("CMR_AUTH_MODE", None)  # the suite's default (auth off) must not reach the stack: it ships secured
    # `cmr up` keeps what exists: made here first, the test (the operator) holds the admin client identity
    sec = init_dev(data / "security")
    settings = Settings(data_dir=data, encoder_url=f"127.0.0.1:{enc}", search_url=f"127.0.0.1:{search}",
                        generator_url=f"127.0.0.1:{gen}", ui_port=ui, study_roots=[data / "demo"],
                        study_key_secret="e2e-secret", ui_thumb_dir=data / "thumbs", request_timeout_s=60,
                        tls=True, tls_ca=sec.ca, tls_cert=sec.cert("client"), tls_key=sec.key("client"),
                        auth_mode="jwt", auth_public_key=sec.public_key, auth_token_file=sec.token_file("client"))
    s = Stack(env, data, settings, tmp_path_factory.mktemp("up_log") / "up.log")
    t0 = time.monotonic()
    s.start()
    print(f"UI reachable {s.ui_seconds:.1f} s after `cmr up`, encoder and search {time.monotonic() - t0:.1f} s "
          "(cold start, shared 2-core machine)")
    try:
        s.wait_seeded(1)
        print(f"{N_DEMO} demo studies indexed {time.monotonic() - t0:.1f} s after `cmr up`")
        yield s
    finally:
        if s.proc is not None:
            s.stop()


# --- every page under AppTest, against the stack's real services ------------------------------------------
def _apptest(page: str, stack: Stack):  # noqa: ANN202
    from streamlit.testing.v1 import AppTest

    from ui.cine import CinePreviews
    from ui.services import Services

    at = AppTest.from_file(str(VIEWS / page), default_timeout=120)
    at.session_state["cmr_services"] = Services(stack.settings)
    at.session_state["cmr_previews"] = CinePreviews.from_settings(stack.settings)
    return at.run()


def _click(at, label: str):  # noqa: ANN001, ANN202
    return next(b for b in at.button if b.label == label).click().run()


def test_apptest_text_search_real(stack: Stack) -> None:
    at = _apptest("text_search.py", stack)
    at.text_input(key="ts_phrase").input("dilated left ventricle with reduced ejection fraction")
    at = _click(at, "Search")
    assert not at.exception and not at.error
    assert any("6 exams for" in h.value for h in at.subheader)
    assert len(at.get("image")) == 6  # a cine loop on every card (rendered by the seeder or on demand)


def test_apptest_scan_real(stack: Stack) -> None:
    at = _apptest("scan.py", stack)
    at.text_input(key="scan_find").input("hypertrophic cardiomyopathy")
    at = at.run()
    assert not at.exception and not at.error
    assert {"Zero-shot finding profile", "Nearest reports", "Measurements"} <= {h.value for h in at.subheader}
    body = "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])
    # the index's measurements (ingestion measured the demo), and contours segmented here from the study on disk
    assert "-badge[quality " in body and "measured at ingestion" in body and "LVEF" in body
    assert "Contours over the cine loop" in body
    assert "mid-ventricular" in body or "No contours: nothing to segment" in body
    assert 1 <= len(at.get("vega_lite_chart")) <= 2  # the profile, and the volume curve when there is one


def test_apptest_cohort_real(stack: Stack) -> None:
    at = _apptest("cohort.py", stack)
    at.text_area(key="co_any").input("dilated left ventricle\nlate gadolinium enhancement")
    at.slider(key="co_threshold").set_value(0.1)
    at = _click(at, "Build cohort")
    assert not at.exception and not at.error
    total = int(at.metric[0].value)
    assert 0 < total <= N_DEMO
    name, data = at.session_state["co_csv"]
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert name.endswith(".csv") and len(rows) == total and "lvef_pct" in rows[0]
    assert {"LVEF (%)", "LVEDV (ml)"} <= set(at.dataframe[0].value.columns)
    # a measurement range the UI refuses itself, and one only the service refuses: messages, no trace
    at.number_input(key="co_lvef_pct_min").set_value(50.0)
    at.number_input(key="co_lvef_pct_max").set_value(30.0)
    at = _click(at, "Build cohort")
    assert not at.exception and "minimum 50 is above the maximum 30" in at.error[0].value


def test_invalid_measurement_range_is_the_services_message(stack: Stack) -> None:
    from cmr.v1 import common_pb2
    from ui.services import Filters, Services, UiError

    class Unchecked(Filters):  # as if the UI had not checked: what the search service answers
        def ranges(self) -> list[common_pb2.MeasurementRange]:
            return [common_pb2.MeasurementRange(measure="lvef_pct", min=50, max=30)]

    with pytest.raises(UiError, match=r"lvef_pct.*50.*30"):
        Services(stack.settings).search_text("dilated left ventricle", filters=Unchecked())


def test_apptest_draft_real(stack: Stack) -> None:
    at = _apptest("draft.py", stack)
    at.text_input(key="draft_find").input("normal study")
    at = at.run()
    at = _click(at, "Draft the impression")
    assert not at.exception and not at.error
    if grpc_health(stack.settings.generator_url, "cmr.v1.GeneratorService", settings=stack.settings).ok:
        assert at.text_area(key="draft_edit_retrieval").value.strip()
    else:  # the generator is not part of this stack yet: the page says so
        assert any("generator service is unavailable" in w.value for w in at.warning)


def test_bad_upload_is_a_clear_message(stack: Stack) -> None:
    from ui.services import Services, UiError

    svc = Services(stack.settings)
    with pytest.raises(UiError, match="not a zip"):
        svc.encode_upload(b"hello")
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("notes.txt", "not dicom")
    with pytest.raises(UiError, match="not a usable CMR study"):
        svc.encode_upload(buf.getvalue())


# --- the UI in a real browser -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, stack: Stack) -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian chromium + chromium-driver are not installed (scripts/install_system_packages.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-dev-shm-usage", "--window-size=1400,1600",
              # the development CA is not in the browser's store: pin the UI certificate's key instead
              f"--ignore-certificate-errors-spki-list={_spki_hash(stack.data / 'security' / 'ui.pem')}"):
        opts.add_argument(a)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads  # type: ignore[attr-defined]
    yield driver
    driver.quit()


def _spki_hash(cert_pem: Path) -> str:
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    key = x509.load_pem_x509_certificate(cert_pem.read_bytes()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _login(driver, stack: Stack, user: str, password: str | None = None) -> None:  # noqa: ANN001
    """Open the UI (a new Streamlit session) and log in."""
    from selenium.webdriver.common.by import By

    driver.get(stack.ui_url)
    name = _wait(driver, lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='User name']"))
    name.send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "input[aria-label='Password']").send_keys(
        password if password is not None else stack.password(user))
    driver.find_element(By.XPATH, "//button[.//p[text()='Log in']]").click()


def _nav_titles(driver) -> list[str]:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebarNav'] a"))
    time.sleep(1.0)  # the navigation is complete once the first page has rendered
    return [a.text for a in driver.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebarNav'] a")]


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = Path(os.environ.get("CMR_E2E_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _wait(driver, cond, timeout: float = 90):  # noqa: ANN001, ANN202
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A Streamlit rerun replaces elements under our feet: a stale or missing element means "not yet".
    return WebDriverWait(driver, timeout, poll_frequency=0.5,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(cond)


def _click_xpath(driver, xpath: str, timeout: float = 90) -> None:  # noqa: ANN001
    """Click what `xpath` finds, again if a Streamlit rerun replaced the element in between."""
    from selenium.webdriver.common.by import By

    def attempt(d) -> bool:  # noqa: ANN001
        d.find_element(By.XPATH, xpath).click()
        return True

    _wait(driver, attempt, timeout)


def _page(driver, title: str) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    def click_link(d) -> bool:  # noqa: ANN001
        link = next((a for a in d.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebarNav'] a") if title in a.text),
                    None)
        if link is None:
            return False
        link.click()
        return True

    _wait(driver, click_link)
    _wait(driver, lambda d: any(title.split()[0] in h.text for h in d.find_elements(By.TAG_NAME, "h1")))


def _scroll_to_heading(driver, text: str) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    heading = driver.find_element(By.XPATH, f"//h3[contains(., '{text}')]")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", heading)
    time.sleep(1.5)  # let the GIFs paint a frame


def test_browser_login_and_pages_per_role(stack: Stack, browser, shots: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    d = browser
    _login(d, stack, "clinician", "not-the-password")
    _wait(d, lambda d: "Wrong user name or password" in d.page_source)
    assert not d.find_elements(By.CSS_SELECTOR, "[data-testid='stSidebarNav'] a")  # nothing but the login
    d.save_screenshot(str(shots / "login.png"))
    _login(d, stack, "clinician")
    clinician = _nav_titles(d)
    assert any("Draft" in t for t in clinician) and any("Scan" in t for t in clinician)
    assert not any("Cohort" in t for t in clinician)
    _login(d, stack, "researcher")
    researcher = _nav_titles(d)
    assert any("Cohort" in t for t in researcher) and any("Text" in t for t in researcher)
    assert not any("Draft" in t for t in researcher) and not any("Scan" in t for t in researcher)


def test_browser_text_search_shows_cards_with_cine(stack: Stack, browser, shots: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By

    d = browser
    _login(d, stack, "admin")
    phrase = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Phrase']"))
    phrase.send_keys("dilated left ventricle with reduced ejection fraction")
    d.find_element(By.XPATH, "//button[.//p[text()='Search']]").click()
    def three_painted_loops(d):  # noqa: ANN001, ANN202 - cards paint one after another, each its cine loop
        painted = [i for i in d.find_elements(By.CSS_SELECTOR, "[data-testid='stImage'] img")
                   if i.get_attribute("naturalWidth") not in (None, "0")]
        return painted if len(painted) >= 3 else None

    imgs = _wait(d, three_painted_loops)
    assert all("/media/" in (i.get_attribute("src") or "") for i in imgs)
    cards = d.find_elements(By.XPATH, "//*[contains(text(), 'cosine')]")
    assert len(cards) >= 3
    assert "Impression" in d.page_source
    time.sleep(1.0)  # let the GIFs paint a frame
    d.save_screenshot(str(shots / "text_search.png"))


def test_browser_scan_page(stack: Stack, browser, shots: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    _page(d, "Scan")
    box = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Find exams by phrase']"))
    box.send_keys("hypertrophic cardiomyopathy", Keys.ENTER)
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart'] canvas, "
                                                        "[data-testid='stVegaLiteChart'] svg") or None)
    _wait(d, lambda d: "Nearest reports" in d.page_source)
    # the index's measurements, and the contours the UI segments from the study (`cmr up` adds the demo folder
    # to the UI's study roots)
    _wait(d, lambda d: "measured at ingestion" in d.page_source and "segmenter" in d.page_source)
    _wait(d, lambda d: "mid-ventricular" in d.page_source or "No contours" in d.page_source, 240)
    time.sleep(1.5)
    d.save_screenshot(str(shots / "scan.png"))
    _scroll_to_heading(d, "Measurements")
    d.save_screenshot(str(shots / "scan_measurements.png"))


def test_browser_upload_a_study_and_a_bad_file(stack: Stack, browser, tmp_path: Path, shots: Path) -> None:  # noqa: ANN001
    """Scan page with an uploaded zip of DICOM (twins, profile, the encoder's measurements and the contours the UI
    segments from the upload), then a file that is not a study (a message)."""
    import zipfile

    from selenium.webdriver.common.by import By

    study = sorted((stack.data / "demo" / "studies").glob("study_*[0-9]"))[N_DEMO]  # one that is not indexed
    good = tmp_path / "upload_study.zip"
    with zipfile.ZipFile(good, "w", zipfile.ZIP_STORED) as z:
        for f in sorted(study.rglob("*")):
            if f.is_file():
                z.write(f, f.relative_to(study).as_posix())
    bad = tmp_path / "not_a_study.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("notes.txt", "this is not DICOM")
    d = browser
    _login(d, stack, "admin")
    _page(d, "Scan")
    _click_xpath(d, "//label[.//p[contains(text(), 'Upload a study')]]")
    upload = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "input[type='file']"))
    upload.send_keys(str(good))
    _wait(d, lambda d: "Nearest reports" in d.page_source and "upload_study.zip" in d.page_source, 180)
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid='stVegaLiteChart']") or None)
    assert "Most similar exams" in d.page_source
    time.sleep(1.0)
    d.save_screenshot(str(shots / "scan_upload.png"))
    # the encoder's measurements, and the contours the UI segments from the uploaded bytes
    _wait(d, lambda d: "measured by the encoder service" in d.page_source)
    _wait(d, lambda d: "mid-ventricular" in d.page_source or "No contours: nothing to segment" in d.page_source, 240)
    assert "LVEF" in d.page_source and "Traceback" not in d.page_source
    _scroll_to_heading(d, "Measurements")
    d.save_screenshot(str(shots / "scan_upload_measurements.png"))
    # replace the upload with a zip that holds no DICOM: a readable message, no trace
    for x in d.find_elements(By.CSS_SELECTOR, "[data-testid='stFileUploaderDeleteBtn'] button"):
        x.click()
    upload = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "input[type='file']"))
    upload.send_keys(str(bad))
    alert = _wait(d, lambda d: next((a for a in d.find_elements(By.CSS_SELECTOR, "[data-testid='stAlert']")
                                     if "not a usable CMR study" in a.text), None), 120)
    assert "Traceback" not in d.page_source and "File \"" not in alert.text


def test_browser_cohort_and_csv_download(stack: Stack, browser, shots: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    _page(d, "Cohort builder")
    any_of = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "textarea[aria-label='ANY of (OR)']"))
    any_of.send_keys("dilated left ventricle\nlate gadolinium enhancement")
    from selenium.webdriver.common.action_chains import ActionChains

    slider = d.find_element(By.CSS_SELECTOR, "input[type='range'][aria-label='Threshold']")  # react-aria, hidden
    d.execute_script("arguments[0].focus()", slider)
    ActionChains(d).send_keys(*[Keys.ARROW_LEFT] * 12).perform()  # 0.50 -> 0.05 (clamped)
    _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Threshold']").get_attribute("value")
          == "0.05", 10)
    _click_xpath(d, "//button[.//p[text()='Build cohort']]")

    def total_of(d) -> int | None:  # noqa: ANN001
        values = d.find_elements(By.CSS_SELECTOR, "[data-testid='stMetricValue']")
        return int(values[0].text) if values and values[0].text.strip().isdigit() else None

    total = _wait(d, total_of)
    assert total > 0
    _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "[data-testid='stDownloadButton'] button"))
    time.sleep(1.0)
    d.save_screenshot(str(shots / "cohort.png"))
    _click_xpath(d, "//div[@data-testid='stDownloadButton']//button")
    got = _wait(d, lambda d: [p for p in d.downloads.glob("*.csv")] or None, 30)
    rows = list(csv.DictReader(io.StringIO(got[0].read_text())))
    assert len(rows) == total and "study_key" in rows[0]


def test_browser_draft_page(stack: Stack, browser, shots: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    _page(d, "Draft report")
    box = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Find exams by phrase']"))
    box.send_keys("dilated cardiomyopathy", Keys.ENTER)
    _wait(d, lambda d: d.find_element(By.XPATH, "//button[.//p[text()='Draft the impression']]"))
    time.sleep(1.0)  # the phrase search reruns the page
    _click_xpath(d, "//button[.//p[text()='Draft the impression']]")
    _wait(d, lambda d: "Edit and download" in d.page_source or "generator service is unavailable" in d.page_source,
          120)
    time.sleep(1.0)
    d.save_screenshot(str(shots / "draft.png"))


def test_cmr_status_reports_every_part(stack: Stack) -> None:
    r = subprocess.run([sys.executable, "-m", "orchestration.cli.main", "status", "--data-dir", str(stack.data)], env=stack.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    for part in ("encoder", "search", "ui", "seed"):
        assert part in r.stdout
    assert f"index: {N_DEMO} exams" in r.stdout
    assert f"UI: {stack.ui_url}" in r.stdout


# --- PHI: identified headers go in, nothing identifying comes out -------------------------------------------------
def test_no_phi_in_index_events_audit_logs_or_ui(stack: Stack, browser, tmp_path: Path) -> None:  # noqa: ANN001
    from kafka import KafkaConsumer
    from selenium.webdriver.common.by import By

    from phi_cases import folder_bytes, leaks, plant

    sources = sorted((stack.data / "demo" / "studies").glob("study_*[0-9]"))[N_DEMO + 1:N_DEMO + 3]
    planted = [plant(src, stack.data / "demo" / "phi" / f"incoming_{k}", k) for k, src in enumerate(sources, 1)]
    needles = tuple(n for p in planted for n in p.needles)
    before = stack.exams()
    r = subprocess.run([sys.executable, "-m", "orchestration.cli.main", "ingest", *(str(p.path) for p in planted)],
                       env={**stack.env, "CMR_KAFKA_BOOTSTRAP": f"127.0.0.1:{stack.env['CMR_UP_BROKER_PORT']}"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    deadline = time.monotonic() + 240
    while stack.exams() < before + len(planted):
        assert time.monotonic() < deadline, f"planted studies not indexed: {r.stdout}"
        time.sleep(1)
    found: dict[str, list[str]] = {}

    def check(where: str, blob: bytes) -> None:
        if hit := leaks(blob, needles):
            found[where] = hit

    # the index, through the API (every record, every report) and as bytes on disk
    with SearchClient(stack.settings.search_url, settings=stack.settings, timeout_s=30) as client:
        hits = client.search_text("cardiac magnetic resonance", top_k=200)
        assert len(hits) == before + len(planted)
        for h in hits:
            check(f"index record {h.exam.study_key}", str(client.get(h.exam.study_key)).encode())
        check("cohort export", client.export_cohort(all_of=["normal"], threshold=0.01)[1])
    for path, blob in folder_bytes(stack.data / "index").items():
        check(path, blob)
    # events (embedding events, audit topic) as the broker holds them
    for topic in ("cmr.exams.embedded", "cmr.audit"):
        consumer = KafkaConsumer(topic, bootstrap_servers=f"127.0.0.1:{stack.env['CMR_UP_BROKER_PORT']}",
                                 auto_offset_reset="earliest", consumer_timeout_ms=5000, group_id=None)
        messages = [m.value for m in consumer]
        consumer.close()
        assert messages, f"no messages on {topic}"
        check(f"topic {topic}", b"\n".join(messages))
    # the audit trail and every service's log
    for folder in ("audit", "stack/logs"):
        for path, blob in folder_bytes(stack.data / folder).items():
            check(path, blob)
    # the UI: a search that shows the planted studies' cards, and the scan page
    d = browser
    _login(d, stack, "admin")
    phrase = _wait(d, lambda d: d.find_element(By.CSS_SELECTOR, "input[aria-label='Phrase']"))
    phrase.send_keys("cardiac magnetic resonance")
    d.find_element(By.XPATH, "//button[.//p[text()='Search']]").click()
    _wait(d, lambda d: d.find_elements(By.XPATH, "//*[contains(text(), 'cosine')]") or None)
    check("UI text search page", d.page_source.encode())
    _page(d, "Scan")
    check("UI scan page", d.page_source.encode())
    assert not found, f"PHI leaked: {found}"


# --- each part SIGKILLed in turn: supervisord restarts it ---------------------------------------------------
# The encoder and the generator are left to `cmr bench crash --parts stack` (docs/benchmarks/crash.md): their
# restarts (Triton loading the model: 35-45 s; the generator: 18-55 s) measured on the shared 2-core machine
# would take this test past its ~60 s share of CI. The four here: 20 s on a quiet machine, 37-65 s at load 7-10.
KILLED_IN_CI = ("broker", "search", "ingest", "ui")


def test_each_part_killed_comes_back_and_the_ui_shows_it(stack: Stack) -> None:
    from bench.crash_stack import Searcher, kill_part
    from bench.crash_stack_rig import StackProbe
    from ui.services import Services

    broker, metrics = int(stack.env["CMR_UP_BROKER_PORT"]), int(stack.env["CMR_INGEST_METRICS_PORT"])
    probe = StackProbe(stack.data, stack.settings, broker, metrics)
    # the UI's sidebar as `cmr up` runs it (CMR_UI_STACK_STATUS)
    ui = Services(stack.settings.model_copy(update={"ui_stack_status": True, "kafka_bootstrap": f"127.0.0.1:{broker}",
                                                    "ingest_metrics_port": metrics}))
    before = stack.exams()
    searcher = Searcher(probe).start()
    try:
        for part in KILLED_IN_CI:
            t0 = time.monotonic()
            rec = kill_part(probe, part, searcher, give_up_s=90, with_status=False, ui_health=ui.health)
            print(f"{part}: back in {rec.back_s:.1f} s, searches failed {rec.search_failures}/{rec.searches}, "
                  f"{time.monotonic() - t0:.1f} s in all")
            assert not rec.problems, rec
            assert rec.down_seen and 0 <= rec.back_s <= 60 and rec.new_pid != rec.pid
    finally:
        searcher.stop()
    assert stack.exams() == before
    with SearchClient(stack.settings.search_url, settings=stack.settings, timeout_s=30) as c:
        assert len(c.search_text("dilated left ventricle", top_k=3)) == 3


# --- stop and start again: the index survives ---------------------------------------------------------------
def test_restart_keeps_the_index(stack: Stack) -> None:
    before = stack.exams()
    assert before >= N_DEMO  # the demo, and the PHI test's planted studies
    t0 = time.monotonic()
    assert stack.stop() == 0
    print(f"stopped in {time.monotonic() - t0:.1f} s")
    assert not http_health(stack.ui_url + "/_stcore/health", 1, cafile=stack.ca).ok
    assert not grpc_health(stack.settings.search_url, "cmr.v1.SearchService", 1, settings=stack.settings).ok
    assert not (stack.data / "stack" / "supervisor.sock").exists() or \
        subprocess.run(["pgrep", "-f", str(stack.data / "stack" / "supervisord.conf")]).returncode != 0
    t0 = time.monotonic()
    stack.start()
    print(f"restarted: UI {stack.ui_seconds:.1f} s, encoder and search {time.monotonic() - t0:.1f} s")
    assert stack.exams() == before  # straight from disk, before the seeder has looked at anything
    stack.wait_seeded(2)
    assert stack.exams() == before
    assert f"0 sent for indexing, {N_DEMO} already indexed" in stack.seed_log().split("done:")[-1]
    # `cmr down` from another terminal stops it too, and `cmr up` exits cleanly
    r = subprocess.run([sys.executable, "-m", "orchestration.cli.main", "down", "--data-dir", str(stack.data)], env=stack.env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    t0 = time.monotonic()
    assert stack.proc is not None and stack.proc.wait(150) == 0
    print(f"cmr down: stopped in {time.monotonic() - t0:.1f} s")
    stack.proc = None
