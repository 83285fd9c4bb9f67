"""Radiology impressions for synthetic CMR studies, written from their `StudyTruth` as a cardiac reader would.

The text feeds contrastive training (CMR-CLIP), the retrieval benchmark and later a rule-based labeller, so it
is varied (many frames and synonyms, British/American spelling, numbered list or prose, varying order and
number formats) and has a reader's imperfections (minor findings and negatives sometimes left out,
incidentals sometimes added, readers disagreeing on the word for an LVEF near 50%). `Impression.mentioned`
records what the text states, so a consumer can tell label (truth) from text.

Two disjoint phrase banks (`cmr.synth.phrasebook`): "train" for training text, "heldout" for evaluation text
and for the zero-shot prompts, which therefore never occur in training text.

Reader model, in one place so it is easy to audit:
  * A reader's "view" is the label of every finding, except LV systolic function near the 50% threshold: an
    LVEF of 50-55% is called "mildly reduced" by some readers, 48-50% "low-normal" by some (`_lv_grade`).
    These are the only cases where `mentioned` contradicts the label.
  * Major positives are always stated (LVEF < 45%, RVEF < 40%, any dilated ventricle, wall >= 15 mm or any
    hypertrophy in HCM/amyloid, LGE, LAVi > 55, aortic root > 42 mm, effusion >= 10 mm); minor positives and
    negatives are stated with the probabilities in `P_STATE`; a finding not stated is `mentioned[f] = None`.
  * "Normal study" / "otherwise normal" summaries state every finding they cover as absent, so they are only
    used when the reader has not silently dropped a positive finding.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Callable, Final, Mapping

import numpy as np

from cmr import labels as L
from cmr.synth.phrasebook import BANKS, DISEASE_PROMPTS, FINDING_PROMPTS, Phrasing, to_british
from cmr.synth.truth import StudyTruth

__all__ = ["Impression", "Phrasing", "write_impression", "finding_prompts", "disease_prompts"]


@dataclass(frozen=True)
class Impression:
    text: str  # numbered lines ("1. ...\n2. ...") or prose
    sentences: tuple[str, ...]  # the same sentences; " ".join(sentences) == text with newlines as spaces
    mentioned: dict[str, bool | None]  # per finding: True stated present, False absent, None not stated


# Probability that a reader states a finding that is not "major" (see module docstring).
P_STATE: Final[dict[str, float]] = {
    "lv_func_mild": 0.92,  # LVEF 45-50% (or called mildly reduced)
    "lv_func_normal": 0.85,
    "lv_size_normal": 0.45,
    "lv_size_small": 0.5,
    "rv_dys_mild": 0.8,  # RVEF 40-45%
    "rv_normal": 0.55,
    "biventricular": 0.4,  # both ventricles normal: one "biventricular" sentence instead of two
    "wall_mild": 0.85,  # 13-15 mm
    "wall_normal": 0.35,
    "lge_neg": 0.75,
    "la_mild": 0.6,  # LAVi 45-55
    "la_neg": 0.2,
    "ao_mild": 0.65,  # root 40-42 mm
    "ao_neg": 0.25,
    "peri_small": 0.7,
    "peri_neg": 0.4,
    "incidental": 0.6,
    "normal_summary": 0.75,  # all negative: say "Normal cardiac MRI." somewhere
    "otherwise_normal": 0.3,
    "neglist": 0.5,  # group two or more negatives into one "No A, B or C." sentence
    "numbered": 0.55,
    "dx_first": 0.45,
    "british": 0.5,
    "show_ef": 0.85,
    "show_volume": 0.35,
    "decimal": 0.06,  # a number written with one decimal although not needed
}

# Reader disagreement on the LVEF word near the threshold (the label is always truth.lvef < 50).
P_CALL_MILD_AT_50_53: Final[float] = 0.2
P_CALL_MILD_AT_53_55: Final[float] = 0.05
P_CALL_LOWNORMAL_AT_48_50: Final[float] = 0.25

_FUNC_POSITIVE: Final[frozenset[str]] = frozenset({"mild", "mildmod", "moderate", "modsev", "severe"})
_FIELD: Final = re.compile(r"\{([A-Za-z0-9_.]+)\}")


# ------------------------------------------------------------------------------------------------------------
# Numbers and grades


def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _grade(x: float, cuts: tuple[float, float, float]) -> str:
    """Severity of a value above a threshold: cuts = (threshold, moderate from, severe from)."""
    return "normal" if x <= cuts[0] else "mild" if x <= cuts[1] else "moderate" if x <= cuts[2] else "severe"


def _lv_grade(lvef: float, r: random.Random) -> str:
    """The reader's word for LV systolic function; near 50% readers disagree (the only label/text clash)."""
    u = r.random()
    if lvef >= 70:
        return "hyper" if u < 0.6 else "normal"
    if lvef >= 55:
        return "normal"
    if lvef >= 50:
        if u < (P_CALL_MILD_AT_50_53 if lvef < 53 else P_CALL_MILD_AT_53_55):
            return "mild"
        return "lownormal" if r.random() < 0.65 else "normal"
    if lvef >= 48 and u < P_CALL_LOWNORMAL_AT_48_50:
        return "lownormal"
    if lvef >= 42:
        return "mild"
    if lvef >= 38:
        return "mildmod" if u < 0.3 else ("mild" if lvef >= 40 else "moderate")
    if lvef >= 32:
        return "moderate"
    if lvef >= 28:
        return "modsev" if u < 0.35 else ("moderate" if lvef >= 30 else "severe")
    return "severe"


