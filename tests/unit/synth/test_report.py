"""Tests of the synthetic CMR impression writer (cmr.synth.report) and its phrase banks."""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict

import numpy as np
import pytest

from cmr import labels as L
from cmr.synth import phrasebook as pb
from cmr.synth.report import Impression, disease_prompts, finding_prompts, write_impression
from cmr.synth.truth import INCIDENTAL_FINDINGS, StudyTruth

PHRASINGS = ("train", "heldout")


def _us(text: str) -> str:
    return pb.to_american(text)


def _phrase_re(phrases: tuple[str, ...] | list[str]) -> re.Pattern[str]:
    alts = sorted((re.escape(p) for p in phrases), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(?:" + "|".join(alts) + r")(?![\w-])", re.IGNORECASE)


def _all_prompts(phrasing: str) -> list[str]:
    out: list[str] = []
    for f in L.FINDINGS:
        out += finding_prompts(f, True, phrasing)  # type: ignore[arg-type]
        out += finding_prompts(f, False, phrasing)  # type: ignore[arg-type]
    for dz in L.DISEASES:
        out += disease_prompts(dz, True, phrasing)  # type: ignore[arg-type]
        out += disease_prompts(dz, False, phrasing)  # type: ignore[arg-type]
    return out


def _major(t: StudyTruth, f: str) -> bool:
    """Positive findings a reader never leaves out (the writer's documented contract)."""
    lab = t.labels
    if not lab[f]:
        return False
    return {
        "lv_dysfunction": t.lvef < 45,
        "rv_dysfunction": t.rvef < 40,
        "lv_dilation": True,
        "rv_dilation": True,
        "lv_hypertrophy": t.lv_max_wall_mm >= 15 or t.disease in ("hcm", "amyloidosis"),
        "lge": True,
        "aortic_dilation": t.aortic_root_mm > 42,
        "la_enlargement": t.lavi > 55,
        "pericardial_effusion": t.effusion_mm >= 10,
    }[f]


# ------------------------------------------------------------------------------------------------------------
# API and structure


def test_deterministic_for_a_seed(truths: list[StudyTruth]) -> None:
    for phrasing in PHRASINGS:
        a = [write_impression(t, np.random.default_rng(7), phrasing) for t in truths[:200]]  # type: ignore
        b = [write_impression(t, np.random.default_rng(7), phrasing) for t in truths[:200]]  # type: ignore
        assert a == b


def test_advances_rng_by_one_draw(truths: list[StudyTruth]) -> None:
    rng, ref = np.random.default_rng(3), np.random.default_rng(3)
    write_impression(truths[0], rng)
    ref.integers(0, 2**63 - 1)
    assert rng.random() == ref.random()


def test_mentioned_has_every_finding(train_impressions: list[Impression]) -> None:
    for imp in train_impressions:
        assert tuple(imp.mentioned) == L.FINDINGS
        assert all(v in (True, False, None) for v in imp.mentioned.values())


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_sentences_join_to_text(phrasing: str, request: pytest.FixtureRequest) -> None:
    imps: list[Impression] = request.getfixturevalue(f"{phrasing}_impressions")
    for imp in imps:
        assert imp.text.replace("\n", " ") == " ".join(imp.sentences)
        for s in imp.sentences:
            body = re.sub(r"^\d+[.)] ", "", s)
            assert body[0].isupper() or body[0].isdigit(), s
            assert body.endswith("."), s
            assert not re.search(r"[.;:] [A-Z][a-z]", body[:-1]) or "Valsalva" in body, s  # one sentence each
            assert "{" not in s and "  " not in s and " ." not in s and " ," not in s, s


def test_numbered_and_prose_both_occur(train_impressions: list[Impression]) -> None:
    numbered = sum(imp.text.startswith(("1. ", "1) ")) for imp in train_impressions)
    assert 0.3 < numbered / len(train_impressions) < 0.75
    for imp in train_impressions:
        if "\n" in imp.text:
            lines = imp.text.split("\n")
            assert [re.match(r"^(\d+)[.)] ", ln).group(1) for ln in lines] == [  # type: ignore[union-attr]
                str(i) for i in range(1, len(lines) + 1)
            ]


def test_fast(truths: list[StudyTruth]) -> None:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for t in truths:
        write_impression(t, rng)
    per_study = (time.perf_counter() - start) / len(truths)
    assert per_study < 1e-3, f"{per_study * 1e6:.0f} us per impression"


# ------------------------------------------------------------------------------------------------------------
# Labels vs text


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_major_positive_findings_always_mentioned(
    phrasing: str, truths: list[StudyTruth], request: pytest.FixtureRequest
) -> None:
    imps: list[Impression] = request.getfixturevalue(f"{phrasing}_impressions")
    n_major = 0
    for t, imp in zip(truths, imps):
        for f in L.FINDINGS:
            if _major(t, f):
                n_major += 1
                assert imp.mentioned[f] is True, (f, t, imp.text)
    assert n_major > 500


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_mentions_agree_with_labels_except_documented_lvef_disagreement(
    phrasing: str, truths: list[StudyTruth], request: pytest.FixtureRequest
) -> None:
    imps: list[Impression] = request.getfixturevalue(f"{phrasing}_impressions")
    called_mild = called_lownormal = window_50_55 = window_48_50 = 0
    for t, imp in zip(truths, imps):
        lab = t.labels
        window_50_55 += 50 <= t.lvef < 55
        window_48_50 += 48 <= t.lvef < 50
        for f in L.FINDINGS:
            said = imp.mentioned[f]
            if said is None or said == lab[f]:
                continue
            # The only allowed contradictions: readers' words for an LVEF near the 50% threshold.
            assert f == "lv_dysfunction", (f, t, imp.text)
            if said:
                assert 50 <= t.lvef < 55, (t.lvef, imp.text)
                called_mild += 1
            else:
                assert 48 <= t.lvef < 50, (t.lvef, imp.text)
                called_lownormal += 1
    n = len(truths)
    # Realistic: a minority of readers, and rare over the whole data set.
    assert 0.05 < called_mild / window_50_55 < 0.35
    assert 0.1 < called_lownormal / max(window_48_50, 1) < 0.5
    assert (called_mild + called_lownormal) / n < 0.03


def test_minor_findings_sometimes_left_out(
    truths: list[StudyTruth], train_impressions: list[Impression]
) -> None:
    left_out: Counter[str] = Counter()
    positive: Counter[str] = Counter()
    for t, imp in zip(truths, train_impressions):
        for f in L.FINDINGS:
            if t.labels[f] and not _major(t, f):
                positive[f] += 1
                left_out[f] += imp.mentioned[f] is None
    for f in ("la_enlargement", "aortic_dilation", "pericardial_effusion"):
        assert 0.1 < left_out[f] / positive[f] < 0.6, (f, left_out[f], positive[f])
    # Negatives are not always listed either.
    neg_listed = [
        imp.mentioned["lge"] is False for t, imp in zip(truths, train_impressions) if not t.labels["lge"]
    ]
    assert 0.5 < np.mean(neg_listed) < 0.98


# Numbers in the text are the truth, rounded as written (whole number, or the truth's one decimal).
_LVEF_RE = re.compile(
    r"(?<!RV )(?<!right ventricular )\b(?:LVEF|EF|ejection fraction)\b"
    r"(?: of| estimated at| measured at|:| approximately)?"
    r" (\d+(?:\.\d)?) ?%"
)
_RVEF_RE = re.compile(
    r"\b(?:RVEF|RV EF)\b(?: of| measured at)? (\d+(?:\.\d)?) ?%"
    r"|LVEF \d+(?:\.\d)?%,? (?:and )?RVEF (\d+(?:\.\d)?)%"
)
_EDV_RE = re.compile(
    r"(?:(LV|RV)EDVi|indexed (LV|RV) EDV|(LV|RV) indexed end-diastolic volume"
    r"|indexed (LV|RV) end-diastolic volume of)"
    r" (\d+(?:\.\d)?) m[lL]/m"
)
_LAVI_RE = re.compile(r"(?:LAVi(?: of)?|indexed left atrial volume|LA volume index) (\d+(?:\.\d)?) m[lL]/m")
_AORTA_RE = re.compile(r"(\d+(?:\.\d)?) (mm|cm)")
_TRANSMURALITY_RE = re.compile(r"(?:<|>|less than |more than |up to )?(?:\d+-)?\d+% transmural")


def _written_ok(written: str, truth_value: float) -> bool:
    if "." in written:
        return abs(float(written) - truth_value) < 1e-6
    return int(written) == int(np.floor(truth_value + 0.5))


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_numbers_in_text_match_truth(
    phrasing: str, truths: list[StudyTruth], request: pytest.FixtureRequest
) -> None:
    imps: list[Impression] = request.getfixturevalue(f"{phrasing}_impressions")
    seen = Counter[str]()
    for t, imp in zip(truths, imps):
        text = imp.text.replace("\n", " ")
        efs = _LVEF_RE.findall(text)
        for n in efs:
            assert _written_ok(n, t.lvef), (n, t.lvef, text)
        if efs:
            seen["lvef"] += 1
            assert imp.mentioned["lv_dysfunction"] is not None, text
        for a, b in _RVEF_RE.findall(text):
            assert _written_ok(a or b, t.rvef), (a or b, t.rvef, text)
            seen["rvef"] += 1
        for m in _EDV_RE.finditer(text):
            ventricle = next(g for g in m.groups()[:4] if g)
            assert _written_ok(m.group(5), t.lvedvi if ventricle == "LV" else t.rvedvi), (m.group(0), text)
            seen["edv"] += 1
        for n in _LAVI_RE.findall(text):
            assert _written_ok(n, t.lavi), (n, t.lavi, text)
            seen["lavi"] += 1
        # Every percentage is an ejection fraction or an LGE transmurality band.
        rest = _TRANSMURALITY_RE.sub("", _RVEF_RE.sub("", _LVEF_RE.sub("", text)))
        assert not re.search(r"\d ?%", rest), text
        for s in imp.sentences:
            low = s.lower()
            if re.search(r"hypertroph|lvh|thicken|wall thickness|septum", low) and "enhancement" not in low:
                for n in re.findall(r"(\d+(?:\.\d)?) mm", s):
                    assert _written_ok(n, t.lv_max_wall_mm) or _written_ok(n, t.lv_septal_wall_mm), (s, t)
                    seen["wall"] += 1
            if "pericardial" in low:
                for n in re.findall(r"(\d+(?:\.\d)?) mm", s):
                    assert _written_ok(n, t.effusion_mm), (s, t.effusion_mm)
                    seen["effusion"] += 1
            if "aortic root" in low:
                for n, unit in _AORTA_RE.findall(s):
                    if unit == "cm":
                        assert abs(float(n) - round(t.aortic_root_mm / 10, 1)) < 1e-6, (s, t.aortic_root_mm)
                    else:
                        assert _written_ok(n, t.aortic_root_mm), (s, t.aortic_root_mm)
                    seen["aorta"] += 1
    assert seen["lvef"] > 0.6 * len(truths)
    assert min(seen.values()) > 20, seen


# Words that state a finding, in either bank (American spelling). Used in two directions: a finding stated
# present has one of its words in the text; a finding not mentioned at all has none of its anchors.
_PRESENT_WORDS = {
    "lv_dysfunction": r"reduced|impaired|depressed|diminished|decreased|poor",
    "rv_dysfunction": r"reduced|impaired|depressed|diminished|decreased|poor",
    "lv_dilation": r"dilat|enlarge",
    "rv_dilation": r"dilat|enlarge",
    "lv_hypertrophy": r"hypertroph|LVH|thicken|increase in",
    "lge": r"LGE|enhancement|scar",
    "aortic_dilation": r"dilat|ectat|ectasia|enlarge",
    "la_enlargement": r"dilat|enlarge",
    "pericardial_effusion": r"pericardial effusion|pericardial fluid|pericardial sac",
}
_ANCHORS = {
    "lge": r"LGE|gadolinium|enhancement|scar|fibrosis|infarct",
    "aortic_dilation": r"aort",
    "la_enlargement": r"\bLA\b|left atri|LAVi",
    "pericardial_effusion": r"pericardi",
    "lv_hypertrophy": r"hypertrophy|LVH|thickening|thickened|(?<!the )(?<!full )wall thickness",
}


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_mentioned_agrees_with_text(
    phrasing: str, truths: list[StudyTruth], request: pytest.FixtureRequest
) -> None:
    imps: list[Impression] = request.getfixturevalue(f"{phrasing}_impressions")
    for t, imp in zip(truths, imps):
        text = _us(imp.text)
        for f, said in imp.mentioned.items():
            if said is True:
                assert re.search(_PRESENT_WORDS[f], text, re.IGNORECASE), (f, text)
            if said is None and f in _ANCHORS:
                assert not re.search(_ANCHORS[f], text, re.IGNORECASE), (f, text)
        if imp.mentioned["rv_dysfunction"] is None and imp.mentioned["rv_dilation"] is None:
            rv_words = r"\bRV(?! insertion)|right ventric|biventricular|both ventricles"
            assert not re.search(rv_words, text), text


def test_incidentals_sometimes_mentioned(
    truths: list[StudyTruth], train_impressions: list[Impression]
) -> None:
    with_incidental = mentioned = 0
    for t, imp in zip(truths, train_impressions):
        for inc in INCIDENTAL_FINDINGS:
            if inc in imp.text:
                assert inc in t.incidentals, imp.text
        if t.incidentals:
            with_incidental += 1
            mentioned += t.incidentals[0] in imp.text
    assert with_incidental > 100
    assert 0.3 < mentioned / with_incidental < 0.9


def test_diagnosis_wording_per_disease(truths: list[StudyTruth], train_impressions: list[Impression]) -> None:
    expected = {
        "ischemic": r"ischemic cardiomyopathy|myocardial infarction|infarct\b",
        "nicm": r"dilated cardiomyopathy|non-dilated cardiomyopathy",
        "hcm": r"hypertrophic cardiomyopathy",
        "amyloidosis": r"amyloidosis",
    }
    hits: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    for t, imp in zip(truths, train_impressions):
        text = _us(imp.text)
        if t.disease in expected:
            totals[t.disease] += 1
            hits[t.disease] += bool(re.search(expected[t.disease], text, re.IGNORECASE))
        if t.disease == "normal" and not any(t.labels[f] for f in L.FINDINGS):
            assert not re.search(r"cardiomyopathy|amyloid|myocarditis|infarct", text), text
        if t.phenotype == "amyloid" and t.lge_pattern == "diffuse_subendocardial":
            assert re.search(r"gadolinium kinetics|nulling the myocardium|difficult to null", text), text
    for dz in expected:
        assert hits[dz] == totals[dz], dz  # every reader names the disease when the images show it


def test_spelling_varies(train_impressions: list[Impression]) -> None:
    texts = " ".join(imp.text for imp in train_impressions)
    assert "ischaemic" in texts and "ischemic" in texts
    assert "calibre" in texts and "caliber" in texts


# ------------------------------------------------------------------------------------------------------------
# Variety


def test_variety_for_the_same_label_set(
    truths: list[StudyTruth], train_impressions: list[Impression]
) -> None:
    by_labels: dict[tuple[bool, ...], list[str]] = defaultdict(list)
    for t, imp in zip(truths, train_impressions):
        by_labels[tuple(bool(t.labels[f]) for f in L.FINDINGS)].append(imp.text)
    big = [texts for texts in by_labels.values() if len(texts) >= 30]
    assert big
    for texts in big:
        assert len(set(texts)) / len(texts) > 0.9
    # The same study written by many readers.
    for t in truths[:5]:
        texts = {write_impression(t, np.random.default_rng(s)).text for s in range(200)}
        assert len(texts) > 180


def test_a_normal_study_is_not_always_one_template(
    truths: list[StudyTruth], train_impressions: list[Impression]
) -> None:
    firsts = Counter(imp.sentences[0] for t, imp in zip(truths, train_impressions) if t.disease == "normal")
    assert firsts.most_common(1)[0][1] < 0.15 * sum(firsts.values())


# ------------------------------------------------------------------------------------------------------------
# Held-out phrasing never leaks into training text (and vice versa)


def test_banks_have_the_same_keys_and_templates_resolve() -> None:
    assert set(pb.BANKS["train"]) == set(pb.BANKS["heldout"])
    ctx_fields = {"n", "m", "v", "x", "mm", "sep", "ratio", "cm", "t", "walls", "kin", "ef", "edv", "wma",
                  "wma_np", "size_pre", "size_pred", "fn_pre", "fn_pred", "sev", "sevadv", "rvef", "bief",
                  "mwt",
                  "pct", "viab", "ext", "lavi", "size", "peri", "depth", "items", "inc", "a_inc", "variant",
                  "sysfn"}
    for name, bank in pb.BANKS.items():
        for key, options in bank.items():
            assert options, (name, key)
            for text in options:
                for ref in re.findall(r"\{([A-Za-z0-9_.]+)\}", text):
                    assert ref in bank or ref in ctx_fields, (name, key, ref)


def test_template_ids_belong_to_one_bank() -> None:
    ids = [(name, key, i) for name in ("train", "heldout") for key in getattr(pb, name.upper()) for i, _ in
           enumerate(getattr(pb, name.upper())[key])]
    assert len(ids) == len(set(ids))
    # Sentence frames ("s.*") are never shared verbatim between the banks.
    for key in pb.TRAIN:
        if key.startswith("s."):
            assert not set(pb.TRAIN[key]) & set(pb.HELDOUT[key]), key


def test_every_prompt_carries_a_key_phrase_of_its_bank() -> None:
    for phrasing in PHRASINGS:
        own = _phrase_re(pb.EXCLUSIVE[phrasing])
        other = _phrase_re(pb.EXCLUSIVE["heldout" if phrasing == "train" else "train"])
        for p in _all_prompts(phrasing):
            assert own.search(_us(p)), (phrasing, p)
            assert not other.search(_us(p)), (phrasing, p)


def test_prompt_ensembles_cover_all_names() -> None:
    for phrasing in PHRASINGS:
        for f in L.FINDINGS:
            for positive in (True, False):
                assert 3 <= len(finding_prompts(f, positive, phrasing)) <= 6  # type: ignore[arg-type]
        for dz in L.DISEASES:
            for positive in (True, False):
                assert 2 <= len(disease_prompts(dz, positive, phrasing)) <= 6  # type: ignore[arg-type]
    assert finding_prompts("lge", True) == finding_prompts("lge", True, "heldout")  # heldout is the default
    with pytest.raises(KeyError):
        finding_prompts("lv_thrombus", True)
    with pytest.raises(KeyError):
        disease_prompts("sarcoid", True)


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_no_leak_between_banks(phrasing: str, request: pytest.FixtureRequest) -> None:
    other = "heldout" if phrasing == "train" else "train"
    imps: list[Impression] = request.getfixturevalue(f"{phrasing}_impressions")
    texts = [_us(imp.text.replace("\n", " ")) for imp in imps]
    foreign_phrases = _phrase_re(pb.EXCLUSIVE[other])
    # Whole prompts, as phrases ("ischemic cardiomyopathy" is not in "non-ischemic cardiomyopathy").
    foreign_prompts = _phrase_re([_us(p) for p in _all_prompts(other)])
    for text in texts:
        m = foreign_phrases.search(text)
        assert m is None, (m.group(0) if m else "", text)
        m = foreign_prompts.search(text)
        assert m is None, (m.group(0) if m else "", text)


@pytest.mark.parametrize("phrasing", PHRASINGS)
def test_key_phrases_are_really_used(phrasing: str, request: pytest.FixtureRequest) -> None:
    """Each bank's key phrases occur in its own text or prompts, so the exclusivity lists are not stale."""
    imps: list[Impression] = request.getfixturevalue(f"{phrasing}_impressions")
    corpus = _us(" ".join(imp.text for imp in imps) + " " + " ".join(_all_prompts(phrasing)))
    unused = [p for p in pb.EXCLUSIVE[phrasing] if not _phrase_re([p]).search(corpus)]
    assert not unused


def test_heldout_text_states_the_same_facts(truths: list[StudyTruth]) -> None:
    """Same study, both phrasings: the same major findings are stated present."""
    rng_a, rng_b = np.random.default_rng(11), np.random.default_rng(12)
    for t in truths[:500]:
        a = write_impression(t, rng_a, "train")
        b = write_impression(t, rng_b, "heldout")
        for f in L.FINDINGS:
            if _major(t, f):
                assert a.mentioned[f] is True and b.mentioned[f] is True


def test_spelling_round_trip() -> None:
    assert pb.to_british("Ischemic heart; normal caliber") == "Ischaemic heart; normal calibre"
    assert pb.to_american("Ischaemic; calibre; remodelling") == "Ischemic; caliber; remodeling"


def test_sample_truth_fixture_is_diverse(truths: list[StudyTruth]) -> None:
    assert set(t.disease for t in truths) == set(L.DISEASES)
