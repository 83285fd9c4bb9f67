"""Ground truth of one synthetic exam: sampled from disease-specific distributions, then thresholded into
the boolean labels of `cmr.labels`. The phantom renders exactly these numbers and the report writer describes
them (with reader variability), so both stay tied to one source of truth.

Diseases are sampled independently of the scanner style so that style is never a shortcut to a label.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from cmr import labels as L

# Prevalence of the primary diagnosis. Rare diseases are rare so rare-disease cohort search is a real test.
DISEASE_PREVALENCE: dict[str, float] = {
    "normal": 0.45,
    "ischemic": 0.17,
    "nicm": 0.13,
    "hcm": 0.09,
    "myocarditis": 0.07,
    "pulmonary_hypertension": 0.04,
    "amyloidosis": 0.03,
    "arvc": 0.02,
}


@dataclass(frozen=True)
class StudyTruth:
    """Everything the phantom needs to render an exam and the report writer needs to describe it."""

    disease: str
    phenotype: str  # finer than disease: e.g. "normal", "hypertensive", "borderline", "asymmetric_septal"
    sex: str  # "M" / "F"
    age: int
    bsa: float  # m^2
    heart_rate: int  # bpm
    # Left ventricle
    lvef: float  # %
    lvedvi: float  # mL/m^2
    lv_max_wall_mm: float  # maximal end-diastolic wall thickness
    lv_septal_wall_mm: float
    lv_lateral_wall_mm: float
    hypertrophy_pattern: str  # "none" | "concentric" | "asymmetric_septal" | "apical"
    regional_wma: str  # "none" | "LAD" | "RCA" | "LCX" | "global"
    # Right ventricle
    rvef: float
    rvedvi: float
    # Other structures
    lavi: float  # mL/m^2
    aortic_root_mm: float
    effusion_mm: float
    # Late gadolinium enhancement
    lge_pattern: str  # one of labels.LGE_PATTERNS
    lge_territory: str  # "LAD" | "RCA" | "LCX" | "septal" | "lateral" | "global" | "none"
    lge_extent: float  # 0..1 fraction of the territory's transmural depth / circumferential extent
    # Incidental findings a reader may mention (outside the labels)
    incidentals: tuple[str, ...] = field(default_factory=tuple)

    @property
    def labels(self) -> dict[str, Any]:
        return {
            "lv_dysfunction": self.lvef < L.LVEF_ABNORMAL_BELOW,
            "rv_dysfunction": self.rvef < L.RVEF_ABNORMAL_BELOW,
            "lv_dilation": self.lvedvi > L.LVEDVI_DILATED_ABOVE,
            "rv_dilation": self.rvedvi > L.RVEDVI_DILATED_ABOVE,
            "lv_hypertrophy": self.lv_max_wall_mm >= L.WALL_THICKNESS_HYPERTROPHY_AT,
            "lge": self.lge_pattern != "none",
            "aortic_dilation": self.aortic_root_mm > L.AORTIC_ROOT_DILATED_ABOVE,
            "la_enlargement": self.lavi > L.LAVI_ENLARGED_ABOVE,
            "pericardial_effusion": self.effusion_mm >= L.EFFUSION_PRESENT_AT,
            "disease": self.disease,
            "lvef": round(self.lvef, 1),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["incidentals"] = list(self.incidentals)
        return d


INCIDENTAL_FINDINGS: tuple[str, ...] = (
    "small hiatus hernia",
    "simple hepatic cyst",
    "small right pleural effusion",
    "small left pleural effusion",
    "bilateral small pleural effusions",
    "simple renal cyst in the upper pole of the left kidney",
    "mild dependent atelectasis in both lower lobes",
    "small pulmonary nodule in the right lower lobe, for which dedicated CT could be considered",
)


def _clip(x: float, lo: float, hi: float) -> float:
    return float(min(hi, max(lo, x)))


def sample_truth(rng: np.random.Generator, prevalence: dict[str, float] | None = None) -> StudyTruth:
    """Draw one exam's ground truth: a disease, then coherent continuous parameters for it.

    `prevalence` overrides DISEASE_PREVALENCE (e.g. equal shares, for a segmentation training bank that must
    see as many dilated and hypertrophied hearts as normal ones)."""
    prevalence = prevalence or DISEASE_PREVALENCE
    names = list(prevalence)
    p = np.array([prevalence[n] for n in names], dtype=np.float64)
    disease = str(rng.choice(names, p=p / p.sum()))
    sex = "M" if rng.random() < 0.58 else "F"
    age = int(_clip(rng.normal(55 if disease != "myocarditis" else 35, 15), 18, 90))
    if disease == "amyloidosis":
        age = int(_clip(rng.normal(72, 8), 50, 92))
    bsa = _clip(rng.normal(2.0 if sex == "M" else 1.75, 0.17), 1.4, 2.6)
    hr = int(_clip(rng.normal(68, 11), 45, 110))

    # Healthy baseline, then disease-specific changes.
    lvef = _clip(rng.normal(62, 4.5), 51, 74)
    lvedvi = _clip(rng.normal(80 if sex == "M" else 74, 10), 55, 102)
    septal = _clip(rng.normal(9.0 if sex == "M" else 8.0, 1.0), 6, 12.2)
    lateral = _clip(septal * rng.normal(0.88, 0.06), 5, 12)
    hyp = "none"
    wma = "none"
    rvef = _clip(rng.normal(60, 5), 47, 72)
    rvedvi = _clip(rng.normal(84 if sex == "M" else 76, 11), 55, 112)
    lavi = _clip(rng.normal(32, 6), 18, 44)
    aorta = _clip(rng.normal(32 if sex == "M" else 29, 3), 24, 39.5)
    effusion = _clip(abs(rng.normal(0, 1.2)), 0, 3.5)
    lge_pattern, territory, extent = "none", "none", 0.0
    phenotype = "normal"

    if disease == "normal":
        u = rng.random()
        if u < 0.12:  # borderline function: near the 50% threshold, readers disagree on the word
            phenotype = "borderline"
            lvef = _clip(rng.normal(52, 2.0), 48.5, 56)
        elif u < 0.24:  # hypertensive remodelling: mild concentric thickening, normal function
            phenotype = "hypertensive"
            septal = _clip(rng.normal(12.3, 1.0), 10.5, 14.5)
            lateral = _clip(septal * rng.normal(0.95, 0.04), 9, 14)
            hyp = "concentric"
            lavi = _clip(rng.normal(40, 7), 25, 60)
        elif u < 0.30:
            phenotype = "athlete"
            lvedvi = _clip(rng.normal(100, 8), 85, 120)
            rvedvi = _clip(rng.normal(108, 9), 90, 130)
            septal = _clip(rng.normal(10.5, 1.0), 8, 12.8)
            lateral = _clip(septal * 0.92, 7, 12.5)
            lvef = _clip(rng.normal(58, 4), 50.5, 68)
    elif disease == "ischemic":
        phenotype = "ischemic"
        wma = str(rng.choice(["LAD", "RCA", "LCX"], p=[0.5, 0.3, 0.2]))
        lvef = _clip(rng.normal(38, 9), 18, 58)
        lvedvi = _clip(rng.normal(100, 18), 70, 160)
        lge_pattern = "transmural" if rng.random() < 0.45 else "subendocardial"
        territory = wma
        extent = _clip(rng.normal(0.6 if lge_pattern == "transmural" else 0.4, 0.15), 0.2, 1.0)
        if rng.random() < 0.25:
            rvef = _clip(rng.normal(44, 7), 28, 60)
        lavi = _clip(rng.normal(42, 9), 22, 75)
        if rng.random() < 0.3:  # co-existing hypertension: mild wall thickening remote from the scar
            septal = _clip(rng.normal(12.5, 1.2), 10, 15)
            lateral = _clip(septal * 0.93, 9, 14)
            hyp = "concentric"
    elif disease == "nicm":
        phenotype = "dilated"
        wma = "global"
        lvef = _clip(rng.normal(30, 8), 12, 48)
        lvedvi = _clip(rng.normal(135, 22), 100, 210)
        septal = _clip(rng.normal(8.0, 1.0), 5.5, 11)
        lateral = _clip(septal * 0.92, 5, 10.5)
        if rng.random() < 0.45:
            rvef = _clip(rng.normal(38, 8), 18, 55)
            rvedvi = _clip(rng.normal(120, 20), 80, 180)
        if rng.random() < 0.35:
            lge_pattern, territory, extent = "midwall", "septal", _clip(rng.normal(0.5, 0.15), 0.2, 0.9)
        lavi = _clip(rng.normal(50, 12), 25, 95)
    elif disease == "hcm":
        hyp = str(rng.choice(["asymmetric_septal", "concentric", "apical"], p=[0.7, 0.15, 0.15]))
        phenotype = hyp
        lvef = _clip(rng.normal(68, 6), 55, 82)
        lvedvi = _clip(rng.normal(70, 10), 48, 95)
        if hyp == "asymmetric_septal":
            septal = _clip(rng.normal(20, 4), 15, 32)
            lateral = _clip(rng.normal(10, 1.5), 7, 13)
        else:
            septal = _clip(rng.normal(17, 2.5), 14, 25)
            lateral = _clip(septal * rng.normal(0.85, 0.08), 12, 22)
        if rng.random() < 0.6:
            lge_pattern, territory, extent = "midwall", "septal", _clip(rng.normal(0.4, 0.15), 0.15, 0.9)
        lavi = _clip(rng.normal(50, 10), 30, 90)
    elif disease == "amyloidosis":
        phenotype = "amyloid"
        hyp = "concentric"
        lvef = _clip(rng.normal(48, 9), 25, 65)
        lvedvi = _clip(rng.normal(65, 10), 45, 90)
        septal = _clip(rng.normal(16.5, 2.0), 13.2, 22)
        lateral = _clip(septal * rng.normal(0.95, 0.04), 12.5, 21)
        rvef = _clip(rng.normal(44, 8), 25, 60)
        lge_pattern = "diffuse_subendocardial" if rng.random() < 0.9 else "transmural"
        territory, extent = "global", _clip(rng.normal(0.5, 0.15), 0.25, 1.0)
        lavi = _clip(rng.normal(55, 10), 35, 95)
        if rng.random() < 0.45:
            effusion = _clip(rng.normal(7, 3), 4, 16)
    elif disease == "myocarditis":
        phenotype = "myocarditis"
        lvef = _clip(rng.normal(52, 9), 28, 68)
        lvedvi = _clip(rng.normal(85, 12), 60, 125)
        if rng.random() < 0.85:
            lge_pattern, territory = "subepicardial", "lateral"
            extent = _clip(rng.normal(0.45, 0.15), 0.2, 0.9)
        if lvef < 50:
            wma = "global"
        if rng.random() < 0.3:
            effusion = _clip(rng.normal(6, 2.5), 4, 14)
    elif disease == "pulmonary_hypertension":
        # RV pressure overload: a dilated, hypertrophied, poorly contracting RV beside an under-filled LV with
        # normal function; the right atrium enlarges with the RV.
        phenotype = "pressure_overload"
        rvedvi = _clip(rng.normal(140, 22), 105, 210)
        rvef = _clip(rng.normal(36, 8), 18, 52)
        lvedvi = _clip(rng.normal(64, 9), 45, 88)
        lvef = _clip(rng.normal(64, 5), 56, 76)
        if rng.random() < 0.25:
            effusion = _clip(rng.normal(5, 1.5), 4, 10)
    elif disease == "arvc":
        # Arrhythmogenic RV cardiomyopathy: a dilated, thin-walled, poorly contracting RV; the LV is usually
        # spared, sometimes mildly involved (left-dominant forms are left out).
        phenotype = "arvc"
        rvedvi = _clip(rng.normal(138, 18), 105, 200)
        rvef = _clip(rng.normal(35, 7), 18, 50)
        if rng.random() < 0.2:
            lvef = _clip(rng.normal(43, 4), 35, 47)

    # Co-occurring findings independent of the primary disease (age-related aortic dilation, effusions).
    if rng.random() < 0.05 + 0.002 * max(0, age - 50):
        aorta = _clip(rng.normal(44, 3.5), 40.5, 55)
    if effusion < L.EFFUSION_PRESENT_AT and rng.random() < 0.03:
        effusion = _clip(rng.normal(6, 2), 4, 12)
    # Borderline sizes around the thresholds, so the label boundary is a real boundary.
    if rng.random() < 0.05:
        aorta = _clip(rng.normal(40, 1.2), 37, 43)

    incidentals: tuple[str, ...] = ()
    if rng.random() < 0.12:
        incidentals = (str(rng.choice(INCIDENTAL_FINDINGS)),)

    return StudyTruth(
        disease=disease,
        phenotype=phenotype,
        sex=sex,
        age=age,
        bsa=round(bsa, 2),
        heart_rate=hr,
        lvef=round(lvef, 1),
        lvedvi=round(lvedvi, 1),
        lv_max_wall_mm=round(max(septal, lateral), 1),
        lv_septal_wall_mm=round(septal, 1),
        lv_lateral_wall_mm=round(lateral, 1),
        hypertrophy_pattern=hyp,
        regional_wma=wma,
        rvef=round(rvef, 1),
        rvedvi=round(rvedvi, 1),
        lavi=round(lavi, 1),
        aortic_root_mm=round(aorta, 1),
        effusion_mm=round(effusion, 1),
        lge_pattern=lge_pattern,
        lge_territory=territory,
        lge_extent=round(extent, 2),
        incidentals=incidentals,
    )