def _rv_grade(rvef: float) -> str:
    return "normal" if rvef >= 45 else "mild" if rvef >= 40 else "moderate" if rvef >= 30 else "severe"


# ------------------------------------------------------------------------------------------------------------
# The pen: expands a bank's templates with a per-statement context.


class _Pen:
    def __init__(self, bank: Mapping[str, tuple[str, ...]], r: random.Random) -> None:
        self.bank = bank
        self.r = r

    def pick(self, options: tuple[str, ...] | list[str]) -> str:
        return options[int(self.r.random() * len(options))]

    def expand(self, text: str, ctx: Mapping[str, str]) -> str:
        def resolve(m: re.Match[str]) -> str:
            name = m.group(1)
            return ctx[name] if name in ctx else self.pick(self.bank[name])

        for _ in range(10):
            if "{" not in text:
                return text
            text = _FIELD.sub(resolve, text)
        raise ValueError(f"template does not terminate: {text!r}")

    def say(self, key: str, **ctx: str) -> str:
        s = self.expand(self.pick(self.bank[key]), ctx)
        return s[0].upper() + s[1:]


@dataclass
class _Item:
    sentences: list[str]
    rank: float  # lower comes first


@dataclass
class _Draft:
    """One impression being written: the reader's view of the study, what was said, and in which order."""

    truth: StudyTruth
    pen: _Pen
    r: random.Random
    view: dict[str, bool] = field(default_factory=dict)
    mentioned: dict[str, bool | None] = field(default_factory=dict)
    items: list[_Item] = field(default_factory=list)

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def add(self, rank: float, *sentences: str, states: Mapping[str, bool] | None = None) -> None:
        self.items.append(_Item(list(sentences), rank + 1.5 * self.r.random()))
        for f, v in (states or {}).items():
            self.mentioned[f] = v

    def num(self, x: float, label: bool, is_pos: Callable[[float], bool]) -> str:
        """x as a reader writes it: whole number, or one decimal where rounding would cross the threshold."""
        n = _half_up(x)
        if is_pos(n) != label or self.chance(P_STATE["decimal"]):
            return f"{x:.1f}"
        return str(n)


# ------------------------------------------------------------------------------------------------------------
# Statements. Each adds items and records which findings it states. Ranks: 0-9 findings, 10+ negatives.


