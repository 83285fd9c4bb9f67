"""The rule-based CMR finding labeller: against what synthetic impressions state, against ground truth,
on the phrase banks' own words and prompts, and on hand-written sentences the report writer never produces
(negation, severity, uncertainty, spelling variants, lists under one negation)."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Iterator, Union

import pytest

from cmr import labels as L
from cmr.reports import label_report, label_sentence, split_sentences
from cmr.reports import labeller as labeller_module
from cmr.reports.lexicon import compile_lexicon
from cmr.synth.phrasebook import BANKS, DISEASE_PROMPTS, FINDING_PROMPTS
from cmr.synth.report import Impression
from cmr.synth.truth import StudyTruth

PHRASINGS = ("train", "heldout")


def _agreement(impressions: list[Impression], truths: list[StudyTruth] | None = None) -> dict[str, float]:
    """Per finding, over impressions that mention it: labeller state == stated (or == truth label)."""
    agree: Counter[str] = Counter()
    n: Counter[str] = Counter()
    for k, imp in enumerate(impressions):
        labels = label_report(imp.text)
        for f in L.FINDINGS:
            said = imp.mentioned[f]
            if said is None:
                continue
            n[f] += 1
            if truths is None:
                agree[f] += labels.state(f) == ("present" if said else "absent")
            else:
                agree[f] += labels.present(f) == bool(truths[k].labels[f])
    assert all(n[f] >= 100 for f in L.FINDINGS), n
    return {f: agree[f] / n[f] for f in L.FINDINGS}


# ------------------------------------------------------------------------------------------------------------
# Synthetic impressions


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_reads_what_synthetic_impressions_state(
    phrasing: str, impressions_by_phrasing: dict[str, list[Impression]]
) -> None:
    agreement = _agreement(impressions_by_phrasing[phrasing])
    assert all(a >= 0.99 for a in agreement.values()), agreement


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_agrees_with_ground_truth_where_the_impression_mentions_a_finding(
    phrasing: str, impressions_by_phrasing: dict[str, list[Impression]], report_truths: list[StudyTruth]
) -> None:
    # Below 1 only where readers word an LVEF near 50% against the threshold (cmr.synth.report).
    agreement = _agreement(impressions_by_phrasing[phrasing], report_truths)
    assert all(a >= 0.97 for a in agreement.values()), agreement


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_leaves_unmentioned_findings_unmentioned(
    phrasing: str, impressions_by_phrasing: dict[str, list[Impression]]
) -> None:
    extra = total = 0
    for imp in impressions_by_phrasing[phrasing]:
        labels = label_report(imp.text)
        for f in L.FINDINGS:
            if imp.mentioned[f] is None:
                total += 1
                extra += labels.state(f) != "not_mentioned"
    assert total > 300 and extra / total <= 0.01, (extra, total)


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_disease_accuracy_where_the_impression_names_one(
    phrasing: str, impressions_by_phrasing: dict[str, list[Impression]], report_truths: list[StudyTruth]
) -> None:
    pairs = [(label_report(imp.text).disease, t.disease)
             for imp, t in zip(impressions_by_phrasing[phrasing], report_truths)]
    named = [(got, want) for got, want in pairs if got is not None]
    assert len(named) / len(pairs) > 0.7
    # Misses are myocarditis without LGE, which readers call normal.
    assert sum(got == want for got, want in named) / len(named) >= 0.97
    # Every non-normal diagnosis the writer can give is recognised when the truth has one.
    assert {got for got, _ in named} == set(L.DISEASES)


@pytest.fixture()
def general_vocabulary_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The labeller without the words it reads from the phrase banks (cache cleared on both sides)."""
    labeller_module._read_sentence.cache_clear()
    monkeypatch.setattr(labeller_module, "LEXICON", compile_lexicon(banks=()))
    yield
    labeller_module._read_sentence.cache_clear()


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_general_vocabulary_alone_reads_both_phrasings(
    phrasing: str, impressions_by_phrasing: dict[str, list[Impression]], general_vocabulary_only: None
) -> None:
    agreement = _agreement(impressions_by_phrasing[phrasing][:200])
    assert all(a >= 0.98 for a in agreement.values()), agreement


