"""A stand-in for ui.services.Services with canned answers (the page-logic tests), and a helper that runs a page
under Streamlit's AppTest with it. The same pages run against the real services in
tests/integration/up_stack/test_up_stack.py."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from ui.services import CohortResult, Exam, Filters, Finding, Report, UiError, Upload

VIEWS = Path(__file__).resolve().parents[3] / "ui" / "views"
KEYS = [f"{i:032x}" for i in range(1, 6)]


def exam(i: int, score: float = 0.5) -> Exam:
    return Exam(KEYS[i], score, "siemens", 1.5, "2024-01-0" + str(i + 1), ("cine_sax", "cine_4ch"),
                f"1. Finding number {i}.\n2. Second sentence.", ("lv_dilation",), {"dilated LV": 0.8})


def down(service: str) -> UiError:
    return UiError(f"The {service} service is unavailable (not reachable at 127.0.0.1:1).", service=service, down=True)


class FakeServices:
    def __init__(self, *, down_services: tuple[str, ...] = ()) -> None:
        self.down = set(down_services)
        self.calls: list[tuple[str, dict]] = []

    def _check(self, service: str) -> None:
        if service in self.down:
            raise down(service)

    def search_text(self, phrase: str, top_k: int = 10, filters: Filters | None = None) -> list[Exam]:
        self._check("search")
        if not phrase.strip():
            raise UiError("Type a phrase first.")
        self.calls.append(("search_text", {"phrase": phrase, "top_k": top_k, "filters": filters}))
        return [exam(i, 0.9 - 0.1 * i) for i in range(min(top_k, len(KEYS)))]

    def similar(self, *, study_key=None, embedding=None, top_k: int = 8):  # noqa: ANN001, ANN201
        self._check("search")
        self.calls.append(("similar", {"study_key": study_key, "embedding": embedding}))
        return [exam(i) for i in range(2)], [Report(KEYS[3], 0.7, "Nearest report impression.")]

    def zero_shot(self, *, study_key=None, embedding=None) -> list[Finding]:  # noqa: ANN001
        self._check("search")
        return [Finding("lv_dilation", "LV dilation", "finding", 0.81), Finding("lge", "LGE present", "finding", 0.2)]

    def get(self, study_key: str) -> Exam:
        self._check("search")
        return exam(0)

    def stats(self):  # noqa: ANN201
        self._check("search")

        class S:
            exams = 5

        return S()

    def cohort(self, all_of, any_of=(), none_of=(), threshold=0.5, filters=None, limit=200) -> CohortResult:  # noqa: ANN001
        self._check("search")
        if not [p for p in [*all_of, *any_of] if p.strip()]:
            raise UiError("Give at least one phrase under 'all of' or 'any of' (NOT alone selects nothing).")
        self.calls.append(("cohort", {"all_of": list(all_of), "any_of": list(any_of), "none_of": list(none_of),
                                      "threshold": threshold}))
        return CohortResult(3, [exam(i) for i in range(3)])

    def export_cohort(self, all_of, any_of=(), none_of=(), threshold=0.5, filters=None):  # noqa: ANN001, ANN201
        self._check("search")
        return "cohort.csv", b"study_key,score\n" + b"".join(f"{k},0.5\n".encode() for k in KEYS[:3])

    def encode_upload(self, data: bytes) -> Upload:
        self._check("encoder")
        if data[:4] != b"PK\x03\x04":
            raise UiError("The upload is not a zip file: upload a zip of the study's DICOM files.")
        return Upload(np.ones(8, np.float32), "1.2.3", "siemens", 1.5, ("cine_sax",), ("lge_sax",), ())

    def draft(self, mode: str, *, study_key=None, embedding=None) -> Iterator[str]:  # noqa: ANN001
        self._check("generator")
        yield from [f"1. {mode} sentence one.", f"2. {mode} sentence two."]

    def health(self) -> dict[str, bool]:
        return {s: s not in self.down for s in ("encoder", "search", "generator")}


class NoPreviews:
    def gif(self, study_key: str) -> bytes | None:
        return None


def run_page(name: str, services: object, previews: object | None = None, timeout: float = 30) -> AppTest:
    at = AppTest.from_file(str(VIEWS / name), default_timeout=timeout)
    at.session_state["cmr_services"] = services
    at.session_state["cmr_previews"] = previews or NoPreviews()
    return at.run()


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


class GifPreviews:
    """A tiny two-frame animated GIF for every exam."""

    def __init__(self) -> None:
        from PIL import Image

        buf = io.BytesIO()
        frames = [Image.new("L", (8, 8), v) for v in (0, 255)]
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
        self.data = buf.getvalue()

    def gif(self, study_key: str) -> bytes | None:
        return self.data
