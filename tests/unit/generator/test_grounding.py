"""Grounding drafts in the measurements (cmr.generator.grounding): numbers replaced in the sentence's own
style, removed where unavailable, contradicting severity words rewritten or flagged, the measurement sentence,
what changed per sentence, idempotence, and no number ever invented."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import numpy as np
import pytest

from cmr.generator.grounding import (
    MISSING_PREFIX,
    REVIEW_PREFIX,
    SUMMARY_PREFIX,
    GROUNDED_FIELDS,
    find_statements,
    format_value,
    ground_draft,
    ground_sentence,
    ground_text,
    measurement_sentence,
    stated_values,
)
from cmr.quant.volumes import Measurements
from cmr.reports import label_report, label_sentence, split_sentences
from cmr.synth.report import write_impression
from cmr.synth.truth import sample_truth

# LVEF 25 % (severe), RVEF 48 % (normal), dilated LV
LOW = Measurements(lvef_pct=25.4, lvedv_ml=245.2, lvesv_ml=182.9, lvsv_ml=62.3, lv_mass_g=150.4, rvef_pct=48.2,
                   rvedv_ml=170.0, rvesv_ml=88.0, lvedvi_ml_m2=118.3, lvesvi_ml_m2=88.0, lv_mass_index_g_m2=72.5,
                   rvedvi_ml_m2=82.0, rvesvi_ml_m2=42.0, bsa_m2=2.07, quality="ok", model="seg@1")
# LVEF 62 %, no RV found, no height/weight (nothing indexed)
_NO_RV = "no right ventricle found in the short-axis stack"
_NO_BSA = "the study has no patient height and weight"
NORMAL = Measurements(lvef_pct=62.0, lvedv_ml=150.0, lvesv_ml=57.0, lvsv_ml=93.0, lv_mass_g=110.0, quality="check",
                      quality_reasons=["right ventricle not found"], model="seg@1",
                      unavailable={**{k: _NO_RV for k in ("rvef_pct", "rvedv_ml", "rvesv_ml", "rvedvi_ml_m2",
                                                         "rvesvi_ml_m2")},
                                   **{k: _NO_BSA for k in ("lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2",
                                                           "bsa_m2")}})
FAILED = Measurements.unmeasurable("no short-axis cine stack in the study", "seg@1")


def _g(sentence: str, m: Measurements | None) -> str:
    return ground_sentence(sentence, m).text


# --- finding the statements -----------------------------------------------------------------------------

@pytest.mark.parametrize("sentence, expected", [
    ("Severely reduced LV systolic function (LVEF 23%).", [("lvef_pct", 23.0, "23%")]),
    ("Normal LV size and function, EF of 35 %.", [("lvef_pct", 35.0, "35 %")]),
    ("The ejection fraction is estimated at 30-35%.", [("lvef_pct", 32.5, "30-35%")]),
    ("Left ventricular ejection fraction was 41 percent.", [("lvef_pct", 41.0, "41 percent")]),
    ("LVEF 35%-40%.", [("lvef_pct", 37.5, "35%-40%")]),
    ("LVEF >55%.", [("lvef_pct", 55.0, ">55%")]),
    ("LVEF is mildly reduced at 45%.", [("lvef_pct", 45.0, "45%")]),
    ("LVEF by Simpson's biplane 52%.", [("lvef_pct", 52.0, "52%")]),
    ("Normal biventricular size and function (LVEF 63%, RVEF 61%).", [("lvef_pct", 63.0, "63%"),
                                                                      ("rvef_pct", 61.0, "61%")]),
    ("The RV is dilated with reduced systolic function (EF 35%).", [("rvef_pct", 35.0, "35%")]),
    ("RV EF 40% and right ventricular ejection fraction of 41%.", [("rvef_pct", 40.0, "40%"),
                                                                    ("rvef_pct", 41.0, "41%")]),
    ("LVEDV 210 ml (indexed 110 ml/m2), LVESV 150 mL, LV mass 160 g.",
     [("lvedv_ml", 210.0, "210 ml"), ("lvedvi_ml_m2", 110.0, "110 ml/m2"), ("lvesv_ml", 150.0, "150 mL"),
      ("lv_mass_g", 160.0, "160 g")]),
    ("Mildly dilated LV (indexed LV EDV 121 mL/m²).", [("lvedvi_ml_m2", 121.0, "121 mL/m²")]),
    ("The LV is dilated (LVEDVi 110 mL/m2).", [("lvedvi_ml_m2", 110.0, "110 mL/m2")]),
    ("Enlarged RV (RV indexed end-diastolic volume of 140 mL/m2).", [("rvedvi_ml_m2", 140.0, "140 mL/m2")]),
    ("LV end-diastolic volume 250 ml, end-systolic volume 180 ml.", [("lvedv_ml", 250.0, "250 ml"),
                                                                     ("lvesv_ml", 180.0, "180 ml")]),
    ("LV mass 150 g (75 g/m2), LVMI 80 g/m2.", [("lv_mass_g", 150.0, "150 g"),
                                                ("lv_mass_index_g_m2", 75.0, "75 g/m2"),
                                                ("lv_mass_index_g_m2", 80.0, "80 g/m2")]),
    # a bare "stroke volume" is the LV's unless the RV was named before it
    ("RVEDV 180 ml, RVESV 90 ml, stroke volume 70 ml.", [("rvedv_ml", 180.0, "180 ml"), ("rvesv_ml", 90.0, "90 ml"),
                                                         ("lvsv_ml", 70.0, "70 ml")]),
    ("The RV is dilated, end-diastolic volume 250 ml, stroke volume 70 ml.", [("rvedv_ml", 250.0, "250 ml")]),
])
def test_statements_are_found_with_their_measure_and_text(sentence: str, expected: list[tuple[str, float, str]]) -> None:
    found = [(s.measure, s.value, s.text.strip()) for s in find_statements(sentence)]
    assert found == expected


@pytest.mark.parametrize("sentence", [
    "Subendocardial LGE in the LAD territory with 25-50% transmurality.",
    "Asymmetric septal LVH (22 mm; septal to lateral wall ratio 1.5: 1).",
    "Dilated left atrium (LAVi 66.1 mL/m²).",
    "The aortic root is mildly dilated at 45 mm.",
    "Small pericardial effusion (8 mm).",
    "Full-thickness LGE involving more than 75% of the wall.",
    "Hypokinesis of 3 segments; EF is reduced.",
    "A 20 mm mass in the liver.",
    "Reduced LVEF/RVEF.",
])
def test_other_numbers_are_not_statements(sentence: str) -> None:
    assert find_statements(sentence) == []
    assert _g(sentence, LOW).startswith(sentence[:-1])  # left as written (perhaps with a review note)


def test_numbers_of_unmeasured_quantities_are_listed_as_unverified() -> None:
    g = ground_sentence("Asymmetric septal hypertrophy measuring 22 mm; LAVi 66.1 mL/m² (LVEF 60%).", NORMAL)
    assert g.unverified == ("22 mm", "66.1 mL/m²")


# --- replacing ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sentence, expected", [
    ("Severely reduced LV systolic function (LVEF 23%) with regional akinesis.",
     "Severely reduced LV systolic function (LVEF 25%) with regional akinesis."),
    ("The LV is dilated with severely reduced global systolic function, EF of 28 %.",
     "The LV is dilated with severely reduced global systolic function, EF of 25 %."),
    ("The ejection fraction is estimated at 20-25%, in keeping with severe dysfunction.",
     "The ejection fraction is estimated at 25%, in keeping with severe dysfunction."),
    ("LVEF >15%.", "LVEF 25%."),
    ("LVEDV 210 ml (indexed 110 ml/m2), LVESV 150 ml, LV mass 160 g.",
     "LVEDV 245 ml (indexed 118 ml/m2), LVESV 183 ml, LV mass 150 g."),
    ("Dilated LV (LVEDVi 130 mL/m²) with severely impaired function (LVEF 20%).",
     "Dilated LV (LVEDVi 118 mL/m²) with severely impaired function (LVEF 25%)."),
    ("RV size normal (calculated RVEF 62%).", "RV size normal (calculated RVEF 48%)."),
    ("LV mass 200 g (98 g/m2).", "LV mass 150 g (73 g/m2)."),
])
def test_numbers_are_replaced_in_the_sentences_style(sentence: str, expected: str) -> None:
    assert _g(sentence, LOW) == expected


def test_replacement_is_recorded_per_number() -> None:
    g = ground_sentence("Normal biventricular size and function (LVEF 63 %, RVEF 61%).", NORMAL)
    assert [c.to_dict() for c in g.changes] == [
        {"measure": "lvef_pct", "action": "replaced", "before": "63 %", "after": "62 %", "reason": ""},
        {"measure": "rvef_pct", "action": "removed", "before": "61%", "after": "", "reason": _NO_RV}]
    assert g.text == "Normal biventricular size and function (LVEF 62 %)."


@pytest.mark.parametrize("value, field, text", [
    (49.6, "lvef_pct", "49.6"), (49.97, "lvef_pct", "49.9"), (49.4, "lvef_pct", "49"), (50.4, "lvef_pct", "50"), (35.5, "lvef_pct", "36"),
    (44.6, "rvef_pct", "44.6"), (45.2, "rvef_pct", "45"), (245.5, "lvedv_ml", "246"), (72.49, "lv_mass_g", "72"),
])
def test_values_are_rounded_without_crossing_the_threshold(value: float, field: str, text: str) -> None:
    assert format_value(field, value) == text


# --- removing -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sentence, expected", [
    ("Severely reduced LV systolic function (LVEF 23%) with regional akinesis.",
     "Severely reduced LV systolic function with regional akinesis."),
    ("Preserved left ventricular systolic function, with an ejection fraction of 58%.",
     "Preserved left ventricular systolic function."),
    ("LV systolic function is impaired, LVEF 35%, with hypokinesis of the septum.",
     "LV systolic function is impaired, with hypokinesis of the septum."),
    ("LV systolic function is normal; calculated LVEF 60%.", "LV systolic function is normal."),
    ("Moderately impaired LV with an LVEF of 35%.", "Moderately impaired LV."),
    ("The LVEF is estimated at 30-35%, consistent with moderate dysfunction.",
     "Consistent with moderate dysfunction."),
    ("Normal biventricular size and function (LVEF 69% and RVEF 65%).", "Normal biventricular size and function."),
    ("Mildly dilated LV (indexed LV EDV 121 mL/m²) with moderately impaired systolic function (LVEF 37%).",
     "Mildly dilated LV with moderately impaired systolic function."),
])
def test_unavailable_numbers_are_removed_keeping_the_words(sentence: str, expected: str) -> None:
    g = ground_sentence(sentence, None)
    assert g.text == expected
    assert all(c.action == "removed" and c.reason for c in g.changes) and g.changes
    assert label_sentence(expected).stated().keys() <= label_sentence(sentence).stated().keys() | {"lv_dysfunction"}


@pytest.mark.parametrize("sentence", ["LVEF 35%.", "Left ventricular ejection fraction is 35%.",
                                      "LVEDV 210 ml (indexed 110 ml/m2), LVESV 150 ml, LV mass 160 g."])
def test_a_sentence_of_numbers_only_is_dropped(sentence: str) -> None:
    g = ground_sentence(sentence, None)
    assert g.dropped and g.text == "" and g.source == sentence and g.changes


def test_only_the_unavailable_numbers_are_removed() -> None:
    assert _g("Normal biventricular size and function (LVEF 63%, RVEF 61%).", NORMAL) == \
        "Normal biventricular size and function (LVEF 62%)."
    assert _g("Normal biventricular size and function (LVEF 69% and RVEF 65%).", NORMAL) == \
        "Normal biventricular size and function (LVEF 62%)."
    assert _g("(calculated LVEF 60%, RVEF 62%) Normal.", NORMAL) == "(calculated LVEF 62%) Normal."
    assert _g("LVEDV 210 ml (indexed 110 ml/m2).", NORMAL) == "LVEDV 150 ml."
    g = ground_sentence("The RV is dilated (RV indexed end-diastolic volume 140 mL/m2) with mildly reduced "
                        "systolic function (RVEF 41%).", NORMAL)
    assert g.text == "The RV is dilated with mildly reduced systolic function."
    assert {c.reason for c in g.changes} == {_NO_RV}


def test_failed_quality_states_no_number() -> None:
    g = ground_text("Normal LV systolic function (LVEF 60%). No LGE.", FAILED)
    assert g.texts == ["Normal LV systolic function.", "No LGE.",
                       f"{MISSING_PREFIX} (no short-axis cine stack in the study): LVEF, volumes and mass are "
                       "not stated."]


# --- contradicting words --------------------------------------------------------------------------------

@pytest.mark.parametrize("sentence, m, expected", [
    ("Preserved LV systolic function (LVEF 58%).", LOW, "Severely reduced LV systolic function (LVEF 25%)."),
    ("LV systolic function is normal.", LOW, "LV systolic function is severely reduced."),
    ("LV systolic performance: within normal limits (LVEF measured at 61%).", LOW,
     "LV systolic performance: severely reduced (LVEF measured at 25%)."),
    ("Left ventricular contractility appears mildly depressed.", LOW,
     "Left ventricular contractility appears severely depressed."),
    ("Mildly dilated LV with moderately impaired systolic function (LVEF 37%).", NORMAL,
     "Mildly dilated LV with normal systolic function (LVEF 62%)."),
    ("Hyperdynamic LV systolic function (LVEF 75%).", NORMAL, "Normal LV systolic function (LVEF 62%)."),
    ("Normal LV size and systolic function.", LOW, "Normal LV size and severely reduced systolic function "
     "(review: measured LVEDVi 118 ml/m²)."),
    ("Mild LV systolic dysfunction.", LOW, "Severe LV systolic dysfunction."),
    ("Non-dilated RV with mildly reduced systolic function (RVEF 41%).", LOW,
     "Non-dilated RV with normal systolic function (RVEF 48%)."),
    ("Low-normal LV systolic function (LVEF 51%).", Measurements(lvef_pct=47.0, quality="ok"),
     "Mildly reduced LV systolic function (LVEF 47%)."),
])
def test_contradicting_severity_words_are_rewritten(sentence: str, m: Measurements, expected: str) -> None:
    g = ground_sentence(sentence, m)
    assert g.text == expected
    assert g.rewrites
    # the labeller now reads what was measured
    ef = m.lvef_pct if "RV" not in sentence else m.rvef_pct
    finding = "rv_dysfunction" if "RV" in sentence else "lv_dysfunction"
    cut = 45 if "RV" in sentence else 50
    assert label_report(g.text).present(finding) == (ef < cut)


@pytest.mark.parametrize("sentence, m, note", [
    # one word for both ventricles that measure differently
    ("Normal biventricular size and function (LVEF 63%, RVEF 61%).", LOW,
     "(review: measured LVEF 25 %, RVEF 48 %, LVEDVi 118 ml/m²)"),
    # "impaired LV" cannot become "normal LV" (it would read as the size)
    ("Severely dilated, severely impaired LV (LVEF 20%).", NORMAL, "(review: measured LVEF 62 %)"),
    # a normal-study summary with a low measured LVEF
    ("Normal cardiac MRI.", Measurements(lvef_pct=30.0, quality="ok"), "(review: measured LVEF 30 %)"),
    # words the rules do not rewrite, read by the labeller
    ("The LV is not impaired.", Measurements(lvef_pct=30.0, quality="ok"), "(review: measured LVEF 30 %)"),
])
def test_contradictions_that_cannot_be_rewritten_are_flagged(sentence: str, m: Measurements, note: str) -> None:
    g = ground_sentence(sentence, m)
    assert g.review and note in g.text and g.text.endswith(note + ".")
    assert ground_sentence(sentence, m, flag_in_text=False).text.find("review") == -1


def test_consistent_words_are_left_alone() -> None:
    for sentence in ("Severely impaired LV systolic function (LVEF 20%).",
                     "Mildly to moderately reduced LV systolic function.",
                     "Non-dilated LV with preserved systolic function."):
        m = LOW if "Severely" in sentence else NORMAL if "preserved" in sentence else Measurements(lvef_pct=35.0,
                                                                                               quality="ok")
        g = ground_sentence(sentence, m)
        assert not g.rewrites and not g.review


# --- the measurement sentence and notes -----------------------------------------------------------------

def test_a_draft_without_lvef_gets_the_measurement_sentence_first() -> None:
    g = ground_text(["Normal cardiac MRI study.", "No LGE."], Measurements(
        lvef_pct=61.2, lvedv_ml=140.4, lvesv_ml=54.6, lv_mass_g=101.0, rvef_pct=55.0, lvedvi_ml_m2=75.3,
        quality="ok"))
    assert g.texts == [f"{SUMMARY_PREFIX} LVEF 61 %, LVEDV 140 ml (75 ml/m²), LVESV 55 ml, LV mass 101 g; "
                       "RVEF 55 %.", "Normal cardiac MRI study.", "No LGE."]
    assert g.sentences[0].kind == "measurements" and g.sentences[0].source is None
    assert {c.measure for c in g.sentences[0].changes} == {"lvef_pct", "lvedv_ml", "lvedvi_ml_m2", "lvesv_ml",
                                                           "lv_mass_g", "rvef_pct"}
    assert all(c.action == "added" for c in g.sentences[0].changes)
    assert label_report(g.texts[0]).state("lv_dysfunction") == "absent"


def test_the_measurement_sentence_says_when_to_review() -> None:
    text = measurement_sentence(NORMAL)
    assert text == f"{SUMMARY_PREFIX} LVEF 62 %, LVEDV 150 ml, LVESV 57 ml, LV mass 110 g (review: right ventricle " \
                   "not found)."
    assert measurement_sentence(FAILED) is None


def test_a_draft_with_lvef_gets_no_measurement_sentence_but_a_review_note_when_quality_is_check() -> None:
    g = ground_text(["Normal LV systolic function (LVEF 58%).", "No LGE."], NORMAL)
    assert g.texts == ["Normal LV systolic function (LVEF 62%).", "No LGE.",
                       f"{REVIEW_PREFIX} right ventricle not found."]
    g = ground_text(["Normal LV systolic function (LVEF 58%).", "No LGE."], LOW)
    assert g.texts == ["Severely reduced LV systolic function (LVEF 25%).", "No LGE."]


def test_without_measurements_the_draft_says_so_last() -> None:
    g = ground_text("1. Severely reduced LV systolic function (LVEF 23%).\n2. LVEF 23%.\n3. No LGE.", None,
                    missing_reason="measuring is off on this server")
    assert g.texts == ["Severely reduced LV systolic function.", "No LGE.",
                       f"{MISSING_PREFIX} (measuring is off on this server): LVEF, volumes and mass are not stated."]
    assert g.counts() == {"replaced": 0, "removed": 2, "added": 0, "rewritten": 0, "review": 0, "dropped": 1}


def test_streaming_holds_sentences_back_only_until_an_lvef_statement() -> None:
    consumed: list[str] = []

    def draft(sentences: list[str]) -> Iterator[str]:
        for s in sentences:
            consumed.append(s)
            yield s

    stream = ground_draft(draft(["Severely impaired LV (LVEF 20%).", "No LGE.", "No effusion."]), LOW)
    first = next(stream)
    assert first.text == "Severely impaired LV (LVEF 25%)." and consumed == ["Severely impaired LV (LVEF 20%)."]
    consumed.clear()
    stream = ground_draft(draft(["No LGE.", "Dilated LV with reduced function, EF 30%.", "No effusion."]), LOW)
    assert next(stream).text == "No LGE." and len(consumed) == 2  # held until the LVEF statement was seen
    consumed.clear()
    stream = ground_draft(draft(["No LGE.", "No effusion."]), LOW)
    assert next(stream).kind == "measurements" and len(consumed) == 2  # the end decides: the sentence goes first


# --- properties over many synthetic impressions ---------------------------------------------------------

def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)?", text)


def _random_measurements(r: random.Random) -> Measurements | None:
    if r.random() < 0.15:
        return None
    values = {f: round(r.uniform(lo, hi), 1) for f, (lo, hi) in {
        "lvef_pct": (10, 80), "lvedv_ml": (60, 400), "lvesv_ml": (20, 300), "lv_mass_g": (60, 250),
        "rvef_pct": (15, 75), "rvedv_ml": (60, 350), "lvedvi_ml_m2": (40, 200), "rvedvi_ml_m2": (40, 200),
        "lv_mass_index_g_m2": (30, 130)}.items() if r.random() > 0.2}
    unavailable = {f: "not found" for f in GROUNDED_FIELDS if f not in values}
    return Measurements(**values, quality=r.choice(["ok", "ok", "check"]), unavailable=unavailable,
                        quality_reasons=["low segmentation confidence (0.70)"])


@pytest.fixture(scope="module")
def drafts() -> list[tuple[list[str], Measurements | None]]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(600):
        impression = write_impression(sample_truth(rng), rng, "train" if i % 2 else "heldout")
        out.append((split_sentences(impression.text), _random_measurements(random.Random(i))))
    return out


def test_grounded_drafts_state_exactly_the_measurements_and_invent_nothing(drafts) -> None:  # noqa: ANN001
    for sentences, m in drafts:
        g = ground_text(sentences, m)
        allowed = set(_numbers(" ".join(sentences)))
        if m is not None:
            allowed |= {format_value(f, v) for f, v in m.values().items() if v is not None and f in GROUNDED_FIELDS}
            allowed |= set(_numbers(" ".join(m.quality_reasons)))
        for text in g.texts:
            assert set(_numbers(text)) <= allowed, (sentences, text)
            for s in find_statements(text):
                v = None if m is None else getattr(m, s.measure)
                assert v is not None and float(format_value(s.measure, v)) == s.value, (text, s)
            assert not re.search(r"\s[,.;:)]|\(\s|\(\)|,,|\s{2}", text), text  # tidy punctuation
        if m is None:
            assert g.texts[-1].startswith(MISSING_PREFIX)
        # the labeller reads the measured LV function in every sentence that speaks of it, unless it is flagged
        if m is not None and m.lvef_pct is not None:
            low = float(format_value("lvef_pct", m.lvef_pct)) < 50
            for s in g.sentences:
                labels = label_sentence(s.text)
                if s.dropped or s.review or labels.summary is not None:  # "Otherwise normal." covers the rest
                    continue
                if "lv_dysfunction" in labels.stated():
                    assert (labels.stated()["lv_dysfunction"].state == "present") == low, (s, m.lvef_pct)


def test_grounding_is_idempotent(drafts) -> None:  # noqa: ANN001
    for sentences, m in drafts:
        once = ground_text(sentences, m)
        twice = ground_text(once.texts, m)
        assert twice.texts == once.texts
        assert all(c.action == "replaced" and c.before == c.after for c in twice.changes())
        assert not any(s.rewrites for s in twice.sentences)


def test_stated_values_reads_the_first_of_each() -> None:
    text = "Dilated LV (LVEDVi 130 mL/m²) with severely impaired function (LVEF 20%). RVEF 40%. LVEF 22%."
    assert stated_values(text) == {"lvedvi_ml_m2": 130.0, "lvef_pct": 20.0, "rvef_pct": 40.0}


def test_implausible_measurements_are_never_stated() -> None:
    m = Measurements(lvef_pct=59.2, rvef_pct=-4.5, lvedv_ml=8.0, quality="check",
                     quality_reasons=["RVEF -4.5 % is outside 5-85 %"])
    g = ground_sentence("Normal biventricular size and function (LVEF 63%, RVEF 61%).", m)
    assert g.text == "Normal biventricular size and function (LVEF 59%)."
    assert g.changes[1].action == "removed" and g.changes[1].reason == "implausible measurement (-4.5)"
    assert measurement_sentence(m) == (f"{SUMMARY_PREFIX} LVEF 59 %, LVEDV 8 ml (review: RVEF -4.5 % is outside "
                                       "5-85 %).")
    assert stated_values(ground_text(["Normal LV function (LVEF 63%)."], m).text) == {"lvef_pct": 59.0}


def test_grounding_notes_are_not_statements() -> None:
    note = f"{REVIEW_PREFIX} RVEF -10.3 % is outside 5-85 %; LVEDV 7 ml is outside 40-500 ml."
    assert find_statements(note) == [] and ground_sentence(note, LOW).text == note
    assert find_statements(f"{SUMMARY_PREFIX} LVEF 25 %, LVEDV 245 ml (review: LVEDV 7 ml is outside 40-500 ml).") \
        != []  # the measurement sentence is one (its review note is not)