def _ef_ctx(d: _Draft, show: bool) -> dict[str, str]:
    t = d.truth
    if not show:
        return {"ef": "", "n": ""}
    n = d.num(t.lvef, t.lvef < L.LVEF_ABNORMAL_BELOW, lambda v: v < L.LVEF_ABNORMAL_BELOW)
    return {"ef": "{ef.paren}" if d.chance(0.7) else "{ef.tail}", "n": n}


def _vol_ctx(d: _Draft, x: float, thr: float, ventricle: str, show: bool) -> dict[str, str]:
    if not show:
        return {"edv": ""}
    return {"edv": "{edv.fmt}", "v": ventricle, "x": d.num(x, x > thr, lambda v: v > thr)}


def _wma_ctx(d: _Draft, func_positive: bool, walls: str) -> tuple[dict[str, str], bool]:
    """Regional / global wall motion clause for the LV function sentence; returns (ctx, said regional)."""
    t = d.truth
    if t.regional_wma in ("LAD", "RCA", "LCX") and d.chance(0.7):
        return {"wma": "{wma.join}", "wma_np": "{wma.regional}", "kin": _kinesis(d), "walls": walls,
                "t": t.regional_wma}, True
    if t.regional_wma == "global" and func_positive and d.chance(0.5):
        # "global systolic function ... with global hypokinesis" reads badly: plain wording here.
        return {"wma": "{wma.join}", "wma_np": "{wma.global}", "sysfn": "{sysfn.plain}"}, False
    return {"wma": ""}, False


def _kinesis(d: _Draft) -> str:
    t = d.truth
    if t.lge_pattern == "transmural":
        aneurysmal = t.regional_wma == "LAD" and t.lge_extent > 0.85 and d.chance(0.5)
        return "{kin.dys}" if aneurysmal else "{kin.aki}"
    if t.lge_extent >= 0.5 and d.chance(0.5):
        return "{kin.aki}"
    return "{kin.hypo}"


