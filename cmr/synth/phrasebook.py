"""Phrase banks for the synthetic CMR impressions: two disjoint vocabularies ("train" and "heldout").

Each bank is a small grammar: a key maps to alternatives, and an alternative may refer to other keys (or to
per-statement context fields) as ``{name}``. Both banks define exactly the same keys, so the report writer
(`cmr.synth.report`) plans the same facts and only the wording differs. A template's id is
``(bank, key, index)``; every template belongs to exactly one bank.

Why two banks: zero-shot and retrieval evaluation use the "heldout" wording (prompts included), which a
model trained on "train" text never saw, so the benchmark measures what the model learned from images, not
which sentence frames it memorised. `EXCLUSIVE` lists each bank's key phrases; a phrase of one bank never
occurs in text written with the other (the unit tests check this on thousands of impressions), and every
prompt contains at least one key phrase of its own bank.

Everything here is written in American spelling; the writer converts to British per report (`to_british`),
and `to_american` undoes it so the exclusivity checks and later labellers see one spelling.
"""

from __future__ import annotations

import re
from typing import Final, Literal, Mapping

Phrasing = Literal["train", "heldout"]
Grammar = Mapping[str, tuple[str, ...]]

# ------------------------------------------------------------------------------------------------------------
# Spelling. Only words the banks actually use (plus a few a later bank might); applied to whole words.
US_TO_UK: Final[dict[str, str]] = {
    "ischemic": "ischaemic",
    "ischemia": "ischaemia",
    "nonischemic": "nonischaemic",
    "caliber": "calibre",
    "remodeling": "remodelling",
    "etiology": "aetiology",
    "favor": "favour",
    "favoring": "favouring",
    "favored": "favoured",
    "revascularization": "revascularisation",
    "characterized": "characterised",
    "visualized": "visualised",
    "localized": "localised",
    "counseling": "counselling",
    "hemodynamically": "haemodynamically",
    "hematology": "haematology",
}
_UK_TO_US: Final[dict[str, str]] = {uk: us for us, uk in US_TO_UK.items()}


def _word_swapper(table: Mapping[str, str]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(sorted(table, key=len, reverse=True)) + r")\b", re.IGNORECASE)


_US_RE: Final = _word_swapper(US_TO_UK)
_UK_RE: Final = _word_swapper(_UK_TO_US)