def test_fast(impressions_by_phrasing: dict[str, list[Impression]]) -> None:
    labeller_module._read_sentence.cache_clear()
    texts = [imp.text for imp in impressions_by_phrasing["heldout"][:200]]
    start = time.perf_counter()
    for text in texts:
        label_report(text)
    per_report = (time.perf_counter() - start) / len(texts)
    assert per_report < 0.02, f"{per_report * 1e3:.1f} ms per report"


# ------------------------------------------------------------------------------------------------------------
# The phrase banks' own words and prompts

_FUNCTION_GRADES = {"hyper": None, "normal": None, "lownormal": None, "mild": "mild", "mildmod": "moderate",
                    "moderate": "moderate", "modsev": "severe", "severe": "severe"}
_SIZE_GRADES = {"small": None, "normal": None, "mild": "mild", "moderate": "moderate", "severe": "severe"}


def _bank_phrases(prefix: str) -> list[tuple[str, str, str]]:
    return [(bank, key[len(prefix):], phrase) for bank, grammar in BANKS.items()
            for key, options in grammar.items() if key.startswith(prefix) for phrase in options]


@pytest.mark.parametrize(("bank", "grade", "phrase"), _bank_phrases("fn_pre.") + _bank_phrases("fn_pred."))
def test_every_function_grade_word_of_the_banks(bank: str, grade: str, phrase: str) -> None:
    severity = _FUNCTION_GRADES[grade]
    for text in (f"{phrase} LV systolic function.", f"RV contractility is {phrase}."):
        finding = "lv_dysfunction" if text.endswith("function.") else "rv_dysfunction"
        got = label_report(text).findings[finding]
        assert got.state == ("present" if severity else "absent"), (text, got)
        assert got.severity == severity, (text, got)


@pytest.mark.parametrize(("bank", "grade", "phrase"),
                         _bank_phrases("size_pre.") + _bank_phrases("size_pred."))
def test_every_size_grade_word_of_the_banks(bank: str, grade: str, phrase: str) -> None:
    severity = _SIZE_GRADES[grade]
    for text, finding in ((f"{phrase} left atrium.", "la_enlargement"),
                          (f"The RV is {phrase}.", "rv_dilation")):
        got = label_report(text).findings[finding]
        assert got.state == ("present" if severity else "absent"), (text, got)
        assert got.severity == severity, (text, got)


def _finding_prompts() -> list[tuple[str, str, str, str]]:
    return [(bank, f, "present" if positive else "absent", prompt)
            for bank, table in FINDING_PROMPTS.items() for f, (pos, neg) in table.items()
            for positive, prompts in ((True, pos), (False, neg)) for prompt in prompts]


@pytest.mark.parametrize(("bank", "finding", "state", "prompt"), _finding_prompts())
def test_finding_prompts_state_their_finding_and_nothing_else(
    bank: str, finding: str, state: str, prompt: str
) -> None:
    labels = label_report(prompt)
    assert labels.state(finding) == state
    others = {f: s.state for f, s in labels.findings.items() if f != finding and s.state != "not_mentioned"}
    assert others == {}


def test_disease_prompts_name_their_disease_or_none_and_negatives_never_name_it() -> None:
    named = 0
    for table in DISEASE_PROMPTS.values():
        for disease, (pos, neg) in table.items():
            for prompt in pos:
                got = label_report(prompt).disease
                assert got in (disease, None), (prompt, got)
                named += got == disease
            for prompt in neg:
                assert label_report(prompt).disease != disease, prompt
    assert named >= 28  # the others describe a pattern without naming a disease


# ------------------------------------------------------------------------------------------------------------
# Hand-written sentences

