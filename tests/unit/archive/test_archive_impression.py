"""Impression extraction from full reports: exact on >= 99 % of a held-out variant set (section spellings, list
styles, signatures and addenda that cmr.synth.ris never writes and the extractor was not written against),
exact on every synthesiser layout, and the fallbacks when a report has no impression section."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from cmr.archive.impression import canonical, extract_impression
from cmr.synth.dicom_writer import StudyHeader
from cmr.synth.report import write_impression
from cmr.synth.ris import IMPRESSION_HEADERS, LAYOUTS, full_report
from cmr.synth.scanners import STYLES
from cmr.synth.truth import sample_truth
from test_archive_reports import MEASURED

# Held out: none of these spellings is written by cmr.synth.ris.
HELD_OUT_HEADERS = ("Impressions:", "FINAL IMPRESSION", "Overall Assessment -", "** CONCLUSION **", "Opinion / Conclusion:",
                    "Summary and recommendations:", "Clinical impression:", "CONCLUSIONS:", "## Impression", "Assessment.")
HELD_OUT_ITEMS = ("{n}. ", "{n}) ", "({n}) ", "- ", "\u2022 ", "")  # "" = prose, one sentence per line
HELD_OUT_ENDINGS = ("", "Signed: {doc}", "Thank you for this referral.\n{doc}", "*** ADDENDUM ***\nLGE images re-reviewed.",
                    "Addendum #1 (02/03/2021): no change to the conclusion.", "-----\nReport verified by {doc}",
                    "I have personally reviewed the images and agree with the findings.")
SENTENCES = (
    "Mildly dilated left ventricle with severely reduced systolic function (LVEF 28%).",
    "Transmural LGE in the LAD territory, consistent with prior infarction.",
    "Normal right ventricular size and function.",
    "No pericardial effusion.",
    "Dilated aortic root (44 mm).",
    "Asymmetric septal hypertrophy, maximal wall thickness 19 mm.",
    "Patchy mid-wall enhancement of the inferolateral wall - myocarditis should be considered.",
    "Findings are in keeping with cardiac amyloidosis.",
)
PREAMBLE = ("MRI HEART WITH CONTRAST\nPatient: DOE, JANE  MRN 00123456\n\nIndication: chest pain.\n\n"
            "Technique: cine SSFP, LGE.\n\nFindings:\nThe LV is assessed below. Summary of volumes given below.\n"
            "Measurements:\nLVEF 28%\n")


def _held_out_reports() -> list[tuple[str, str]]:
    """(report text, the impression an extractor must return), over every held-out combination."""
    rng = random.Random(7)
    cases = []
    for header, item, ending, inline in itertools.product(HELD_OUT_HEADERS, HELD_OUT_ITEMS, HELD_OUT_ENDINGS,
                                                          (False, True)):
        chosen = rng.sample(SENTENCES, rng.randint(1, 4))
        items = [item.format(n=i) + s for i, s in enumerate(chosen, 1)]
        expected = "\n".join(items) if item else " ".join(items)
        body = "\n".join(items)
        head = header if not inline else f"{header.rstrip(':')}: " if header.endswith(":") else None
        if head is None:
            continue  # an inline body needs a header that ends in a colon
        block = f"{head}{body}" if inline else f"{header}\n{body}"
        text = f"{PREAMBLE}\n{block}\n\n{ending.format(doc='Dr. A. Example, MD')}\n"
        cases.append((text, expected))
    return cases


def test_held_out_variants_are_extracted_exactly_on_at_least_99_percent() -> None:
    cases = _held_out_reports()
    assert len(cases) > 500
    wrong = [(t, e, extract_impression(t).text) for t, e in cases if extract_impression(t).text != e]
    share = 1 - len(wrong) / len(cases)
    assert share >= 0.99, f"{share:.2%} exact; first miss:\n{wrong[0][0]}\nexpected {wrong[0][1]!r}\ngot {wrong[0][2]!r}"


def _synth_report(i: int) -> dict[str, object]:
    rng = np.random.default_rng(i)
    truth = sample_truth(rng)
    header = StudyHeader.make([0, i], rng, truth.sex, truth.age, truth.heart_rate, truth.bsa)
    impression = write_impression(truth, np.random.default_rng(10_000 + i), "train" if i % 2 else "heldout")
    return full_report(truth, header, impression.text, STYLES[sorted(STYLES)[i % len(STYLES)]], 0, i, MEASURED)


def test_every_synthesiser_layout_and_header_is_extracted_exactly() -> None:
    reports = [_synth_report(i) for i in range(400)]
    assert {r["layout"] for r in reports} == set(LAYOUTS)
    assert {r["section"] for r in reports} - {""} == set(IMPRESSION_HEADERS)
    for r in reports:
        got = extract_impression(str(r["text"]))
        assert got.text == r["impression"], (r["layout"], r["text"])
        assert (got.source == "impression") == (r["layout"] not in ("see_above", "findings_only"))


def test_no_impression_section_says_so_and_falls_back_as_configured() -> None:
    text = "HISTORY: chest pain.\nFINDINGS:\nNormal LV size and function.\nNo LGE.\n\nElectronically signed by X Y, MD"
    by_findings = extract_impression(text, "findings")
    assert by_findings.text == "Normal LV size and function. No LGE."
    assert by_findings.source == "findings (no impression section)"
    assert extract_impression(text, "none").found is False
    assert extract_impression(text, "none").source == "none"
    last = extract_impression("Normal study.\n\nNo LGE seen.", "last-paragraph")
    assert (last.text, last.source) == ("No LGE seen.", "last paragraph (no impression section)")
    with pytest.raises(ValueError, match="fallback"):
        extract_impression(text, "guess")  # type: ignore[arg-type]


def test_see_above_takes_the_findings_and_the_addendum_is_not_the_impression() -> None:
    text = ("FINDINGS:\n1. Dilated LV.\n2. No LGE.\nIMPRESSION: As above.\nADDENDUM: impression revised, see PACS.\n"
            "IMPRESSION: this belongs to the addendum")
    got = extract_impression(text)
    assert (got.text, got.source, got.has_addendum) == ("1. Dilated LV.\n2. No LGE.",
                                                         "findings (impression says see above)", True)


def test_prose_words_that_name_a_section_are_not_headers() -> None:
    text = "FINDINGS:\nAssessment of the RV is limited.\nIMPRESSION:\nConclusion of the study: normal LV.\n"
    assert extract_impression(text).text == "Conclusion of the study: normal LV."
    assert canonical(["1. a", "  wrapped", "2. b"]) == "1. a wrapped\n2. b"