def _swap(text: str, pattern: re.Pattern[str], table: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        word = m.group(0)
        out = table[word.lower()]
        return out[0].upper() + out[1:] if word[0].isupper() else out

    return pattern.sub(repl, text)


def to_british(text: str) -> str:
    return _swap(text, _US_RE, US_TO_UK)


def to_american(text: str) -> str:
    return _swap(text, _UK_RE, _UK_TO_US)


# ------------------------------------------------------------------------------------------------------------
# Entries identical in both banks: anatomy and measurement units are facts, not phrasing.
SHARED: Final[dict[str, tuple[str, ...]]] = {
    "unit": ("mL/m2", "mL/m2", "ml/m2", "mL/m\u00b2"),
    # Coronary territories -> wall segments (AHA 17-segment naming).
    "walls.LAD": (
        "anterior wall and anteroseptum",
        "anterior and anteroseptal walls and the apex",
        "mid to apical anterior and anteroseptal segments",
        "basal to apical anterior wall and the apical segments",
        "apical segments and the apex",
    ),
    "walls.RCA": (
        "inferior wall and inferoseptum",
        "basal and mid inferior and inferoseptal segments",
        "inferior and inferoseptal walls",
        "basal to mid inferior wall",
    ),
    "walls.LCX": (
        "inferolateral and anterolateral walls",
        "basal to mid lateral and inferolateral segments",
        "lateral wall",
        "basal inferolateral wall",
    ),
    "sev.mild": ("mild",),
    "sev.moderate": ("moderate",),
    "sev.severe": ("severe", "marked"),
    "sevadv.mild": ("mildly",),
    "sevadv.moderate": ("moderately",),
    "sevadv.severe": ("severely", "markedly"),
    "spade": (
        "",
        "",
        " and a spade-shaped LV cavity in diastole",
        ", giving an 'ace of spades' configuration of the cavity",
    ),
}

# ------------------------------------------------------------------------------------------------------------
TRAIN: Final[dict[str, tuple[str, ...]]] = {
    # Nouns. The *_adj forms are attributive ("left ventricular systolic function").
    "lv": ("LV", "left ventricle"),
    "lv_adj": ("LV", "left ventricular"),
    "rv": ("RV", "right ventricle"),
    "rv_adj": ("RV", "right ventricular"),
    "la": ("LA", "left atrium"),
    "la_adj": ("LA", "left atrial"),
    "lge": ("LGE", "late gadolinium enhancement", "LGE"),
    "sysfn": ("systolic function", "systolic function", "global systolic function"),
    "sysfn.plain": ("systolic function",),
    # Size words, by grade. "pre" = attributive, "pred" = predicative.
    "size_pre.small": ("small",),
    "size_pre.normal": ("normal-sized", "non-dilated"),
    "size_pre.mild": ("mildly dilated",),
    "size_pre.moderate": ("moderately dilated",),
    "size_pre.severe": ("severely dilated", "markedly dilated"),
    "size_pred.small": ("small in size", "small"),
    "size_pred.normal": ("normal in size", "not dilated"),
    "size_pred.mild": ("mildly dilated",),
    "size_pred.moderate": ("moderately dilated",),
    "size_pred.severe": ("severely dilated", "markedly dilated"),
    # Systolic function words, by grade.
    "fn_pre.hyper": ("hyperdynamic",),
    "fn_pre.normal": ("normal", "preserved", "good"),
    "fn_pre.lownormal": ("low-normal", "low normal"),
    "fn_pre.mild": ("mildly reduced", "mildly impaired"),
    "fn_pre.mildmod": ("mildly to moderately reduced", "mild to moderately impaired"),
    "fn_pre.moderate": ("moderately reduced", "moderately impaired"),
    "fn_pre.modsev": ("moderately to severely reduced", "moderate to severely impaired"),
    "fn_pre.severe": ("severely reduced", "severely impaired", "markedly impaired"),
    "fn_pred.hyper": ("hyperdynamic",),
    "fn_pred.normal": ("normal", "preserved", "good"),
    "fn_pred.lownormal": ("low-normal", "at the lower limit of normal", "low normal"),
    "fn_pred.mild": ("mildly reduced", "mildly impaired"),
    "fn_pred.mildmod": ("mildly to moderately reduced", "mild to moderately impaired"),
    "fn_pred.moderate": ("moderately reduced", "moderately impaired"),
    "fn_pred.modsev": ("moderately to severely reduced", "moderate to severely impaired"),
    "fn_pred.severe": ("severely reduced", "severely impaired", "markedly impaired"),
    # Numbers. {n}: LVEF; {m}: RVEF; {v}: "LV"/"RV" for volumes.
    "ef.paren": (" (LVEF {n}%)", " (LVEF {n}%)", " (LVEF {n}%)", " (LVEF {n} %)", " (EF {n}%)",
                 " (ejection fraction {n}%)",
                 " (LVEF estimated at {n}%)"),
    "ef.tail": (", LVEF {n}%", ", with an ejection fraction of {n}%", ", EF estimated at {n}%",
                " with an LVEF of {n}%", ", EF of {n} %"),
    "rvef.paren": (" (RVEF {m}%)", " (RV EF {m}%)", ", RVEF {m}%", " (RVEF of {m}%)"),
    "biv.ef": (" (LVEF {n}%, RVEF {m}%)", " (LVEF {n}% and RVEF {m}%)", " (LVEF {n}%)"),
    "edv.fmt": (" ({v}EDVi {x} {unit})", " ({v}EDVi {x} {unit})", " (indexed {v} EDV {x} {unit})"),
    "lavi.fmt": (" (LAVi {x} {unit})", ", LAVi {x} {unit}", " (LAVi of {x} {unit})"),
    # Regional and global wall motion. {kin}: a "kin.*" entry, {walls}/{terr}: territory.
    "kin.hypo": ("hypokinesis",),
    "kin.aki": ("akinesis",),
    "kin.dys": ("dyskinesis", "akinesis to dyskinesis"),
    "terr": ("{t} territory",),
    "wma.regional": ("regional {kin} of the {walls} ({terr})", "{kin} of the {walls}",
                     "{terr} regional {kin}", "regional {kin} in the {terr}"),
    "wma.global": ("global hypokinesis", "diffuse global hypokinesis", "global hypokinesis"),
    "wma.join": (" with {wma_np}", ", with {wma_np}"),
    # --- LV statements
    "s.lv.combo": (
        "{size_pre} {lv}{edv} with {fn_pre} {sysfn}{ef}{wma}.",
        "The {lv} is {size_pred}{edv} with {fn_pre} {sysfn}{ef}{wma}.",
    ),
    "s.lv.func": (
        "{fn_pre} {lv_adj} {sysfn}{ef}{wma}.",
        "{lv_adj} {sysfn} is {fn_pred}{ef}{wma}.",
        "{fn_pre} {lv_adj} systolic function{ef}{wma}.",
    ),
    "s.lv.size": ("The {lv} is {size_pred}{edv}.", "{size_pre} {lv}{edv}.",
                  "{lv_adj} cavity is {size_pred}{edv}."),
    "s.lv.combo_abn": ("{size_pre}, {fn_pre} {lv}{ef}{wma}.",
                       "{size_pre} {lv}{edv} with {fn_pre} function{ef}{wma}."),
    "s.lv.both_normal": (
        "Normal {lv_adj} size and systolic function{ef}.",
        "Normal {lv_adj} size and {fn_pre} systolic function{ef}.",
        "Non-dilated {lv} with {fn_pre} {sysfn}{ef}.",
    ),
    "s.wma.alone": ("Regional {kin} of the {walls} ({terr}).", "There is {kin} of the {walls} ({terr}).",
                    "{terr} regional wall motion abnormality with {kin} of the {walls}."),
    # --- RV statements
    "s.rv.combo": ("{size_pre} {rv}{edv} with {fn_pre} systolic function{rvef}.",
                   "The {rv} is {size_pred}{edv} with {fn_pre} systolic function{rvef}."),
    "s.rv.func": ("{fn_pre} {rv_adj} systolic function{rvef}.",
                  "{rv_adj} systolic function is {fn_pred}{rvef}."),
    "s.rv.size": ("The {rv} is {size_pred}{edv}.", "{size_pre} {rv}{edv}."),
    "s.rv.both_normal": ("Normal {rv_adj} size and systolic function{rvef}.",
                         "Normal {rv_adj} size and function{rvef}.",
                         "The {rv} is normal in size with preserved systolic function{rvef}."),
    "s.biv.normal": ("Normal biventricular size and systolic function{bief}.",
                     "Normal biventricular size and function{bief}.",
                     "Both ventricles are normal in size with preserved systolic function{bief}."),
    # --- wall thickness. {mm}: maximal wall, {sep}: septum, {ratio}: septal/inferolateral.
    "mwt.fmt": (" (maximal wall thickness {mm} mm)", ", maximal wall thickness {mm} mm",
            " with a maximal wall thickness of {mm} mm", " (max {mm} mm)"),
    "s.wall.concentric": (
        "{sev} concentric {lv_adj} hypertrophy{mwt}.",
        "Concentric {lv_adj} hypertrophy{mwt}.",
        "{sev} concentric LVH{mwt}.",
        "There is {sev} concentric hypertrophy of the {lv}{mwt}.",
    ),
    "s.wall.asym": (
        "Asymmetric septal hypertrophy, maximal septal thickness "
        "{sep} mm (septal to inferolateral wall ratio {ratio}).",
        "{sev} asymmetric septal hypertrophy measuring {sep} mm, septal:lateral ratio {ratio}.",
        "Asymmetric hypertrophy of the interventricular septum measuring up to {sep} mm.",
        "Asymmetric septal LVH ({sep} mm; septal to lateral wall ratio {ratio}).",
    ),
    "s.wall.apical": (
        "Apical hypertrophy with a maximal apical wall thickness of {mm} mm{spade}.",
        "{sev} hypertrophy confined to the apical segments (up to {mm} mm){spade}.",
        "Apical {lv_adj} hypertrophy measuring {mm} mm{spade}.",
    ),
    # Hypertrophy without a named pattern: unused by today's truth model, which always names one.
    "s.wall.generic": ("{sev} {lv_adj} hypertrophy{mwt}.", "{lv_adj} hypertrophy{mwt}."),
    "s.wall.normal": ("Normal {lv_adj} wall thickness{mwt}.", "No {lv_adj} hypertrophy.",
                      "Normal myocardial wall thickness."),
    "s.wall.upper_normal": (
        "{lv_adj} wall thickness is at the upper limit of normal ({mm} mm), without hypertrophy.",
        "Wall thickness at the upper limit of normal ({mm} mm); no LVH.",
    ),
    # --- LGE. {pct}: transmurality words, {viab}: viability clause.
    "pct.lt25": ("<25%", "less than 25%"),
    "pct.25to50": ("25-50%", "up to 50%"),
    "pct.51to75": ("51-75%", ">50%"),
    "pct.gt75": (">75%", "more than 75%"),
    "viab.yes": (", indicating viable myocardium", "; these segments are viable",
                 ", in keeping with viable myocardium", ""),
    "viab.no": (", indicating non-viable myocardium", "; these segments are non-viable",
                ", with a low likelihood of viability"),
    "s.lge.isch_sub": (
        "Subendocardial {lge} in the {walls} ({terr}) with {pct} transmurality{viab}.",
        "{terr} subendocardial {lge} ({pct} transmural){viab}.",
        "{lge} in a subendocardial pattern involving the {walls}, {pct} transmural, in the {terr}{viab}.",
        "Subendocardial infarct scar in the {terr} on {lge} imaging with {pct} transmurality{viab}.",
    ),
    "s.lge.isch_trans": (
        "Transmural {lge} in the {walls} ({terr}){viab}.",
        "Full-thickness {lge} of the {walls} in keeping with transmural infarct scar in the {terr}{viab}.",
        "{terr} transmural infarct scar ({pct} transmurality on {lge} imaging){viab}.",
    ),
    "s.lge.midwall_dcm": (
        "Mid-wall {lge} in the basal to mid interventricular septum (non-ischemic pattern).",
        "{ext} linear mid-wall septal {lge}.",
        "{ext} mid-wall {lge} of the septum in a non-ischemic pattern.",
    ),
    "s.lge.midwall_hcm": (
        "{ext} mid-wall {lge} within the hypertrophied septum and at the RV insertion points.",
        "Patchy mid-wall {lge} in the hypertrophied segments.",
        "{ext} mid-wall fibrosis on {lge} imaging in the hypertrophied myocardium.",
    ),
    "s.lge.subepi": (
        "Subepicardial {lge} in the basal to mid inferolateral wall (non-ischemic pattern).",
        "{ext} subepicardial {lge} of the lateral and inferolateral walls.",
        "Non-ischemic pattern of {lge}: subepicardial in the basal and mid lateral wall.",
    ),
    "s.lge.diffuse": (
        "Diffuse global subendocardial {lge} with abnormal "
        "gadolinium kinetics (difficulty nulling the myocardium).",
        "Global subendocardial {lge}, with difficulty nulling the "
        "myocardium and abnormal gadolinium kinetics.",
        "Diffuse circumferential subendocardial {lge}; the myocardium was difficult to null.",
    ),
    "s.lge.global_trans": (
        "Diffuse transmural {lge} throughout the LV myocardium with abnormal gadolinium kinetics.",
        "Global transmural {lge}, with difficulty nulling the myocardium.",
    ),
    "ext.focal": ("Focal", "Patchy", "Limited"),
    "ext.extensive": ("Extensive", "Extensive", "Widespread"),
    "s.lge.neg": ("No {lge}.", "No myocardial scar or fibrosis.", "No {lge} to suggest scar or fibrosis.",
                  "No evidence of myocardial scar on {lge} imaging.", "No late gadolinium enhancement."),
    # --- LA, aorta, pericardium
    "s.la.pos": ("{sevadv} dilated {la}{lavi}.", "{sev} {la_adj} dilatation{lavi}.",
                 "Dilated left atrium{lavi}.",
                 "The {la} is {sevadv} dilated{lavi}."),
    "s.la.neg": ("Normal {la_adj} size.", "The left atrium is not dilated.", "Non-dilated {la}."),
    "s.ao.pos": (
        "{sevadv} dilated aortic root ({size} at the sinuses of Valsalva).",
        "Dilated aortic root, measuring {size} at the sinus level.",
        "{sev} aortic root dilatation ({size}).",
        "The aortic root is {sevadv} dilated at {size}.",
        "Aortic root dilation to {size} at the sinuses.",
    ),
    "s.ao.neg": ("The aortic root is normal in caliber.", "Normal caliber aortic root ({size}).",
                 "Aortic root not dilated.", "The aortic root is normal in caliber ({size})."),
    "s.ao.upper_normal": ("Aortic root at the upper limit of normal ({size}), not dilated.",
                          "The aortic root measures {size}, at the upper limit of normal caliber."),
    "peri.depth": (" ({mm} mm)", " measuring up to {mm} mm", ", maximal depth {mm} mm", ""),
    "peri.small": ("small",),
    "peri.moderate": ("moderate", "moderate-sized"),
    "peri.large": ("large",),  # none today (effusions <= 16 mm in truth.py); kept for a wider truth model
    "s.peri.pos": ("{peri} pericardial effusion{depth}.", "There is a {peri} pericardial effusion{depth}.",
                   "{peri} circumferential pericardial effusion{depth}."),
    "s.peri.neg": ("No pericardial effusion.", "No significant pericardial effusion.",
                   "No pericardial effusion is seen."),
    # --- nouns for the combined negative sentence ("No LGE, pericardial effusion or aortic root dilatation.")
    "neg.lge": ("LGE", "late gadolinium enhancement", "myocardial scar"),
    "neg.pericardial_effusion": ("pericardial effusion",),
    "neg.aortic_dilation": ("aortic root dilatation", "aortic dilatation"),
    "neg.la_enlargement": ("left atrial dilatation", "LA dilatation"),
    "neg.lv_hypertrophy": ("LV hypertrophy", "LVH", "left ventricular hypertrophy"),
    "s.neglist": ("No {items}.", "No {items} is seen.", "There is no {items}."),
    # --- summaries, diagnoses, incidentals, recommendations
    "s.normal": ("Normal cardiac MRI.", "Normal study.", "Structurally and functionally normal heart.",
                 "Normal cardiac MRI study.", "Normal CMR."),
    "s.otherwise_normal": ("Otherwise normal cardiac MRI.", "Otherwise normal study.",
                           "The study is otherwise normal."),
    "dxframe": ("Findings are consistent with", "Appearances are in keeping with",
                "Findings are in keeping with",
                "Consistent with", "In keeping with", "Findings are suggestive of"),
    "s.dx.ischemic": (
        "{dxframe} ischemic cardiomyopathy with prior myocardial infarction in the {terr}.",
        "{dxframe} ischemic cardiomyopathy in the {terr}.",
        "Ischemic cardiomyopathy secondary to prior {terr} myocardial infarction.",
    ),
    "s.dx.infarct": (
        "{dxframe} prior myocardial infarction in the {terr}.",
        "Prior {terr} myocardial infarction.",
        "{dxframe} a previous {terr} infarct.",
    ),
    "s.dx.dcm": (
        "{dxframe} non-ischemic dilated cardiomyopathy.",
        "{dxframe} dilated cardiomyopathy of non-ischemic etiology.",
        "Non-ischemic dilated cardiomyopathy.",
    ),
    "s.dx.dcm_nolge": (
        "{dxframe} dilated cardiomyopathy; the absence of {lge} makes an ischemic etiology unlikely.",
        "Dilated cardiomyopathy without {lge}, in keeping with a non-ischemic etiology.",
    ),
    "s.dx.hndc": ("{dxframe} a hypokinetic non-dilated cardiomyopathy.",
                  "Hypokinetic non-dilated cardiomyopathy of non-ischemic etiology."),
    "s.dx.hcm": (
        "{dxframe} hypertrophic cardiomyopathy{variant}.",
        "Hypertrophic cardiomyopathy{variant}.",
        "{dxframe} a hypertrophic cardiomyopathy phenotype{variant}.",
    ),
    "variant.asymmetric_septal": ("", " (asymmetric septal variant)", " with asymmetric septal hypertrophy"),
    "variant.apical": (" (apical variant)", ", apical variant", " of the apical type"),
    "variant.concentric": ("", "; hypertensive heart disease is a differential"),
    "s.dx.amyloid": (
        "{dxframe} cardiac amyloidosis.",
        "Appearances are highly suggestive of cardiac amyloidosis.",
        "Findings are strongly suggestive of cardiac amyloidosis.",
    ),
    "s.dx.myocarditis": (
        "{dxframe} myocarditis.",
        "{dxframe} acute or prior myocarditis in the appropriate clinical context.",
        "{dxframe} prior myocarditis.",
        "{dxframe} acute myocarditis; correlate with the clinical presentation.",
    ),
    "s.dx.myopericarditis": ("{dxframe} myopericarditis.", "{dxframe} acute myopericarditis."),
    "s.dx.athlete": (
        "Appearances are consistent with physiological remodeling (athlete's heart).",
        "{dxframe} physiological remodeling in an athlete.",
        "{dxframe} athlete's heart.",
    ),
    "s.dx.hypertensive": ("{dxframe} hypertensive heart disease.", "Likely hypertensive heart disease."),
    "s.dx.ph": (
        "{dxframe} pulmonary hypertension.",
        "{dxframe} raised RV afterload, likely secondary to pulmonary hypertension.",
        "Raised right ventricular afterload in keeping with pulmonary hypertension.",
    ),
    "s.dx.arvc": (
        "{dxframe} arrhythmogenic right ventricular cardiomyopathy.",
        "Findings would fulfil imaging criteria for arrhythmogenic right ventricular cardiomyopathy.",
        "{dxframe} ARVC; correlate with ECG and family history.",
    ),
    "s.thrombus_neg": ("No LV thrombus.", "No left ventricular thrombus is seen."),
    "s.incidental": ("Incidental note is made of {a_inc}.", "Incidental {inc}.", "Incidental finding: {inc}.",
                     "Also noted: {inc}."),
    "s.rec.amyloid": ("Further assessment with bone scintigraphy and serum free light chains is suggested.",
                      "Suggest nuclear scintigraphy (DPD/PYP) and a hematology opinion."),
    "s.rec.hcm": ("Suggest genetic counseling and screening of first-degree relatives.",),
    "s.rec.aorta": ("Suggest surveillance imaging of the aortic root.",),
    "s.rec.clinical": ("Clinical correlation is suggested.",),
}

# ------------------------------------------------------------------------------------------------------------
# Held-out wording: same keys, same facts, other synonyms and sentence frames.
HELDOUT: Final[dict[str, tuple[str, ...]]] = {
    "lv": ("LV", "left ventricle"),
    "lv_adj": ("LV", "left ventricular"),
    "rv": ("RV", "right ventricle"),
    "rv_adj": ("RV", "right ventricular"),
    "la": ("LA", "left atrium"),
    "la_adj": ("LA", "left atrial"),
    "lge": ("delayed enhancement", "delayed enhancement", "hyperenhancement"),
    "sysfn": ("systolic performance", "contractile function", "contractility"),
    "sysfn.plain": ("systolic performance", "contractility"),
    "size_pre.small": ("small", "small-volume"),
    "size_pre.normal": ("non-enlarged", "normally sized"),
    "size_pre.mild": ("mildly enlarged",),
    "size_pre.moderate": ("moderately enlarged",),
    "size_pre.severe": ("severely enlarged", "markedly enlarged"),
    "size_pred.small": ("small", "of small volume"),
    "size_pred.normal": ("of normal dimensions", "not enlarged"),
    "size_pred.mild": ("mildly enlarged",),
    "size_pred.moderate": ("moderately enlarged",),
    "size_pred.severe": ("severely enlarged", "markedly enlarged"),
    "fn_pre.hyper": ("vigorous", "supranormal"),
    "fn_pre.normal": ("normal", "intact"),
    "fn_pre.lownormal": ("borderline normal",),
    "fn_pre.mild": ("mildly depressed", "mildly diminished", "slightly decreased"),
    "fn_pre.mildmod": ("mildly to moderately depressed",),
    "fn_pre.moderate": ("moderately depressed", "moderately diminished"),
    "fn_pre.modsev": ("moderately to severely depressed",),
    "fn_pre.severe": ("severely depressed", "severely diminished", "poor"),
    "fn_pred.hyper": ("vigorous", "supranormal"),
    "fn_pred.normal": ("within normal limits", "normal", "intact"),
    "fn_pred.lownormal": ("at the lower end of the normal range", "borderline normal"),
    "fn_pred.mild": ("mildly depressed", "mildly diminished", "slightly decreased"),
    "fn_pred.mildmod": ("mildly to moderately depressed",),
    "fn_pred.moderate": ("moderately depressed", "moderately diminished"),
    "fn_pred.modsev": ("moderately to severely depressed",),
    "fn_pred.severe": ("severely depressed", "severely diminished", "poor"),
    "ef.paren": (" (EF measured at {n}%)", " (calculated LVEF {n}%)", " (ejection fraction: {n}%)",
                 " (LVEF approximately {n}%)"),
    "ef.tail": (", with a calculated ejection fraction of {n}%", ", LVEF measured at {n}%",
                "; calculated LVEF {n}%"),
    "rvef.paren": (" (RVEF measured at {m}%)", " (calculated RVEF {m}%)"),
    "biv.ef": (" (calculated LVEF {n}%, RVEF {m}%)", " (LVEF measured at {n}%)"),
    "edv.fmt": (" ({v} indexed end-diastolic volume {x} {unit})",
                " (indexed {v} end-diastolic volume of {x} {unit})"),
    "lavi.fmt": (" (indexed left atrial volume {x} {unit})", " (LA volume index {x} {unit})"),
    "kin.hypo": ("hypokinesia",),
    "kin.aki": ("akinesia",),
    "kin.dys": ("dyskinesia", "aneurysmal dyskinesia"),
    "terr": ("{t} distribution",),
    "wma.regional": ("{kin} of the {walls} ({terr})", "regional {kin} of the {walls} in the {terr}"),
    "wma.global": ("diffuse hypokinesia", "global hypocontractility"),
    "wma.join": (", with {wma_np}", ", accompanied by {wma_np}"),
    "s.lv.combo": (
        "{size_pre} {lv}{edv} showing {fn_pre} {sysfn}{ef}{wma}.",
        "The {lv} is {size_pred}{edv}; {sysfn} is {fn_pred}{ef}{wma}.",
    ),
    "s.lv.combo_abn": ("{size_pre} {lv}{edv}; {sysfn} {fn_pred}{ef}{wma}.",),
    "s.lv.func": (
        "{fn_pre} {sysfn} of the {lv}{ef}{wma}.",
        "{lv_adj} {sysfn}: {fn_pred}{ef}{wma}.",
        "{lv_adj} {sysfn} appears {fn_pred}{ef}{wma}.",
    ),
    "s.lv.size": ("{lv_adj} size: {size_pred}{edv}.", "{size_pre} {lv_adj} cavity{edv}.",
                  "{lv_adj} cavity {size_pred}{edv}."),
    "s.lv.both_normal": (
        "{lv_adj} dimensions and {sysfn} within normal limits{ef}.",
        "Normally sized {lv} with {fn_pre} {sysfn}{ef}.",
    ),
    "s.wma.alone": ("{kin} of the {walls} in the {terr}.", "Segmental {kin} involving the {walls} ({terr})."),
    "s.rv.combo": ("{size_pre} {rv}{edv} with {fn_pre} {sysfn}{rvef}.",
                   "The {rv} is {size_pred}{edv}; {sysfn} is {fn_pred}{rvef}."),
    "s.rv.func": ("{fn_pre} {rv_adj} {sysfn}{rvef}.", "{rv_adj} {sysfn} is {fn_pred}{rvef}."),
    "s.rv.size": ("{rv_adj} size: {size_pred}{edv}.", "{size_pre} {rv_adj} cavity{edv}."),
    "s.rv.both_normal": ("{rv_adj} dimensions and {sysfn} within normal limits{rvef}.",
                         "Normally sized {rv} with intact {sysfn}{rvef}."),
    "s.biv.normal": ("Biventricular dimensions and {sysfn} within normal limits{bief}.",
                     "Both ventricles are of normal dimensions with intact {sysfn}{bief}."),
    "mwt.fmt": (" (maximal thickness {mm} mm)", ", measuring up to {mm} mm"),
    "s.wall.concentric": (
        "{sev} concentric increase in {lv_adj} wall thickness{mwt}.",
        "Concentrically thickened {lv} myocardium{mwt}.",
        "{sev} concentric thickening of the {lv_adj} walls{mwt}.",
    ),
    "s.wall.asym": (
        "Asymmetric thickening of the interventricular septum to "
        "{sep} mm (septal/inferolateral ratio {ratio}).",
        "{sev} asymmetric septal thickening, {sep} mm, with a septal-to-lateral ratio of {ratio}.",
        "Thickened interventricular septum measuring {sep} mm, disproportionate to the lateral wall.",
    ),
    "s.wall.apical": (
        "Thickening confined to the apical segments, up to {mm} mm{spade}.",
        "{sev} apical wall thickening measuring {mm} mm{spade}.",
    ),
    "s.wall.generic": ("{sev} increase in {lv_adj} wall thickness{mwt}.", "Thickened {lv_adj} walls{mwt}."),
    "s.wall.normal": ("{lv_adj} wall thickness within normal limits.",
                      "No increase in {lv_adj} wall thickness."),
    "s.wall.upper_normal": ("{lv_adj} wall thickness at the upper end of the normal range ({mm} mm).",),
    "pct.lt25": ("involving less than a quarter of the wall thickness",),
    "pct.25to50": ("involving up to half of the wall thickness",),
    "pct.51to75": ("involving more than half of the wall thickness",),
    "pct.gt75": ("involving nearly the full wall thickness",),
    "viab.yes": ("; these segments are likely to recover function after revascularization",
                 ", predicting functional recovery with revascularization"),
    "viab.no": ("; functional recovery after revascularization is unlikely",
                ", predicting a low chance of functional recovery"),
    "s.lge.isch_sub": (
        "Subendocardial {lge} of the {walls} in the {terr}, {pct}{viab}.",
        "{lge} in the {terr}, subendocardial and {pct}{viab}.",
    ),
    "s.lge.isch_trans": (
        "Full-thickness {lge} of the {walls} in the {terr}{viab}.",
        "{lge} extending through the full wall thickness of the {walls} ({terr}){viab}.",
    ),
    "s.lge.midwall_dcm": (
        "{ext} linear mid-myocardial {lge} in the septum (non-coronary distribution).",
        "Intramyocardial septal {lge}, not following a coronary distribution.",
    ),
    "s.lge.midwall_hcm": (
        "{ext} intramyocardial {lge} within the thickened septum and at the RV insertion points.",
        "Patchy mid-myocardial {lge} in the thickened segments.",
    ),
    "s.lge.subepi": (
        "Epicardial {lge} along the lateral and inferolateral walls (non-coronary distribution).",
        "{ext} epicardial {lge} of the basal to mid inferolateral "
        "wall, not following a coronary distribution.",
    ),
    "s.lge.diffuse": (
        "Diffuse circumferential subendocardial {lge} with abnormal "
        "contrast kinetics (the blood pool nulls before the myocardium).",
        "Global subendocardial {lge}; myocardial and blood pool null points are abnormal after contrast.",
    ),
    "s.lge.global_trans": (
        "Diffuse transmural {lge} throughout the myocardium with abnormal contrast kinetics.",
    ),
    "ext.focal": ("Focal", "Small-volume"),
    "ext.extensive": ("Extensive", "Confluent"),
    "s.lge.neg": ("No delayed enhancement.", "No myocardial delayed enhancement.",
                  "No areas of hyperenhancement on post-contrast imaging."),
    "s.la.pos": ("{sevadv} enlarged {la}{lavi}.", "{sev} left atrial enlargement{lavi}.",
                 "Enlarged left atrium{lavi}."),
    "s.la.neg": ("{la_adj} size within normal limits.", "No left atrial enlargement."),
    "s.ao.pos": ("{sevadv} enlarged aortic root measuring {size} at the sinus of Valsalva.",
                 "Ectatic aortic root ({size}).", "{sev} aortic root ectasia, {size} at the sinus level."),
    "s.ao.neg": ("Aortic root of normal dimensions.", "No aortic root enlargement ({size})."),
    "s.ao.upper_normal": ("Aortic root at the upper end of the normal range ({size}).",),
    "peri.depth": (", up to {mm} mm deep", " ({mm} mm)", ""),
    "peri.small": ("small",),
    "peri.moderate": ("moderate",),
    "peri.large": ("large",),
    "s.peri.pos": ("{peri} pericardial fluid collection{depth}.",
                   "{peri} amount of fluid in the pericardial sac{depth}."),
    "s.peri.neg": ("No pericardial fluid.", "Pericardium unremarkable, without fluid."),
    "neg.lge": ("delayed enhancement", "hyperenhancement"),
    "neg.pericardial_effusion": ("pericardial fluid",),
    "neg.aortic_dilation": ("aortic root enlargement",),
    "neg.la_enlargement": ("left atrial enlargement",),
    "neg.lv_hypertrophy": ("increase in wall thickness",),
    "s.neglist": ("No {items} is identified.", "No {items} identified."),
    "s.normal": ("Unremarkable cardiac MR examination.",
                 "No abnormality of cardiac structure or function identified.",
                 "Cardiac MR within normal limits."),
    "s.otherwise_normal": ("Otherwise unremarkable cardiac MR examination.",
                           "Remainder of the examination unremarkable."),
    "dxframe": ("Pattern compatible with", "Appearances typical of", "Most likely representing",
                "Compatible with",
                "Features characteristic of"),
    "s.dx.ischemic": (
        "{dxframe} ischemic heart disease with healed infarction in the {terr}.",
        "{dxframe} coronary artery disease with healed infarction in the {terr}.",
    ),
    "s.dx.infarct": ("{dxframe} healed infarction in the {terr}.", "Healed infarction in the {terr}."),
    "s.dx.dcm": ("{dxframe} non-ischemic cardiomyopathy with LV enlargement.",
                 "{dxframe} a non-ischemic cardiomyopathy with an enlarged LV."),
    "s.dx.hndc": ("{dxframe} a non-ischemic cardiomyopathy without LV enlargement.",
                  "{dxframe} a non-ischemic cardiomyopathy."),
    "s.dx.dcm_nolge": (
        "{dxframe} a non-ischemic cardiomyopathy, given no {lge} in a coronary distribution.",
    ),
    "s.dx.hcm": ("{dxframe} a hypertrophic cardiomyopathy{variant}.",
                 "Morphology typical of hypertrophic cardiomyopathy{variant}."),
    "variant.asymmetric_septal": ("", " (septal-predominant form)"),
    "variant.apical": (" (Yamaguchi type)", ", apical form"),
    "variant.concentric": ("", "; pressure overload from systemic hypertension is an alternative"),
    "s.dx.amyloid": ("{dxframe} an infiltrative cardiomyopathy such as amyloid infiltration.",
                     "Appearances typical of cardiac amyloid infiltration."),
    "s.dx.myocarditis": ("{dxframe} myocardial inflammation (myocarditis).",
                         "{dxframe} sequelae of previous myocarditis.",
                         "{dxframe} an inflammatory cardiomyopathy such as myocarditis."),
    "s.dx.myopericarditis": ("{dxframe} myocardial and pericardial inflammation.",),
    "s.dx.athlete": ("{dxframe} exercise-induced cardiac adaptation.",
                     "Likely athletic adaptation of the heart."),
    "s.dx.hypertensive": ("{dxframe} pressure overload from systemic hypertension.",),
    "s.dx.ph": ("{dxframe} pulmonary arterial hypertension with right ventricular pressure loading.",
                "Right heart changes typical of elevated pulmonary artery pressures."),
    "s.dx.arvc": ("{dxframe} arrhythmogenic right ventricular dysplasia.",
                  "{dxframe} an arrhythmogenic cardiomyopathy of the right ventricle."),
    "s.thrombus_neg": ("No intracavitary thrombus identified.",),
    "s.incidental": ("Extracardiac finding: {inc}.", "Incidentally noted: {inc}."),
    "s.rec.amyloid": (
        "Technetium pyrophosphate scintigraphy and serum free light chain assay would help confirm.",
    ),
    "s.rec.hcm": ("Family screening and genetic testing could be offered.",),
    "s.rec.aorta": ("Follow-up imaging of the aortic root could be offered.",),
    "s.rec.clinical": ("Correlation with the clinical picture is advised.",),
}

BANKS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "train": {**SHARED, **TRAIN},
    "heldout": {**SHARED, **HELDOUT},
}