P, A = "present", "absent"
Expect = Union[str, tuple]  # state, (state, severity) or (state, severity, uncertain)
ALL_ABSENT = {f: A for f in L.FINDINGS}

HAND_WRITTEN: list[tuple[str, dict[str, Expect], Union[str, tuple, None]]] = [
    # (sentence, expected stated findings (all others not mentioned), disease or (disease, uncertain))
    ("Severely impaired LV systolic function, EF 28%.", {"lv_dysfunction": (P, "severe")}, None),
    ("No late gadolinium enhancement to suggest infarction or infiltration.", {"lge": A}, None),
    ("Mildly dilated ascending aorta measuring 4.3 cm.", {"aortic_dilation": (P, "mild")}, None),
    ("Small pericardial effusion, no tamponade.", {"pericardial_effusion": (P, "mild")}, None),
    ("Asymmetric septal hypertrophy up to 19 mm in keeping with HCM.", {"lv_hypertrophy": P}, "hcm"),
    ("Normal LV size, wall thickness and systolic function.",
     {"lv_dilation": A, "lv_hypertrophy": A, "lv_dysfunction": A}, None),
    ("LVEF 35%.", {"lv_dysfunction": (P, "moderate")}, None),
    ("LVEF 62%.", {"lv_dysfunction": A}, None),
    ("EF 30-35%.", {"lv_dysfunction": (P, "moderate")}, None),
    ("The LV ejection fraction is 41%.", {"lv_dysfunction": (P, "mild")}, None),
    ("LV ejection fraction is severely reduced at 22%.", {"lv_dysfunction": (P, "severe")}, None),
    ("Low-normal LV systolic function (LVEF 52%).", {"lv_dysfunction": A}, None),
    ("The left ventricle is not dilated and systolic function is preserved.",
     {"lv_dilation": A, "lv_dysfunction": A}, None),
    ("The LV is not dilated or hypertrophied.", {"lv_dilation": A, "lv_hypertrophy": A}, None),
    ("No regional wall motion abnormality.", {}, None),
    ("Dilated left atrium (LAVi 58 mL/m2).", {"la_enlargement": P}, None),
    ("Moderate left atrial enlargement.", {"la_enlargement": (P, "moderate")}, None),
    ("Biatrial enlargement.", {"la_enlargement": P}, None),
    ("The right atrium is dilated.", {}, None),
    ("Left atrium is mildly enlarged, right atrium normal.", {"la_enlargement": (P, "mild")}, None),
    ("RV size and function are normal.", {"rv_dilation": A, "rv_dysfunction": A}, None),
    ("Moderately reduced RV systolic function (RVEF 35%).", {"rv_dysfunction": (P, "moderate")}, None),
    ("The RV is dilated with an RVEF of 38%.", {"rv_dilation": P, "rv_dysfunction": (P, "moderate")}, None),
    ("Biventricular systolic dysfunction.", {"lv_dysfunction": P, "rv_dysfunction": P}, None),
    ("Dilated LV and RV.", {"lv_dilation": P, "rv_dilation": P}, None),
    ("Dilated LV with normal RV size.", {"lv_dilation": P, "rv_dilation": A}, None),
    ("Mildly dilated, mildly impaired RV.",
     {"rv_dilation": (P, "mild"), "rv_dysfunction": (P, "mild")}, None),
    ("Enlarged, poorly functioning left ventricle.", {"lv_dilation": P, "lv_dysfunction": P}, None),
    ("Left ventricle: dilated, with severely impaired systolic function.",
     {"lv_dilation": P, "lv_dysfunction": (P, "severe")}, None),
    ("LV is severely dilated (LVEDVi 190 ml/m2) and severely impaired (LVEF 18%).",
     {"lv_dilation": (P, "severe"), "lv_dysfunction": (P, "severe")}, None),
    ("Moderately dilated RV (RVEDVi 140 mL/m2) with mildly impaired systolic function.",
     {"rv_dilation": (P, "moderate"), "rv_dysfunction": (P, "mild")}, None),
    ("Normal left and right ventricular size and function.",
     {"lv_dilation": A, "rv_dilation": A, "lv_dysfunction": A, "rv_dysfunction": A}, None),
    ("Normal biventricular volumes and function.",
     {"lv_dilation": A, "rv_dilation": A, "lv_dysfunction": A, "rv_dysfunction": A}, None),
    ("Preserved biventricular systolic function.", {"lv_dysfunction": A, "rv_dysfunction": A}, None),
    ("Hypertrophied, non-dilated left ventricle with hyperdynamic function.",
     {"lv_hypertrophy": P, "lv_dilation": A, "lv_dysfunction": A}, None),
    ("Small LV cavity with vigorous systolic function.", {"lv_dilation": A, "lv_dysfunction": A}, None),
    ("The left ventricle is at the upper limit of normal size.", {"lv_dilation": A}, None),
    ("Global hypokinesis.", {"lv_dysfunction": P}, None),
    ("LV function is not normal.", {"lv_dysfunction": P}, None),
    ("Impaired RV function.", {"rv_dysfunction": P}, None),
    ("Mild concentric LVH (max wall thickness 14 mm).", {"lv_hypertrophy": (P, "mild")}, None),
    ("Increased LV wall thickness, most marked in the septum (18 mm).", {"lv_hypertrophy": P}, None),
    ("There is no left ventricular hypertrophy.", {"lv_hypertrophy": A}, None),
    ("LV wall thickness is normal.", {"lv_hypertrophy": A}, None),
    ("Septal thickness 12 mm, no LVH.", {"lv_hypertrophy": A}, None),
    ("The left atrium is normal in size.", {"la_enlargement": A}, None),
    ("LA not enlarged.", {"la_enlargement": A}, None),
    ("The aortic root is normal in calibre (32 mm).", {"aortic_dilation": A}, None),
    ("The aortic root is normal in caliber (32 mm).", {"aortic_dilation": A}, None),
    ("Aortic root and ascending aorta are of normal calibre.", {"aortic_dilation": A}, None),
    ("Severely dilated aortic root measuring 52 mm.", {"aortic_dilation": (P, "severe")}, None),
    ("Dilated pulmonary artery.", {}, None),
    ("Trivial pericardial effusion.", {"pericardial_effusion": (P, "mild")}, None),
    ("No significant pericardial effusion.", {"pericardial_effusion": A}, None),
    ("Moderate-sized circumferential pericardial effusion without tamponade physiology.",
     {"pericardial_effusion": (P, "moderate")}, None),
    ("There is a large pericardial effusion, haemodynamically significant.",
     {"pericardial_effusion": (P, "severe")}, None),
    ("The previously seen pericardial effusion has resolved.", {"pericardial_effusion": A}, None),
    ("Pericardial effusion is not seen.", {"pericardial_effusion": A}, None),
    ("Thickened pericardium without effusion.", {"pericardial_effusion": A}, None),
    ("Small right pleural effusion.", {}, None),
    ("No change in the small pericardial effusion.", {"pericardial_effusion": (P, "mild")}, None),
    ("Cannot exclude a small pericardial effusion.", {"pericardial_effusion": (P, "mild", True)}, None),
    ("Possible subtle mid-wall LGE in the basal septum.", {"lge": (P, None, True)}, None),
    ("Widespread patchy mid-wall fibrosis.", {"lge": P}, None),
    ("LGE: none.", {"lge": A}, None),
    ("No myocardial LGE; there is pericardial enhancement consistent with pericarditis.", {"lge": A}, None),
    ("No LGE, oedema or pericardial effusion to suggest myocarditis.",
     {"lge": A, "pericardial_effusion": A}, None),
    ("There is no evidence of LV dilatation, hypertrophy or systolic impairment.",
     {"lv_dilation": A, "lv_hypertrophy": A, "lv_dysfunction": A}, None),
    ("There is no pericardial effusion and the aortic root is dilated.",
     {"pericardial_effusion": A, "aortic_dilation": P}, None),
    ("No interval change in LV dilatation.", {"lv_dilation": P}, None),
    ("No LV thrombus.", {}, None),
    ("Subendocardial LGE in the LAD territory consistent with prior infarction.", {"lge": P}, "ischemic"),
    ("Ischaemic scar in the RCA territory.", {"lge": P}, "ischemic"),
    ("No perfusion defect or infarct.", {}, None),
    ("Dilated cardiomyopathy with severely impaired LV function.", {"lv_dysfunction": (P, "severe")}, "nicm"),
    ("Midwall septal LGE, as can be seen in DCM.", {"lge": P}, "nicm"),
    ("Hypokinetic non-dilated cardiomyopathy.", {}, "nicm"),
    ("Findings consistent with cardiac amyloidosis.", {}, "amyloidosis"),
    ("Findings are not suggestive of cardiac amyloidosis.", {}, None),
    ("?Cardiac amyloid - suggest DPD scintigraphy.", {}, ("amyloidosis", True)),
    ("No features of HCM.", {}, None),
    ("Myocarditis cannot be excluded.", {}, ("myocarditis", True)),
    ("No evidence of myocardial oedema or scar to suggest myocarditis.", {"lge": A}, None),
    ("Appearances are in keeping with an athlete's heart.", {}, "normal"),
    ("Normal cardiac MRI.", ALL_ABSENT, "normal"),
    ("Normal CMR apart from mild left atrial dilatation.",
     {**ALL_ABSENT, "la_enlargement": (P, "mild")}, "normal"),
]