def _ventricles(d: _Draft, walls: str) -> None:
    t, pen, v = d.truth, d.pen, d.view
    lv_func = _lv_grade(t.lvef, d.r)
    v["lv_dysfunction"] = lv_func in _FUNC_POSITIVE
    lv_size = _grade(t.lvedvi, (L.LVEDVI_DILATED_ABOVE, 125, 150))
    if lv_size == "normal" and t.lvedvi < 60:
        lv_size = "small"
    rv_func = _rv_grade(t.rvef)
    rv_size = _grade(t.rvedvi, (L.RVEDVI_DILATED_ABOVE, 135, 160))

    say_lv_func = (
        (v["lv_dysfunction"] and (t.lvef < 45 or d.chance(P_STATE["lv_func_mild"])))
        or (not v["lv_dysfunction"] and d.chance(P_STATE["lv_func_normal"]))
    )
    p_size = P_STATE["lv_size_small"] if lv_size == "small" else P_STATE["lv_size_normal"]
    say_lv_size = v["lv_dilation"] or d.chance(p_size)
    rv_disease = t.phenotype in ("pressure_overload", "arvc")  # the RV is the point of the report: always said
    say_rv_func = (
        rv_disease
        or (v["rv_dysfunction"] and (t.rvef < 40 or d.chance(P_STATE["rv_dys_mild"])))
        or (not v["rv_dysfunction"] and d.chance(P_STATE["rv_normal"]))
    )
    say_rv_size = rv_disease or v["rv_dilation"] or d.chance(P_STATE["rv_normal"])

    # Both ventricles unremarkable: often one "biventricular" sentence.
    biv_normal = not (v["lv_dysfunction"] or v["lv_dilation"] or v["rv_dysfunction"] or v["rv_dilation"])
    if biv_normal and lv_size == "normal" and t.regional_wma == "none" and d.chance(P_STATE["biventricular"]):
        ef = _ef_ctx(d, d.chance(P_STATE["show_ef"]))
        bief = ""
        if ef["n"]:
            m = d.num(t.rvef, False, lambda x: x < L.RVEF_ABNORMAL_BELOW)
            bief = pen.expand("{biv.ef}", {"n": ef["n"], "m": m})
        d.add(1.0, pen.say("s.biv.normal", bief=bief),
              states={f: False for f in ("lv_dysfunction", "lv_dilation", "rv_dysfunction", "rv_dilation")})
        return

    # Left ventricle: size, function and wall motion, in one or two sentences.
    ef = _ef_ctx(d, say_lv_func and d.chance(P_STATE["show_ef"]))
    vol = _vol_ctx(d, t.lvedvi, L.LVEDVI_DILATED_ABOVE, "LV",
                   say_lv_size and d.chance(P_STATE["show_volume"] + (0.2 if v["lv_dilation"] else 0.0)))
    wma, said_regional = _wma_ctx(d, v["lv_dysfunction"], walls) if say_lv_func else ({"wma": ""}, False)
    if wma["wma"] and ef["ef"] == "{ef.tail}":
        ef["ef"] = "{ef.paren}"  # "..., EF 35%, with hypokinesis of ..." reads badly
    grades = {"size_pre": f"{{size_pre.{lv_size}}}", "size_pred": f"{{size_pred.{lv_size}}}",
              "fn_pre": f"{{fn_pre.{lv_func}}}", "fn_pred": f"{{fn_pred.{lv_func}}}"}
    ctx = {**grades, **ef, **vol, **wma}
    severity = {"severe": 3.0, "modsev": 2.7, "moderate": 2.5, "mildmod": 2.0, "mild": 1.0}.get(lv_func, 0.0)
    rank = 3.0 - severity - (1.0 if lv_size in ("moderate", "severe") else 0.0)
    lv_states: dict[str, bool] = {}
    if say_lv_func:
        lv_states["lv_dysfunction"] = v["lv_dysfunction"]
    if say_lv_size:
        lv_states["lv_dilation"] = v["lv_dilation"]
    if say_lv_func and say_lv_size:
        if lv_size == "normal" and not v["lv_dysfunction"] and not said_regional and d.chance(0.5):
            d.add(rank, pen.say("s.lv.both_normal", **ctx), states=lv_states)
        elif d.chance(0.65):
            terse = v["lv_dysfunction"] and lv_size != "normal" and d.chance(0.35)
            key = "s.lv.combo_abn" if terse else "s.lv.combo"
            d.add(rank, pen.say(key, **ctx), states=lv_states)
        else:
            d.add(rank, pen.say("s.lv.size", **ctx), pen.say("s.lv.func", **ctx), states=lv_states)
    elif say_lv_func:
        d.add(rank, pen.say("s.lv.func", **ctx), states=lv_states)
    elif say_lv_size:
        d.add(rank + 2.0, pen.say("s.lv.size", **ctx), states=lv_states)
    if t.regional_wma in ("LAD", "RCA", "LCX") and not said_regional:
        d.add(rank + 0.5, pen.say("s.wma.alone", kin=_kinesis(d), walls=walls, t=t.regional_wma))

    # Right ventricle.
    rv_states: dict[str, bool] = {}
    if say_rv_func:
        rv_states["rv_dysfunction"] = v["rv_dysfunction"]
    if say_rv_size:
        rv_states["rv_dilation"] = v["rv_dilation"]
    if not rv_states:
        return
    rvef = ""
    if say_rv_func and d.chance(0.5 if v["rv_dysfunction"] else 0.25):
        m = d.num(t.rvef, v["rv_dysfunction"], lambda x: x < L.RVEF_ABNORMAL_BELOW)
        rvef = pen.expand("{rvef.paren}", {"m": m})
    ctx = {"size_pre": f"{{size_pre.{rv_size}}}", "size_pred": f"{{size_pred.{rv_size}}}",
           "fn_pre": f"{{fn_pre.{rv_func}}}", "fn_pred": f"{{fn_pred.{rv_func}}}", "rvef": rvef,
           **_vol_ctx(d, t.rvedvi, L.RVEDVI_DILATED_ABOVE, "RV", say_rv_size and v["rv_dilation"]
                      and d.chance(P_STATE["show_volume"]))}
    abnormal = v["rv_dysfunction"] or v["rv_dilation"]
    rank = 4.0 if abnormal else 11.0
    if say_rv_func and say_rv_size:
        if not abnormal and d.chance(0.6):
            d.add(rank, pen.say("s.rv.both_normal", **ctx), states=rv_states)
        elif d.chance(0.6):
            d.add(rank, pen.say("s.rv.combo", **ctx), states=rv_states)
        else:
            d.add(rank, pen.say("s.rv.size", **ctx), pen.say("s.rv.func", **ctx), states=rv_states)
    elif say_rv_func:
        d.add(rank, pen.say("s.rv.func", **ctx), states=rv_states)
    else:
        d.add(rank, pen.say("s.rv.size", **ctx), states=rv_states)


