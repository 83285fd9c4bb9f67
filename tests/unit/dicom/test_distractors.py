"""The loader never puts a distractor series (scouts, TI scout, T1/T2 mapping, perfusion, flow, STIR, the PSIR
phase image, real-time cine, derived and secondary-capture images) into the exam tensor, for every vendor style
and every kind, named as the vendor names it or with SeriesDescription and ProtocolName both empty; a repeated
cine is picked by one rule (the later one) and the choice is noted.

The studies are real `cmr synth` output with the styles shrunk (small matrices, few phases and slices), so the
whole module takes seconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from cmr.dicom import ExamSpec, Study, load_study
from cmr.dicom.exam import assemble_exam, slot_sources
from cmr.synth.distractors import KINDS
from cmr.synth.generate import StudyRequest, generate_study
from cmr.synth.scanners import STYLES

SPEC = ExamSpec(image_size=32)


def _small(name: str) -> Any:
    s = STYLES[name]
    return dataclasses.replace(s, matrix=(48, 48), phases=10, sax_slices=(5, 6))


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per style: the record and folder of one study with distractors, and of the same study without."""
    out: dict[str, dict[str, Any]] = {}
    with pytest.MonkeyPatch.context() as mp:
        for name in STYLES:
            mp.setitem(STYLES, name, _small(name))
        for i, name in enumerate(STYLES):
            with_d = tmp_path_factory.mktemp("with")
            without = tmp_path_factory.mktemp("without")
            rec = generate_study(StudyRequest(with_d, 3, i, name, "train", True))
            plain = generate_study(StudyRequest(without, 3, i, name, "train", False))
            out[name] = {"record": rec, "folder": with_d / rec["folder"], "plain": without / plain["folder"]}
    return out


def _unnamed(folder: Path) -> list[pydicom.Dataset]:
    """Every file of the study with SeriesDescription and ProtocolName removed."""
    out = []
    for f in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        for keyword in ("SeriesDescription", "ProtocolName"):
            if keyword in ds:
                delattr(ds, keyword)
        out.append(ds)
    return out


_loaded: dict[tuple[str, str], Study] = {}


def _load(studies: dict[str, dict[str, Any]], style: str, naming: str) -> Study:
    key = (style, naming)
    if key not in _loaded:
        folder = studies[style]["folder"]
        _loaded[key] = load_study(folder if naming == "named" else _unnamed(folder))
    return _loaded[key]


@pytest.mark.parametrize("naming", ["named", "unnamed"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("style", list(STYLES))
def test_no_distractor_in_the_exam(studies: dict[str, dict[str, Any]], style: str, kind: str, naming: str) -> None:
    study = _load(studies, style, naming)
    entry = next(d for d in studies[style]["record"]["distractors"] if d["kind"] == kind)
    number = entry["series_number"]
    sources = slot_sources(study, SPEC)
    used = {s.series_number for s in study.series if any(s.key in keys for keys in sources.values())}
    assert all(sources.values()), f"an exam slot went empty: {sources}"
    if kind == "secondary_capture":
        assert not [s for s in study.series if s.series_number == number]
        assert any("secondary capture" in f.reason for f in study.skipped)
    elif kind == "cine_repeat":
        # The repeat and its original are one view: the later (the repeat) fills the slot, never both.
        repeated = [s for s in study.series if s.series_number == number]
        assert repeated and repeated[0].kind == "cine"
        same_view = [s for s in study.series if s.kind == "cine" and s.view == repeated[0].view]
        assert len(same_view) == 2
        assert number in used and not ({s.series_number for s in same_view} - {number}) & used
        assert any(f"the exam uses #{number}" in w for w in study.warnings)
    else:
        series = [s for s in study.series if s.series_number == number]
        assert series, f"{kind} series #{number} was not read"
        assert number not in used, f"{kind} (#{number}, {series[0].kind} {series[0].view}) fills {sources}"
        assert all(s.kind not in ("cine", "lge") for s in series)


@pytest.mark.parametrize("style", list(STYLES))
def test_exam_tensor_is_the_same_with_and_without_distractors(studies: dict[str, dict[str, Any]], style: str) -> None:
    plain_study = load_study(studies[style]["plain"])
    for spec in (SPEC, dataclasses.replace(SPEC, centre="heart")):
        with_d = assemble_exam(_load(studies, style, "named"), spec)
        plain = assemble_exam(plain_study, spec)
        np.testing.assert_array_equal(with_d.mask, plain.mask)
        np.testing.assert_array_equal(with_d.pixels_uint8(), plain.pixels_uint8())


def test_every_kind_is_written_for_every_style(studies: dict[str, dict[str, Any]]) -> None:
    for style, s in studies.items():
        kinds = [d["kind"] for d in s["record"]["distractors"]]
        assert sorted(kinds) == sorted(KINDS), style
        assert len({d["series_number"] for d in s["record"]["distractors"]}) == len(KINDS)