# Key phrases of each bank (American spelling, matched case-insensitively on word boundaries). A phrase listed
# for one bank never occurs in text or prompts of the other bank.
EXCLUSIVE: Final[dict[str, tuple[str, ...]]] = {
    "train": (
        "reduced", "impaired", "dysfunction", "preserved", "hyperdynamic", "low-normal", "low normal",
        "lower limit of normal", "upper limit of normal", "dilated", "dilatation", "dilation", "non-dilated",
        "hypertrophy", "hypertrophied", "LVH", "late gadolinium enhancement", "LGE", "scar", "fibrosis",
        "gadolinium", "nulling", "viable", "viability", "transmurality", "pericardial effusion", "caliber",
        "territory", "consistent with", "in keeping with", "suggestive of", "cardiac MRI", "CMR",
        "systolic function", "hypokinesis", "akinesis", "dyskinesis", "mid-wall", "subepicardial",
        "non-ischemic pattern", "physiological remodeling", "athlete's heart", "hypertensive heart disease",
        "cardiac amyloidosis", "ischemic cardiomyopathy", "myocardial infarction", "infarct",
        "dilated cardiomyopathy", "myocarditis in the appropriate clinical context", "prior myocarditis",
        "acute myocarditis", "estimated at", "incidental note", "LAVi", "LVEDVi", "RVEDVi",
        "pulmonary hypertension", "afterload", "arrhythmogenic right ventricular cardiomyopathy", "ARVC",
        "imaging criteria",
    ),
    "heldout": (
        "depressed", "diminished", "decreased", "poor", "intact", "vigorous", "supranormal",
        "lower end of the normal range", "upper end of the normal range", "borderline normal",
        "within normal limits", "enlarged", "enlargement", "increase", "increased", "thickened", "thickening",
        "delayed enhancement", "delayed myocardial enhancement", "hyperenhancement", "post-contrast",
        "contrast",
        "functional recovery", "pericardial fluid", "pericardial sac", "ectatic", "ectasia", "distribution",
        "compatible with", "typical of", "characteristic of", "most likely", "unremarkable", "cardiac MR",
        "systolic performance", "contractile function", "contractility", "hypocontractility", "hypokinesia",
        "akinesia", "dyskinesia", "mid-myocardial", "intramyocardial", "epicardial", "non-coronary",
        "exercise-induced", "athletic adaptation", "pressure overload", "infiltrative",
        "amyloid infiltration",
        "ischemic heart disease", "coronary artery disease", "healed infarction",
        "non-ischemic cardiomyopathy",
        "myocardial inflammation", "inflammatory", "sequelae", "measured at", "calculated", "approximately",
        "extracardiac finding", "incidentally noted", "end-diastolic volume", "volume index",
        "of normal dimensions",
        "intracavitary", "nulls", "null points", "no abnormality of cardiac structure",
        "pulmonary arterial hypertension", "pressure loading", "pulmonary artery pressures",
        "arrhythmogenic right ventricular dysplasia", "right ventricular dysplasia",
        "arrhythmogenic cardiomyopathy",
    ),
}