def _wall(d: _Draft) -> None:
    t, pen = d.truth, d.pen
    mm = t.lv_max_wall_mm
    thr = L.WALL_THICKNESS_HYPERTROPHY_AT
    present = d.view["lv_hypertrophy"]
    fmt = lambda x: d.num(x, x >= thr, lambda v: v >= thr)  # noqa: E731 - local formatter
    if not present:
        if mm >= 12.0 and d.chance(0.5):
            d.add(11.0, pen.say("s.wall.upper_normal", mm=fmt(mm)), states={"lv_hypertrophy": False})
        elif d.chance(P_STATE["wall_normal"]):
            mwt = "{mwt.fmt}" if d.chance(0.2) else ""
            d.add(11.0, pen.say("s.wall.normal", mwt=mwt, mm=fmt(mm)), states={"lv_hypertrophy": False})
        return
    # Mild hypertrophy may be left out, except where it is the disease's key finding.
    if mm < 15.0 and t.disease not in ("hcm", "amyloidosis") and not d.chance(P_STATE["wall_mild"]):
        return
    sev = _grade(mm, (thr - 0.01, 15.0 - 0.01, 20.0 - 0.01))
    ctx = {"sev": f"{{sev.{sev}}}", "sevadv": f"{{sevadv.{sev}}}", "mm": fmt(mm),
           "mwt": "{mwt.fmt}" if d.chance(0.7) else ""}
    rank = 0.5 if t.disease == "hcm" else 3.0 - (1.0 if sev != "mild" else 0.0)
    pattern = t.hypertrophy_pattern
    if pattern == "asymmetric_septal":
        ratio = t.lv_septal_wall_mm / max(t.lv_lateral_wall_mm, 1.0)
        ctx |= {"sep": fmt(t.lv_septal_wall_mm), "ratio": f"{ratio:.1f}" + ("" if d.chance(0.7) else ":1")}
        key = "s.wall.asym"
    elif pattern in ("concentric", "apical"):
        key = f"s.wall.{pattern}"
    else:
        key = "s.wall.generic"
    d.add(rank, pen.say(key, **ctx), states={"lv_hypertrophy": True})


def _lge(d: _Draft, walls: str) -> list[str]:
    """LGE statement; a negative is returned as pending, to be stated with the other negatives."""
    t, pen = d.truth, d.pen
    p = t.lge_pattern
    if p == "none":
        return ["lge"] if d.chance(P_STATE["lge_neg"]) else []
    ext = "{ext.extensive}" if t.lge_extent > 0.6 else "{ext.focal}"
    if p in ("subendocardial", "transmural") and t.lge_territory in ("LAD", "RCA", "LCX"):
        x = t.lge_extent
        if p == "transmural":
            pct, viable = "gt75", False
        else:
            pct = "lt25" if x < 0.25 else "25to50" if x <= 0.5 else "51to75" if x <= 0.75 else "gt75"
            viable = x <= 0.5
        viab = ("{viab.yes}" if viable else "{viab.no}") if d.chance(0.7) else ""
        key = "s.lge.isch_trans" if p == "transmural" else "s.lge.isch_sub"
        sent = pen.say(key, walls=walls, t=t.lge_territory, pct=f"{{pct.{pct}}}", viab=viab)
    elif p == "transmural":
        sent = pen.say("s.lge.global_trans")
    elif p == "midwall":
        hcm_like = t.hypertrophy_pattern != "none"
        sent = pen.say("s.lge.midwall_hcm" if hcm_like else "s.lge.midwall_dcm", ext=ext)
    elif p == "subepicardial":
        sent = pen.say("s.lge.subepi", ext=ext)
    else:  # diffuse_subendocardial
        sent = pen.say("s.lge.diffuse")
    rank = 0.5 if t.disease in ("myocarditis", "amyloidosis") else 1.5
    d.add(rank, sent, states={"lge": True})
    return []