def _check(text: str, expected: dict[str, Expect], disease: Union[str, tuple, None]) -> None:
    labels = label_report(text)
    stated = {f: lab for f, lab in labels.findings.items() if lab.state != "not_mentioned"}
    assert set(stated) == set(expected), {f: lab.state for f, lab in stated.items()}
    for f, want in expected.items():
        want_t = (want,) if isinstance(want, str) else want
        got = stated[f]
        assert got.state == want_t[0], (f, got)
        if len(want_t) > 1:
            assert got.severity == want_t[1], (f, got)
        assert got.uncertain == (want_t[2] if len(want_t) > 2 else False), (f, got)
    want_disease = disease if isinstance(disease, tuple) else (disease, False)
    assert (labels.disease, labels.disease_uncertain) == want_disease


@pytest.mark.parametrize(("text", "expected", "disease"), HAND_WRITTEN, ids=[c[0][:48] for c in HAND_WRITTEN])
def test_hand_written_sentence(
    text: str, expected: dict[str, Expect], disease: Union[str, tuple, None]
) -> None:
    _check(text, expected, disease)


def test_the_hand_written_table_is_large_and_covers_every_finding() -> None:
    assert len(HAND_WRITTEN) >= 40
    assert {f for _, expected, _ in HAND_WRITTEN for f in expected} == set(L.FINDINGS)