# ------------------------------------------------------------------------------------------------------------
# Prompt ensembles for zero-shot scoring: PROMPTS[bank][name] = (positive prompts, negative prompts).
FINDING_PROMPTS: Final[dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]] = {
    "train": {
        "lv_dysfunction": (
            ("reduced left ventricular systolic function", "impaired LV systolic function",
             "left ventricular systolic dysfunction", "LV systolic function is reduced"),
            ("normal left ventricular systolic function", "preserved LV systolic function",
             "left ventricular systolic function is preserved"),
        ),
        "rv_dysfunction": (
            ("reduced right ventricular systolic function", "impaired RV systolic function",
             "right ventricular systolic dysfunction"),
            ("normal right ventricular systolic function", "preserved RV systolic function",
             "right ventricular systolic function is preserved"),
        ),
        "lv_dilation": (
            ("dilated left ventricle", "left ventricular dilatation", "the LV is dilated"),
            ("non-dilated left ventricle", "the left ventricle is not dilated", "no LV dilatation"),
        ),
        "rv_dilation": (
            ("dilated right ventricle", "right ventricular dilatation", "the RV is dilated"),
            ("non-dilated right ventricle", "the right ventricle is not dilated", "no RV dilatation"),
        ),
        "lv_hypertrophy": (
            ("left ventricular hypertrophy", "LV hypertrophy", "hypertrophied left ventricle",
             "concentric or asymmetric LV hypertrophy"),
            ("no left ventricular hypertrophy", "no LV hypertrophy", "no LVH",
             "normal LV wall thickness, no hypertrophy"),
        ),
        "lge": (
            ("late gadolinium enhancement", "myocardial scar on LGE imaging",
             "LGE present in the myocardium"),
            ("no late gadolinium enhancement", "no myocardial scar or fibrosis", "no LGE"),
        ),
        "aortic_dilation": (
            ("dilated aortic root", "aortic root dilatation", "the aortic root is dilated"),
            ("the aortic root is normal in caliber", "normal caliber aortic root", "aortic root not dilated"),
        ),
        "la_enlargement": (
            ("dilated left atrium", "left atrial dilatation", "the left atrium is dilated"),
            ("the left atrium is not dilated", "non-dilated left atrium", "no left atrial dilatation"),
        ),
        "pericardial_effusion": (
            ("pericardial effusion", "small pericardial effusion", "moderate pericardial effusion"),
            ("no pericardial effusion", "no significant pericardial effusion",
             "no pericardial effusion is seen"),
        ),
    },
    "heldout": {
        "lv_dysfunction": (
            ("depressed left ventricular systolic performance", "diminished LV contractility",
             "poor left ventricular contractile function", "decreased left ventricular ejection fraction"),
            ("left ventricular systolic performance within normal limits", "intact LV contractility",
             "left ventricular ejection fraction within normal limits"),
        ),
        "rv_dysfunction": (
            ("depressed right ventricular systolic performance", "diminished RV contractility",
             "poor right ventricular contractile function"),
            ("right ventricular systolic performance within normal limits", "intact RV contractility",
             "right ventricular ejection fraction within normal limits"),
        ),
        "lv_dilation": (
            ("enlarged left ventricle", "left ventricular enlargement", "increased left ventricular volumes"),
            ("left ventricle of normal dimensions", "no left ventricular enlargement",
             "left ventricular cavity size within normal limits"),
        ),
        "rv_dilation": (
            ("enlarged right ventricle", "right ventricular enlargement",
             "increased right ventricular volumes"),
            ("right ventricle of normal dimensions", "no right ventricular enlargement",
             "right ventricular cavity size within normal limits"),
        ),
        "lv_hypertrophy": (
            ("increased left ventricular wall thickness", "thickened left ventricular myocardium",
             "thickening of the left ventricular walls"),
            ("left ventricular wall thickness within normal limits",
             "no increase in left ventricular wall thickness",
             "no thickening of the left ventricular walls"),
        ),
        "lge": (
            ("delayed myocardial enhancement", "areas of hyperenhancement on post-contrast imaging",
             "myocardial delayed enhancement present"),
            ("no delayed enhancement", "no hyperenhancement on post-contrast imaging",
             "no myocardial delayed enhancement"),
        ),
        "aortic_dilation": (
            ("enlarged aortic root", "aortic root ectasia", "ectatic aortic root at the sinus of Valsalva"),
            ("aortic root of normal dimensions", "no aortic root enlargement", "aortic root not enlarged"),
        ),
        "la_enlargement": (
            ("enlarged left atrium", "left atrial enlargement", "increased left atrial volume"),
            ("left atrial size within normal limits", "no left atrial enlargement",
             "left atrium not enlarged"),
        ),
        "pericardial_effusion": (
            ("pericardial fluid collection", "fluid in the pericardial sac",
             "small amount of pericardial fluid"),
            ("no pericardial fluid", "pericardium unremarkable, without fluid",
             "no pericardial fluid collection"),
        ),
    },
}