def _others(d: _Draft, pending: list[str]) -> None:
    """LA, aortic root and pericardium; negatives are appended to `pending` for `_negatives`."""
    t, pen, v = d.truth, d.pen, d.view

    la = _grade(t.lavi, (L.LAVI_ENLARGED_ABOVE, 55, 70))
    if v["la_enlargement"]:
        if la != "mild" or d.chance(P_STATE["la_mild"]):
            lavi = ("{lavi.fmt}" if d.chance(0.4) else "")
            x = d.num(t.lavi, True, lambda z: z > L.LAVI_ENLARGED_ABOVE)
            sent = pen.say("s.la.pos", sev=f"{{sev.{la}}}", sevadv=f"{{sevadv.{la}}}", lavi=lavi, x=x)
            d.add(5.0 if la == "mild" else 3.5, sent, states={"la_enlargement": True})
    elif d.chance(P_STATE["la_neg"]):
        pending.append("la_enlargement")

    ao = _grade(t.aortic_root_mm, (L.AORTIC_ROOT_DILATED_ABOVE, 45, 50))
    size = _ao_size(d)
    if v["aortic_dilation"]:
        if t.aortic_root_mm > 42.0 or d.chance(P_STATE["ao_mild"]):
            d.add(5.0 if ao == "mild" else 2.5,
                  pen.say("s.ao.pos", sev=f"{{sev.{ao}}}", sevadv=f"{{sevadv.{ao}}}", size=size),
                  states={"aortic_dilation": True})
            if t.aortic_root_mm > 45.0 and d.chance(0.3):
                d.add(30.0, pen.say("s.rec.aorta"))
    elif t.aortic_root_mm >= 38.0 and d.chance(0.5):
        d.add(12.0, pen.say("s.ao.upper_normal", size=size), states={"aortic_dilation": False})
    elif d.chance(P_STATE["ao_neg"]):
        if d.chance(0.5):
            d.add(12.0, pen.say("s.ao.neg", size=size), states={"aortic_dilation": False})
        else:
            pending.append("aortic_dilation")

    peri = "small" if t.effusion_mm < 10 else "moderate" if t.effusion_mm < 20 else "large"
    if v["pericardial_effusion"]:
        if peri != "small" or d.chance(P_STATE["peri_small"]):
            mm = d.num(t.effusion_mm, True, lambda z: z >= L.EFFUSION_PRESENT_AT)
            d.add(5.0 if peri == "small" else 2.0, pen.say("s.peri.pos", peri=f"{{peri.{peri}}}", mm=mm,
                                                           depth="{peri.depth}"),
                  states={"pericardial_effusion": True})
    elif d.chance(P_STATE["peri_neg"]):
        pending.append("pericardial_effusion")


def _ao_size(d: _Draft) -> str:
    x, thr = d.truth.aortic_root_mm, L.AORTIC_ROOT_DILATED_ABOVE
    label = x > thr
    cm = round(x / 10.0, 1)
    if (cm * 10.0 > thr) == label and d.chance(0.3):  # centimetres only where they tell the same story
        return d.pen.expand("{cm} cm", {"cm": f"{cm:.1f}"})
    return d.pen.expand("{mm} mm", {"mm": d.num(x, label, lambda z: z > thr)})