@pytest.mark.parametrize(("british", "american"), [
    ("Ischaemic cardiomyopathy.", "Ischemic cardiomyopathy."),
    ("Non-ischaemic pattern of mid-wall LGE.", "Non-ischemic pattern of mid-wall LGE."),
    ("The aortic root is of normal calibre.", "The aortic root is of normal caliber."),
    ("Myocardial oedema without LGE.", "Myocardial edema without LGE."),
    ("Haemodynamically insignificant pericardial effusion.",
     "Hemodynamically insignificant pericardial effusion."),
    ("Left atrial dilatation.", "Left atrial dilation."),
    ("Dilated cardiomyopathy of non-ischaemic aetiology.",
     "Dilated cardiomyopathy of non-ischemic etiology."),
])
def test_british_and_american_spelling_read_the_same(british: str, american: str) -> None:
    a, b = label_report(british), label_report(american)
    assert a.findings == b.findings and a.disease == b.disease
    assert a.sentences[0].stated() or a.disease is not None  # and it says something


# ------------------------------------------------------------------------------------------------------------
# Reports: sentences, summaries, numbers


def test_worded_lv_function_wins_over_the_number() -> None:
    # Readers disagree near 50%: the text is what is labelled (cmr.synth.report's reader model).
    assert label_report("Low-normal LV systolic function (LVEF 49%).").state("lv_dysfunction") == "absent"
    called = label_report("Mildly reduced LV systolic function (LVEF 52%).").findings["lv_dysfunction"]
    assert (called.state, called.severity) == ("present", "mild")
    # A stated impairment without a grade takes the number's.
    assert label_report("Impaired LV function (LVEF 25%).").severity("lv_dysfunction") == "severe"