DISEASE_PROMPTS: Final[dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]]] = {
    "train": {
        "normal": (
            ("normal cardiac MRI", "structurally and functionally normal heart on CMR", "normal CMR study"),
            ("abnormal cardiac MRI", "cardiac MRI with abnormal findings", "abnormal CMR study"),
        ),
        "ischemic": (
            ("ischemic cardiomyopathy", "prior myocardial infarction with subendocardial or transmural LGE",
             "findings consistent with ischemic cardiomyopathy"),
            ("no evidence of ischemic cardiomyopathy", "no prior myocardial infarction on LGE imaging",
             "no infarct scar"),
        ),
        "nicm": (
            ("non-ischemic dilated cardiomyopathy", "dilated cardiomyopathy",
             "dilated left ventricle with global hypokinesis and no infarct scar"),
            ("no dilated cardiomyopathy", "no features of non-ischemic dilated cardiomyopathy",
             "non-dilated left ventricle with normal systolic function"),
        ),
        "hcm": (
            ("findings in keeping with hypertrophic cardiomyopathy",
             "asymmetric septal hypertrophy consistent with hypertrophic cardiomyopathy",
             "apical hypertrophy in keeping with hypertrophic cardiomyopathy"),
            ("no features in keeping with hypertrophic cardiomyopathy",
             "no LV hypertrophy to suggest cardiomyopathy",
             "normal wall thickness, no asymmetric septal hypertrophy"),
        ),
        "amyloidosis": (
            ("cardiac amyloidosis", "findings suggestive of cardiac amyloidosis",
             "diffuse subendocardial LGE with abnormal gadolinium kinetics"),
            ("no features of cardiac amyloidosis", "findings not suggestive of cardiac amyloidosis",
             "normal gadolinium kinetics without diffuse LGE"),
        ),
        "myocarditis": (
            ("findings consistent with myocarditis", "subepicardial LGE in a non-ischemic pattern",
             "acute myocarditis", "prior myocarditis"),
            ("no features consistent with myocarditis", "no subepicardial LGE",
             "no non-ischemic pattern of LGE"),
        ),
        "pulmonary_hypertension": (
            ("pulmonary hypertension", "raised RV afterload in keeping with pulmonary hypertension",
             "findings consistent with pulmonary hypertension"),
            ("no features of pulmonary hypertension", "no raised RV afterload",
             "no evidence of pulmonary hypertension"),
        ),
        "arvc": (
            ("arrhythmogenic right ventricular cardiomyopathy", "findings consistent with ARVC",
             "imaging criteria for arrhythmogenic right ventricular cardiomyopathy fulfilled"),
            ("no features of arrhythmogenic right ventricular cardiomyopathy", "no evidence of ARVC",
             "no imaging features of ARVC"),
        ),
    },
    "heldout": {
        "normal": (
            ("unremarkable cardiac MR examination",
             "no abnormality of cardiac structure or function identified",
             "cardiac MR within normal limits"),
            ("abnormal cardiac MR examination", "cardiac MR examination with abnormalities identified",
             "cardiac MR not within normal limits"),
        ),
        "ischemic": (
            ("ischemic heart disease with healed infarction",
             "coronary artery disease with healed infarction",
             "subendocardial delayed enhancement in a coronary distribution"),
            ("no evidence of coronary artery disease", "no healed infarction in a coronary distribution",
             "no subendocardial delayed enhancement"),
        ),
        "nicm": (
            ("non-ischemic cardiomyopathy with LV enlargement",
             "enlarged left ventricle with diffuse hypokinesia",
             "non-ischemic cardiomyopathy"),
            ("no evidence of a non-ischemic cardiomyopathy", "no LV enlargement or diffuse hypokinesia",
             "left ventricle of normal dimensions with intact contractility"),
        ),
        "hcm": (
            ("morphology typical of hypertrophic cardiomyopathy",
             "asymmetric septal thickening typical of hypertrophic cardiomyopathy",
             "apical wall thickening typical of hypertrophic cardiomyopathy"),
            ("morphology not typical of hypertrophic cardiomyopathy", "no increase in wall thickness",
             "no asymmetric septal thickening"),
        ),
        "amyloidosis": (
            ("infiltrative cardiomyopathy such as amyloid infiltration", "cardiac amyloid infiltration",
             "diffuse subendocardial delayed enhancement with abnormal contrast kinetics"),
            ("no evidence of an infiltrative cardiomyopathy", "no amyloid infiltration",
             "normal contrast kinetics without diffuse delayed enhancement"),
        ),
        "myocarditis": (
            ("myocardial inflammation (myocarditis)", "epicardial delayed enhancement typical of myocarditis",
             "inflammatory cardiomyopathy such as myocarditis"),
            ("no myocardial inflammation", "no epicardial delayed enhancement",
             "no delayed enhancement in a non-coronary distribution"),
        ),
        "pulmonary_hypertension": (
            ("pulmonary arterial hypertension with right ventricular pressure loading",
             "right heart changes typical of elevated pulmonary artery pressures",
             "elevated pulmonary artery pressures"),
            ("no right ventricular pressure loading",
             "no right heart changes of elevated pulmonary artery pressures",
             "no sign of pulmonary arterial hypertension"),
        ),
        "arvc": (
            ("arrhythmogenic right ventricular dysplasia",
             "arrhythmogenic cardiomyopathy of the right ventricle",
             "right ventricular dysplasia"),
            ("no arrhythmogenic right ventricular dysplasia", "no arrhythmogenic cardiomyopathy of the right ventricle",
             "no right ventricular dysplasia"),
        ),
    },
}