def _negatives(d: _Draft, pending: list[str], uk: bool) -> None:
    """State the pending negatives: grouped into one sentence, or one sentence each."""
    pen = d.pen
    if not d.view["lv_hypertrophy"] and "lv_hypertrophy" not in d.mentioned and d.chance(0.15):
        pending.append("lv_hypertrophy")
    d.r.shuffle(pending)
    if pending[1:] and d.chance(P_STATE["neglist"]):
        nouns = [pen.expand(f"{{neg.{f}}}", {}) for f in pending]
        oxford = "," if len(nouns) > 2 and not uk else ""  # American readers more often use the serial comma
        items = ", ".join(nouns[:-1]) + oxford + " or " + nouns[-1]
        d.add(10.0, pen.say("s.neglist", items=items), states={f: False for f in pending})
        return
    single = {"lge": "s.lge.neg", "la_enlargement": "s.la.neg", "pericardial_effusion": "s.peri.neg",
              "aortic_dilation": "s.ao.neg", "lv_hypertrophy": "s.wall.normal"}
    for f in pending:
        ctx = {"size": _ao_size(d)} if f == "aortic_dilation" else {"mwt": ""}
        d.add(10.0 + (0.0 if f == "lge" else 1.0), pen.say(single[f], **ctx), states={f: False})


def _diagnosis(d: _Draft) -> str | None:
    """The reader's conclusion, where one would give it (template key), or None."""
    t, v = d.truth, d.view
    ph = t.phenotype
    if ph == "ischemic":
        return "s.dx.ischemic" if v["lv_dysfunction"] else "s.dx.infarct"
    if ph == "dilated":
        if not v["lv_dilation"]:
            return "s.dx.hndc"
        return "s.dx.dcm_nolge" if t.lge_pattern == "none" and d.chance(0.4) else "s.dx.dcm"
    if t.disease == "hcm":
        return "s.dx.hcm"
    if ph == "amyloid":
        return "s.dx.amyloid"
    if ph == "pressure_overload":
        return "s.dx.ph"
    if ph == "arvc":
        return "s.dx.arvc"
    if ph == "myocarditis" and t.lge_pattern != "none":
        # Pericardial involvement only where the effusion was actually described.
        said_effusion = d.mentioned.get("pericardial_effusion") is True
        return "s.dx.myopericarditis" if said_effusion and d.chance(0.5) else "s.dx.myocarditis"
    if ph == "athlete" and (v["lv_dilation"] or v["rv_dilation"] or (t.lvedvi > 95 and d.chance(0.5))):
        return "s.dx.athlete"
    if ph == "hypertensive" and v["lv_hypertrophy"] and d.chance(0.6):
        return "s.dx.hypertensive"
    return None


def _a(phrase: str) -> str:
    """Indefinite article for an incidental finding ("a simple hepatic cyst", "bilateral ... effusions")."""
    first = phrase.split(" ", 1)[0]
    if first in ("bilateral", "mild", "multiple", "several") or first.endswith("s"):
        return phrase
    return ("an " if first[0] in "aeiou" else "a ") + phrase


# ------------------------------------------------------------------------------------------------------------