def test_otherwise_normal_makes_every_unstated_finding_absent() -> None:
    labels = label_report("1. Moderately dilated left atrium.\n2. Otherwise normal study.")
    assert labels.state("la_enlargement") == "present"
    assert all(labels.state(f) == "absent" for f in L.FINDINGS if f != "la_enlargement")
    assert labels.disease is None  # "otherwise normal" is no normal study
    assert [s.summary for s in labels.sentences] == [None, "otherwise_normal"]


def test_per_sentence_results_tag_each_sentence() -> None:
    text = ("1. Dilated cardiomyopathy.\n2. Severely dilated LV with severely impaired systolic function "
            "(LVEF 18%). No LGE.\n3) Small pericardial effusion.")
    labels = label_report(text)
    assert [s.text for s in labels.sentences] == [
        "Dilated cardiomyopathy.",
        "Severely dilated LV with severely impaired systolic function (LVEF 18%).",
        "No LGE.",
        "Small pericardial effusion.",
    ]
    assert [sorted(s.stated()) for s in labels.sentences] == [
        [], ["lv_dilation", "lv_dysfunction"], ["lge"], ["pericardial_effusion"]]
    assert labels.sentences[0].disease == "nicm" and labels.disease == "nicm"
    assert label_sentence("No LGE.") == labels.sentences[2]


def test_split_sentences_keeps_decimals_and_abbreviations() -> None:
    assert split_sentences("Aortic root 4.3 cm. LVEF approx. 45%. 2. No LGE.") == [
        "Aortic root 4.3 cm.", "LVEF approx. 45%.", "No LGE."]
    assert split_sentences("1) Normal study.\n\n2) No effusion") == ["Normal study.", "No effusion"]
    # Generated text may come lower-cased: a negation must still end with its sentence.
    assert split_sentences("no lge. dilated lv.") == ["no lge.", "dilated lv."]


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_case_and_line_breaks_do_not_matter(
    phrasing: str, impressions_by_phrasing: dict[str, list[Impression]]
) -> None:
    for imp in impressions_by_phrasing[phrasing][:100]:
        labels = label_report(imp.text)
        for variant in (imp.text.lower(), imp.text.upper(), imp.text.replace("\n", " ")):
            other = label_report(variant)
            assert (other.findings, other.disease) == (labels.findings, labels.disease), variant


def test_empty_text_states_nothing() -> None:
    labels = label_report("")
    assert all(labels.state(f) == "not_mentioned" for f in L.FINDINGS)
    assert labels.disease is None and labels.sentences == ()


def test_label_dict_and_json_forms() -> None:
    labels = label_report("Mildly dilated LV. Possible small pericardial effusion. Consistent with DCM.")
    assert labels.as_label_dict() == {**{f: False for f in L.FINDINGS}, "lv_dilation": True,
                                      "pericardial_effusion": True, "disease": "nicm"}
    data = json.loads(json.dumps(labels.to_dict()))
    effusion = data["findings"]["pericardial_effusion"]
    assert effusion == {"state": "present", "severity": "mild", "uncertain": True}
    assert data["findings"]["lge"]["state"] == "not_mentioned"
    assert [s["text"] for s in data["sentences"]] == [s.text for s in labels.sentences]