def write_impression(truth: StudyTruth, rng: np.random.Generator, phrasing: Phrasing = "train") -> Impression:
    """Write the impression of one study. Deterministic given the rng state; advances `rng` by one draw."""
    r = random.Random(int(rng.integers(0, 2**63 - 1)))
    pen = _Pen(BANKS[phrasing], r)
    labels = truth.labels
    d = _Draft(truth=truth, pen=pen, r=r, view={f: bool(labels[f]) for f in L.FINDINGS})
    uk = d.chance(P_STATE["british"])
    t = truth
    # One wall-segment wording per study, so wall motion and LGE describe the same segments.
    walls = pen.pick(pen.bank[f"walls.{t.regional_wma}"]) if t.regional_wma in ("LAD", "RCA", "LCX") else ""

    _ventricles(d, walls)
    _wall(d)
    pending = _lge(d, walls)
    _others(d, pending)
    _negatives(d, pending, uk)

    if t.phenotype in ("ischemic", "dilated") and d.chance(0.2):
        d.add(13.0, pen.say("s.thrombus_neg"))
    dx = _diagnosis(d)
    if dx is not None:
        variant = {"asymmetric_septal": "{variant.asymmetric_septal}", "apical": "{variant.apical}",
                   "concentric": "{variant.concentric}"}.get(t.hypertrophy_pattern, "")
        rank = -1.0 if d.chance(P_STATE["dx_first"]) else 25.0
        states = {"lge": False} if dx == "s.dx.dcm_nolge" else None  # it says there is no LGE
        d.add(rank, pen.say(dx, t=t.regional_wma if t.regional_wma != "global" else "", variant=variant),
              states=states)
        if t.disease == "amyloidosis" and d.chance(0.3):
            d.add(30.0, pen.say("s.rec.amyloid"))
        elif t.disease == "hcm" and d.chance(0.15):
            d.add(30.0, pen.say("s.rec.hcm"))
    if t.phenotype == "borderline" and d.chance(0.15):  # borderline function: readers hedge
        d.add(30.0, pen.say("s.rec.clinical"))

    # Summaries cover every finding not stated yet, so only when no positive finding was silently dropped.
    dropped_positive = any(d.view[f] and d.mentioned.get(f) is None for f in L.FINDINGS)
    if not dropped_positive:
        rest = [f for f in L.FINDINGS if d.mentioned.get(f) is None]
        all_negative = not any(d.view[f] for f in L.FINDINGS)
        if all_negative and dx is None and d.chance(P_STATE["normal_summary"]):
            d.add(-2.0 if d.chance(0.6) else 20.0, pen.say("s.normal"), states={f: False for f in rest})
        elif rest and not all_negative and d.chance(P_STATE["otherwise_normal"]):
            d.add(20.0, pen.say("s.otherwise_normal"), states={f: False for f in rest})

    for inc in t.incidentals:
        if d.chance(P_STATE["incidental"]):
            d.add(26.0, pen.say("s.incidental", inc=inc, a_inc=_a(inc)))

    if not d.items:  # a reader always writes something
        d.add(0.0, pen.say("s.normal"), states={f: False for f in L.FINDINGS})
    return _assemble(d, uk)


def _assemble(d: _Draft, uk: bool) -> Impression:
    items = sorted(d.items, key=lambda it: it.rank)
    fix = to_british if uk else (lambda s: s)
    groups = [[fix(s) for s in it.sentences] for it in items]
    if len(groups) > 1 and d.chance(P_STATE["numbered"]):
        style = "{}. " if d.chance(0.8) else "{}) "
        for i, g in enumerate(groups, 1):
            g[0] = style.format(i) + g[0]
        text = "\n".join(" ".join(g) for g in groups)
    else:
        text = " ".join(" ".join(g) for g in groups)
    mentioned: dict[str, bool | None] = {f: d.mentioned.get(f) for f in L.FINDINGS}
    return Impression(text=text, sentences=tuple(s for g in groups for s in g), mentioned=mentioned)


# ------------------------------------------------------------------------------------------------------------
# Prompt ensembles for zero-shot scoring.


def finding_prompts(finding: str, positive: bool, phrasing: Phrasing = "heldout") -> list[str]:
    """Prompts stating that `finding` (a name in cmr.labels.FINDINGS) is present (positive) or absent."""
    if finding not in L.FINDINGS:
        raise KeyError(f"unknown finding {finding!r}; expected one of {L.FINDINGS}")
    pos, neg = FINDING_PROMPTS[phrasing][finding]
    return list(pos if positive else neg)


def disease_prompts(disease: str, positive: bool, phrasing: Phrasing = "heldout") -> list[str]:
    """Prompts for a disease in cmr.labels.DISEASES; "normal" positive = normal study, negative = abnormal."""
    if disease not in L.DISEASES:
        raise KeyError(f"unknown disease {disease!r}; expected one of {L.DISEASES}")
    pos, neg = DISEASE_PROMPTS[phrasing][disease]
    return list(pos if positive else neg)
