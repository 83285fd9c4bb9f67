"""Grounding a report draft in the study's measurements: the draft states the MEASURED LVEF, volumes and mass,
never numbers it guessed (a retrieved impression quotes another patient; CMR-TARGET writes numbers it learnt
from similar reports).

    from cmr.generator.grounding import ground_draft
    for g in ground_draft(["Severely reduced LV systolic function (LVEF 23%)."], measurements):
        print(g.text, g.changes)   # "Moderately reduced LV systolic function (LVEF 35%)." (replaced, rewrote)

What it does to each sentence (pure functions, no model):
1. **Numbers.** Every numeric statement of a measured quantity (`find_statements`: LVEF / EF / ejection
   fraction with "%", RVEF, LV/RV end-diastolic / end-systolic / stroke volumes, indexed or not, LV mass and
   its index; "LVEF 35%", "EF of 35 %", "ejection fraction is estimated at 30-35%", "LVEDV 210 ml (indexed
   110 ml/m2)", "(indexed LV EDV 121 mL/m²)", ...) gets the measured value in the sentence's own style (its
   unit text and spacing kept; EF to an integer %, one decimal only where rounding would cross the
   `cmr.labels` threshold, as the report writer does; volumes and mass to integers). Where the measurement is
   unavailable the number is removed with the words that only introduce it ("with an ejection fraction of",
   an emptied parenthesis), the qualitative content stays; a sentence left with nothing but the number is
   dropped.
2. **Words that contradict the measurement.** LV / RV systolic function words are graded against the stated
   (measured) EF with the project's thresholds (`cmr.labels.LVEF_ABNORMAL_BELOW` 50 %, `RVEF_ABNORMAL_BELOW`
   45 %; mild >= 40, moderate >= 30, severe below, as the labeller grades a bare number). A contradicting
   severity phrase is rewritten where its scope is unambiguous ("normal LV systolic function" -> "severely
   reduced LV systolic function", "LV systolic function is normal" -> "... is severely reduced", "Normal LV
   size and systolic function" -> "Normal LV size and severely reduced systolic function"); where it is not
   (one word for both ventricles that measure differently, a phrase the rules do not cover) the sentence is
   kept and flagged: "(review: measured LVEF 25 %)". Size words are only flagged (indexed EDV against
   `LVEDVI_DILATED_ABOVE` / `RVEDVI_DILATED_ABOVE`). The rule-based labeller reads the result as a backstop:
   a function or size state it reads that the measurement contradicts is flagged too.
3. **A measurement sentence.** A draft with no LVEF statement gets one short sentence first when there is
   anything measured: "Automated quantification: LVEF 31 %, LVEDV 245 ml (118 ml/m²), LVESV 169 ml, LV mass
   150 g; RVEF 48 %." with "(review: <reasons>)" when the quality is "check". A draft that already states
   the LVEF and has quality "check" ends with "Automated measurements to be reviewed: <reasons>.".
4. **No measurements** (none given, or quality "failed"): every measured-quantity number is removed, and the
   draft ends with "No automated measurements (<reason>): LVEF, volumes and mass are not stated.".

Every sentence comes back with what was replaced / removed / added (`NumberChange`), which severity phrases
were rewritten and what was flagged, so the service and the evaluation can report it. Grounding is
idempotent: a grounded draft grounds to itself. Numbers of quantities the segmentation does not measure
(wall thickness, LA volume, aortic root, effusion depth, LGE transmurality) are left as written and listed
per sentence as `unverified`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from cmr import labels as L
from cmr.quant.volumes import Measurements

__all__ = [
    "GROUNDED_FIELDS", "GroundedSentence", "NumberChange", "Statement", "draft_report", "find_statements",
    "format_value", "ground_draft", "ground_sentence", "ground_text", "has_lvef_statement", "measurement_sentence",
    "missing_sentence", "review_sentence", "stated_values", "usable",
]

# The measured quantities a draft may state, in the order the measurement sentence lists them.
GROUNDED_FIELDS: Final[tuple[str, ...]] = (
    "lvef_pct", "lvedv_ml", "lvesv_ml", "lvsv_ml", "lv_mass_g", "rvef_pct", "rvedv_ml", "rvesv_ml",
    "lvedvi_ml_m2", "lvesvi_ml_m2", "lv_mass_index_g_m2", "rvedvi_ml_m2", "rvesvi_ml_m2",
)
_EF_FIELDS: Final = ("lvef_pct", "rvef_pct")
_NAMES: Final[dict[str, str]] = {
    "lvef_pct": "LVEF", "rvef_pct": "RVEF", "lvedv_ml": "LVEDV", "lvesv_ml": "LVESV", "lvsv_ml": "LVSV",
    "lv_mass_g": "LV mass", "rvedv_ml": "RVEDV", "rvesv_ml": "RVESV", "lvedvi_ml_m2": "LVEDVi",
    "lvesvi_ml_m2": "LVESVi", "lv_mass_index_g_m2": "LV mass index", "rvedvi_ml_m2": "RVEDVi",
    "rvesvi_ml_m2": "RVESVi",
}
_INDEXED: Final[dict[str, str]] = {"lvedv_ml": "lvedvi_ml_m2", "lvesv_ml": "lvesvi_ml_m2", "rvedv_ml": "rvedvi_ml_m2",
                                   "rvesv_ml": "rvesvi_ml_m2", "lv_mass_g": "lv_mass_index_g_m2"}

SUMMARY_PREFIX: Final = "Automated quantification:"
REVIEW_PREFIX: Final = "Automated measurements to be reviewed:"
MISSING_PREFIX: Final = "No automated measurements"
_NOTE_PREFIXES: Final = (SUMMARY_PREFIX, REVIEW_PREFIX, MISSING_PREFIX)

Action = Literal["replaced", "removed", "added"]
Kind = Literal["draft", "measurements", "note"]


# ------------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class NumberChange:
    """One measured quantity in one sentence: what the draft said and what the grounded draft says."""

    measure: str         # a CardiacMeasurements field name, e.g. "lvef_pct"
    action: Action       # replaced (also when the draft already had the measured value), removed, added
    before: str = ""     # the number as the draft wrote it ("30-35%"); "" for added
    after: str = ""      # the number the grounded draft states ("31%"); "" for removed
    reason: str = ""     # removed: why the measurement is unavailable

    def to_dict(self) -> dict[str, str]:
        return {"measure": self.measure, "action": self.action, "before": self.before, "after": self.after,
                "reason": self.reason}


@dataclass(frozen=True)
class GroundedSentence:
    text: str                       # the grounded sentence; "" when it was dropped (only a removed number)
    source: str | None              # the draft's sentence; None for a sentence grounding added
    kind: Kind = "draft"            # draft | measurements (the added measurement sentence) | note
    changes: tuple[NumberChange, ...] = ()
    rewrites: tuple[str, ...] = ()  # severity phrases rewritten: "normal -> severely reduced (LVEF 25 %)"
    review: tuple[str, ...] = ()    # contradictions left for the reader: "LV systolic function: measured LVEF 25 %"
    unverified: tuple[str, ...] = ()  # numbers of quantities that are not measured ("26 mm"), left as written
    input_index: int | None = None  # ground_draft: position of the draft sentence it grounds (None: added)

    @property
    def dropped(self) -> bool:
        return not self.text

    @property
    def grounded(self) -> bool:
        """Anything changed or flagged in this sentence."""
        return bool(self.changes or self.rewrites or self.review or self.kind != "draft" or self.dropped)

    def to_dict(self) -> dict[str, object]:
        return {"text": self.text, "source": self.source, "kind": self.kind,
                "changes": [c.to_dict() for c in self.changes], "rewrites": list(self.rewrites),
                "review": list(self.review), "unverified": list(self.unverified)}


def usable(m: Measurements | None) -> bool:
    """Measurements a draft may state: quality ok or check, and at least one plausible grounded value."""
    return m is not None and m.quality in ("ok", "check") and any(
        getattr(m, f) is not None and _plausible(f, float(getattr(m, f))) for f in GROUNDED_FIELDS)


def _plausible(f: str, v: float) -> bool:
    """Values a report can state at all (a segmentation gone wrong can give a negative EF): EF 0-100 %,
    volumes and mass above zero and below 10 litres / kilograms. Anything else is treated as not measured."""
    return math.isfinite(v) and (0.0 <= v <= 100.0 if f in _EF_FIELDS else 0.0 < v < 10000.0)


def _value(m: Measurements | None, f: str) -> float | None:
    if not usable(m):
        return None
    v = getattr(m, f)
    return None if v is None or not _plausible(f, float(v)) else float(v)


def _unavailable_reason(m: Measurements | None, f: str, default: str) -> str:
    if m is None:
        return default
    if m.quality == "failed":
        return "; ".join(m.quality_reasons) or default
    v = getattr(m, f, None)
    if v is not None and not _plausible(f, float(v)):
        return f"implausible measurement ({v:g})"
    return m.unavailable.get(f) or "not measured"


# ------------------------------------------------------------------------------------------------------------
# Numbers


def _half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def format_value(f: str, x: float) -> str:
    """A measured value as a report states it: EF as an integer (one decimal where the integer would fall on
    the other side of the threshold, e.g. 49.6 -> "49.6", not "50"), volumes and mass as integers."""
    n = _half_up(x)
    if f in _EF_FIELDS:
        cut = L.LVEF_ABNORMAL_BELOW if f == "lvef_pct" else L.RVEF_ABNORMAL_BELOW
        if x < cut <= n:  # 49.6 -> "49.6"; 49.97 -> "49.9" (never "50.0")
            return f"{math.floor(x * 10.0) / 10.0:.1f}"
    return str(n)


_NUM: Final = (r"(?P<num>(?:(?:[<>≤≥~≈]|&[lg]t;)\s*=?\s*)?(?P<a>\d{1,3}(?:\.\d+)?)"
               r"(?:\s*%?\s*(?:-|–|—|to)\s*(?P<b>\d{1,3}(?:\.\d+)?))?)")
_EF_CORE: Final = (r"(?<![\w/-])(?P<kw>(?:(?P<side>LV|RV|left[\s-]+ventric(?:ular|le)|right[\s-]+ventric(?:ular|le))"
                   r"\s+)?(?P<core>LVEF|RVEF|LV[\s-]?EF|RV[\s-]?EF|EF|ejection\s+fraction)(?![\w-]))")
_NOT_A_VOLUME: Final = r"(?![\d.]*\s*(?:ml|mm|cm|g|cc|kg|m2|m²|segments?)\b)(?![\d/])"
_EF_STRICT: Final = re.compile(
    _EF_CORE
    + r"(?P<conn>(?:\s*(?:\(|:|=|~|≈)|\s+(?:of|is|was|were|measured|measuring|calculated|estimated|visually|at|"
      r"approximately|approx\.?|about|around|roughly|by\s+(?:Simpson'?s|biplane|volumetry))\b)*)"
    + r"\s*" + _NUM + r"(?P<unit>\s*(?:%|per\s?cent))?" + _NOT_A_VOLUME,
    re.IGNORECASE)
# "LVEF is mildly reduced at 45%": a few words between, only with a "%" (no other EF keyword, no punctuation).
_EF_LOOSE: Final = re.compile(
    _EF_CORE + r"(?P<conn>(?:\s+(?!(?:LVEF|RVEF|EF|ejection|LV|RV)\b)[a-z'-]+){1,6})"
    + r"\s*" + _NUM + r"(?P<unit>\s*(?:%|per\s?cent))(?![\d/])",
    re.IGNORECASE)
_SIDE: Final = r"(?:LV|RV|left[\s-]+ventric(?:ular|le)|right[\s-]+ventric(?:ular|le))"
_UNIT: Final = (r"(?:ml\s*/\s*m(?:2|²|\^2)|ml\s*·?\s*m-2|ml/m2|g\s*/\s*m(?:2|²|\^2)|g\s*·?\s*m-2|ml|cc|g|grams?)"
                r"(?![\w²^/])")
_VOL: Final = re.compile(
    r"(?<![\w/-])(?P<kw>(?P<pre>indexed\s+)?(?:(?P<side>" + _SIDE + r")\s?)?(?P<mid>indexed\s+)?"
    r"(?P<q>EDV|ESV|SV|M(?=I\b|\s)|end[\s-]?diastolic\s+volume|end[\s-]?systolic\s+volume|stroke\s+volume|"
    r"(?:myocardial\s+)?mass)(?P<idx>\s?i(?:ndex(?:ed)?)?\b|\s+\(indexed\))?)"
    r"(?P<conn>(?:\s*(?::|=|~|≈|\()|\s+(?:of|is|was|measured|measuring|measures|calculated|estimated|at|"
    r"approximately|approx\.?|about|around|up\s+to)\b)*)"
    r"\s*" + _NUM + r"(?P<unit>\s*" + _UNIT + r")",
    re.IGNORECASE)
# "LVEDV 210 ml (indexed 110 ml/m2)", "LV mass 150 g, 75 g/m2": the indexed value of the same quantity.
_FOLLOW_ON: Final = re.compile(
    r"\s*(?P<open>\(|,)\s*(?:(?:indexed|index|i)(?:\s+to\s+BSA)?\s*:?\s*)?" + _NUM
    + r"(?P<unit>\s*(?:ml|g)\s*(?:/\s*m(?:2|²|\^2)|·?\s*m-2))(?![\w²^/])\s*(?P<close>\))?",
    re.IGNORECASE)
_SUBJECT: Final = re.compile(r"(?<![\w-])(?P<s>LV|RV|left[\s-]+ventric\w*|right[\s-]+ventric\w*|biventricular|"
                             r"both\s+ventricles)(?![\w-])", re.IGNORECASE)
_LEAD_IN: Final = re.compile(
    r"(?:(?<![\w-])(?:with|and)\s+)?(?:(?<![\w-])(?:an?|the)\s+)?"
    r"(?:(?<![\w-])(?:calculated|measured|estimated|visually\s+estimated|biplane|automated|global)\s+)?$",
    re.IGNORECASE)
# Numbers with units of quantities the segmentation does not measure: reported as unverified.
_OTHER_NUMBER: Final = re.compile(r"(?<![\w.])\d+(?:\.\d+)?\s*(?:mm|cm|ml\s*/\s*m(?:2|²|\^2)|ml/m2|ml|g)(?![\w²^/])",
                                  re.IGNORECASE)


_PER_M2: Final = re.compile(r"m\s*(?:2|²|\^2)|m-2", re.IGNORECASE)


@dataclass(frozen=True)
class Statement:
    """A numeric statement of a measured quantity found in a sentence."""

    measure: str            # field name
    value: float            # as written (a range: its middle)
    num_span: tuple[int, int]   # the number (with a range or a comparator), without its unit
    span: tuple[int, int]   # keyword .. unit: what goes when the number is removed
    number: str             # the number's text ("30-35")
    unit: str               # the unit's text as written ("%", " %", "mL/m2", "")

    @property
    def text(self) -> str:
        return self.number + self.unit


def _context_side(text: str, pos: int, *, both: bool = False) -> str:
    """The ventricle a bare "EF" / "end-diastolic volume" / function word is about: the last one named before
    it (LV by default); "biv" for "biventricular" / "both ventricles" when `both`, else LV."""
    side = "lv"
    for m in _SUBJECT.finditer(text, 0, pos):
        s = m.group("s").lower()
        side = "rv" if s.startswith(("rv", "right")) else "biv" if s.startswith(("bi", "both")) and both else "lv"
    return side


def _side_of(group: str | None) -> str | None:
    if not group:
        return None
    return "rv" if group.lower().startswith(("rv", "right")) else "lv"


def _masked(text: str) -> str:
    """The text with grounding's own review notes blanked, so their numbers are never read as statements."""
    out = list(text)
    for start, end in _review_spans(text):
        out[start:end] = " " * (end - start)
    return "".join(out)


def _review_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for m in re.finditer(r"\(review:", text):
        depth, i = 0, m.start()
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        spans.append((m.start(), min(i + 1, len(text))))
    return spans


def _without_review_notes(text: str) -> str:
    spans = _review_spans(text)
    if not spans:
        return text
    for start, end in reversed(spans):
        text = text[:start].rstrip() + text[end:]
    return text


def _number_value(m: re.Match[str]) -> float:
    a = float(m.group("a"))
    return (a + float(m.group("b"))) / 2.0 if m.group("b") else a


def find_statements(text: str) -> list[Statement]:
    """Numeric statements of measured quantities in a sentence, left to right (grounding's own notes excluded:
    they quote the quality reasons, e.g. "LVEDV 7 ml is outside 40-500 ml")."""
    if text.lstrip().startswith((REVIEW_PREFIX, MISSING_PREFIX)):
        return []
    masked = _masked(text)
    found: list[Statement] = []

    def overlaps(span: tuple[int, int]) -> bool:
        return any(span[0] < s.span[1] and span[1] > s.span[0] for s in found)

    for pattern in (_EF_STRICT, _EF_LOOSE):
        for m in pattern.finditer(masked):
            span = (m.start("kw"), m.end("unit") if m.group("unit") else m.end("num"))
            if overlaps(span):
                continue
            core = m.group("core").lower().replace(" ", "").replace("-", "")
            side = ("rv" if core.startswith("rv") else "lv" if core.startswith("lv")
                    else _side_of(m.group("side")) or _context_side(masked, m.start()))
            value = _number_value(m)
            if value > 100:
                continue
            found.append(Statement(f"{side}ef_pct", value, (m.start("num"), m.end("num")), span, m.group("num"),
                                   m.group("unit") or ""))
    for m in _VOL.finditer(masked):
        span = (m.start("kw"), m.end("unit"))
        if overlaps(span):
            continue
        q = m.group("q").lower()
        side = _side_of(m.group("side"))
        if q == "m" and (side is None or " " in m.group("kw").strip()):
            continue  # "M" only as the compact "LVM" / "LVMI"
        side = side or _context_side(masked, m.start())
        unit = m.group("unit").strip()
        per_m2 = _PER_M2.search(unit) is not None
        indexed = bool(m.group("pre") or m.group("mid") or m.group("idx")) or per_m2
        if "mass" in q or q == "m":
            if side != "lv" or not unit.lower().startswith("g"):
                continue
            base = "lv_mass_g"
        else:
            if unit.lower().startswith("g"):
                continue
            kind = "edv" if q in ("edv",) or "diastolic" in q else "esv" if q == "esv" or "systolic" in q else "sv"
            base = f"{side}{kind}_ml"
            if base == "rvsv_ml":
                continue  # not measured on its own
        measure = _INDEXED.get(base, base) if indexed else base
        if base == "lvsv_ml" and indexed:
            continue
        found.append(Statement(measure, _number_value(m), (m.start("num"), m.end("num")), span, m.group("num"),
                               m.group("unit")))
        if not indexed and base in _INDEXED:
            f = _FOLLOW_ON.match(masked, m.end("unit"))
            if f is not None and not overlaps((f.start("open"), f.end())):
                end = f.end("close") if f.group("close") else f.end("unit")
                start = f.start("open")
                if f.group("open") == "(" and not f.group("close"):
                    continue
                if f.group("unit").strip().lower().startswith("g") != (base == "lv_mass_g"):
                    continue
                found.append(Statement(_INDEXED[base], _number_value(f), (f.start("num"), f.end("num")),
                                       (start, end), f.group("num"), f.group("unit")))
    return sorted(found, key=lambda s: s.span[0])


def stated_values(text: str) -> dict[str, float]:
    """The first stated value of each measured quantity in a text (a draft), e.g. {"lvef_pct": 35.0}."""
    from cmr.reports import split_sentences

    out: dict[str, float] = {}
    for sentence in split_sentences(text):
        if sentence.startswith((REVIEW_PREFIX, MISSING_PREFIX)):
            continue  # grounding's notes quote the quality reasons, not statements of the draft
        for s in find_statements(sentence):
            out.setdefault(s.measure, s.value)
    return out


def has_lvef_statement(sentence: str) -> bool:
    return any(s.measure == "lvef_pct" for s in find_statements(sentence))


# ------------------------------------------------------------------------------------------------------------
# Editing


def _tidy(text: str) -> str:
    """Punctuation and spacing after numbers were taken out."""
    t = text
    for _ in range(3):
        t = re.sub(r"\(\s*(?:[,;:]|\band\b|\bwith\b)?\s*\)", "", t)          # emptied parenthesis
        t = re.sub(r"\(\s*(?:[,;:]|\band\b)\s*", "(", t)                     # "(, RVEF 62%)"
        t = re.sub(r"\s*(?:[,;:]|\band\b)\s*\)", ")", t)                     # "(LVEF 63%, )"
        t = re.sub(r"\s+(?:with|and|of)\s*(?=[,.;)]|$)", "", t)              # dangling "with" / "and"
        t = re.sub(r"([,;:])\s*(?=[,;.)])", "", t)                           # ", ," / ", ." / "; ."
        t = re.sub(r"\s+([,.;:)])", r"\1", t)
        t = re.sub(r"\(\s+", "(", t)
        t = re.sub(r"\s{2,}", " ", t)
    t = re.sub(r"^[\s,;:]+", "", t).strip()
    if t and t[0].islower():
        t = t[0].upper() + t[1:]
    return t


def _has_content(text: str) -> bool:
    """Anything left beyond punctuation and the words that introduce a number."""
    words = re.findall(r"[A-Za-z]+", text)
    filler = {"the", "a", "an", "is", "was", "of", "at", "with", "and", "lvef", "ef", "calculated", "measured",
              "estimated", "approximately"}
    return any(w.lower() not in filler for w in words)


def _removal_start(text: str, start: int) -> int:
    m = _LEAD_IN.search(text, 0, start)
    return m.start() if m is not None and m.end() == start else start


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, new in sorted(edits, key=lambda e: -e[0]):
        text = text[:start] + new + text[end:]
    return text


# ------------------------------------------------------------------------------------------------------------
# Severity of systolic function


_VERB: Final = r"(?:(?:globally\s+)?(?:reduced|impaired|depressed|diminished|decreased))"
# (pattern, grade) longest first; grades: hyper, normal, lownormal, mild, mildmod, moderate, modsev, severe, abnormal
_SEVERITY: Final[tuple[tuple[str, str], ...]] = (
    (r"(?:mildly|mild)\s+to\s+moderately\s+" + _VERB, "mildmod"),
    (r"(?:moderately|moderate)\s+to\s+severely\s+" + _VERB, "modsev"),
    (r"(?:mildly|slightly|minimally)\s+" + _VERB, "mild"),
    (r"moderately\s+" + _VERB, "moderate"),
    (r"(?:severely|markedly|significantly|very)\s+" + _VERB, "severe"),
    (r"(?:very\s+)?poor", "severe"),
    (r"low[\s-]normal|borderline(?:\s+normal|\s+low)?|at\s+the\s+lower\s+limit\s+of\s+normal|"
     r"at\s+the\s+lower\s+end\s+of\s+the\s+normal\s+range", "lownormal"),
    (r"hyperdynamic|vigorous|supranormal|hyperkinetic", "hyper"),
    (r"normal|preserved|good|intact|within\s+normal\s+limits|satisfactory", "normal"),
    (_VERB, "abnormal"),
)
_SEV_RE: Final = "|".join(f"(?P<g{i}>{p})" for i, (p, _) in enumerate(_SEVERITY))
_FN_NOUN: Final = (r"(?:global\s+)?(?:systolic\s+(?:function|performance)|contractile\s+function|contractility|"
                   r"function)")
_SUBJ: Final = r"(?:LV|RV|left\s+ventricular|right\s+ventricular|biventricular)"
_AFTER_SUBJ: Final = re.compile(r"\s+of\s+(?:the\s+)?(?P<s>LV|RV|left\s+ventricle|right\s+ventricle|both\s+ventricles)\b",
                                re.IGNORECASE)
# attributive: "severely reduced LV systolic function"; "normal LV size and systolic function"
_ATTRIBUTIVE: Final = re.compile(
    r"(?<![\w-])(?P<sev>" + _SEV_RE + r")\s+(?:(?P<subj>" + _SUBJ + r")\s+)?(?P<size>(?:size|dimensions)\s+and\s+)?"
    r"(?P<noun>" + _FN_NOUN + r")(?![\w-])", re.IGNORECASE)
# predicative: "LV systolic function is severely impaired", "systolic performance: within normal limits"
_PREDICATIVE: Final = re.compile(
    r"(?<![\w-])(?:(?P<subj>" + _SUBJ + r")\s+)?(?P<noun>" + _FN_NOUN + r")"
    r"(?:\s+(?:is|was|appears|remains|seems)|\s*:)?\s+(?P<sev>" + _SEV_RE + r")(?![\w-])", re.IGNORECASE)
# "severely dilated, severely impaired LV"
_ADJ_SUBJ: Final = re.compile(
    r"(?<![\w-])(?P<sev>(?:(?:mildly|slightly|moderately|severely|markedly)\s+(?:to\s+(?:moderately|severely)\s+)?)?"
    + _VERB + r")\s+(?P<subj>LV|RV|left\s+ventricle|right\s+ventricle)(?![\w-])", re.IGNORECASE)


# "moderate LV systolic dysfunction", "severe impairment"
_NOUN_DYS: Final = re.compile(
    r"(?<![\w-])(?P<sev>mild(?:\s+to\s+moderate)?|moderate(?:\s+to\s+severe)?|severe)\s+(?:(?P<subj>" + _SUBJ
    + r")\s+)?(?:systolic\s+)?(?:dysfunction|impairment)(?![\w-])", re.IGNORECASE)
_NOUN_GRADES: Final = {"mild": "mild", "mild to moderate": "mildmod", "moderate": "moderate",
                       "moderate to severe": "modsev", "severe": "severe"}


def _grade_of(phrase: str) -> str:
    key = " ".join(phrase.lower().split())
    if key in _NOUN_GRADES:
        return _NOUN_GRADES[key]
    for i, (p, g) in enumerate(_SEVERITY):
        if re.fullmatch(p, phrase.strip(), re.IGNORECASE):
            return g
    return "abnormal"


def _band(grade: str, side: str) -> tuple[float, float]:
    cut = L.LVEF_ABNORMAL_BELOW if side == "lv" else L.RVEF_ABNORMAL_BELOW
    return {
        "hyper": (65.0, 101.0), "normal": (cut, 101.0), "lownormal": (cut, cut + 10.0),
        "mild": (40.0, cut), "mildmod": (30.0, cut), "moderate": (30.0, 40.0), "modsev": (0.0, 40.0),
        "severe": (0.0, 30.0), "abnormal": (0.0, cut),
    }[grade]


def _measured_grade(value: float, side: str) -> str:
    cut = L.LVEF_ABNORMAL_BELOW if side == "lv" else L.RVEF_ABNORMAL_BELOW
    return "normal" if value >= cut else "mild" if value >= 40 else "moderate" if value >= 30 else "severe"


def _consistent(grade: str, value: float, side: str) -> bool:
    lo, hi = _band(grade, side)
    return lo <= value < hi


def _verb_of(phrase: str) -> str:
    m = re.search(r"reduced|impaired|depressed|diminished|decreased", phrase, re.IGNORECASE)
    return m.group(0).lower() if m else "reduced"


def _replacement(old: str, value: float, side: str) -> str:
    grade = _measured_grade(value, side)
    if grade == "normal":
        new = "normal"
    else:
        new = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}[grade] + " " + _verb_of(old)
    return new[0].upper() + new[1:] if old[:1].isupper() else new


def _phrase_side(text: str, m: re.Match[str], subj: str | None) -> str:
    if subj:
        s = subj.lower()
        return "biv" if s.startswith("bi") else "rv" if s.startswith(("rv", "right")) else "lv"
    after = _AFTER_SUBJ.match(text, m.end())
    if after:
        s = after.group("s").lower()
        return "biv" if s.startswith("both") else "rv" if s.startswith(("rv", "right")) else "lv"
    return _context_side(text, m.start(), both=True)


@dataclass
class _FunctionCheck:
    edits: list[tuple[int, int, str]] = field(default_factory=list)
    rewrites: list[str] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)  # sides whose words were checked (consistent or not)


def _check_function_words(text: str, ef: dict[str, str]) -> _FunctionCheck:
    """Severity phrases of LV/RV systolic function against the stated EFs (side -> formatted value)."""
    out = _FunctionCheck()
    taken: list[tuple[int, int]] = []
    masked = _masked(text)
    for pattern in (_ATTRIBUTIVE, _PREDICATIVE, _ADJ_SUBJ, _NOUN_DYS):
        for m in pattern.finditer(masked):
            if any(m.start() < e and m.end() > s for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            side = _phrase_side(masked, m, m.group("subj"))
            sev_phrase = m.group("sev")
            grade = _grade_of(sev_phrase)
            negated = re.search(r"(?:\bno|\bwithout|\bnot)\s+$", masked[max(0, m.start() - 12):m.start()],
                                re.IGNORECASE) is not None
            if negated:
                continue
            sides = ("lv", "rv") if side == "biv" else (side,)
            known = {s: float(ef[s]) for s in sides if s in ef}
            if not known:
                continue
            out.handled.update(known)
            bad = [s for s, v in known.items() if not _consistent(grade, v, s)]
            if not bad:
                continue
            name = {"lv": "LVEF", "rv": "RVEF"}
            stated = ", ".join(f"{name[s]} {ef[s]} %" for s in sides if s in ef)
            if side == "biv":
                grades = {_measured_grade(v, s) for s, v in known.items()}
                if len(known) < 2 or len(grades) > 1:
                    out.review.append(f"\"{m.group(0)}\" (one word for both ventricles): measured {stated}")
                    continue
            if pattern is _PREDICATIVE and re.search(r"(?:size|dimensions)\s+and\s+(?:" + _SUBJ + r"\s+)?$",
                                                    masked[:m.start("noun")], re.IGNORECASE):
                # "LV size and systolic function are normal": the word is also the size's
                out.review.append(f"\"{m.group(0)}\" (one word for size and function): measured {stated}")
                continue
            value, s0 = known[sides[0]], sides[0]
            new = _replacement(sev_phrase, value, s0)
            if pattern is _NOUN_DYS:
                new = new.split()[0].removesuffix("ly")  # "severely reduced" -> "severe"
            if pattern in (_ADJ_SUBJ, _NOUN_DYS) and new.lower() == "normal":
                out.review.append(f"\"{m.group(0)}\": measured {stated}")
                continue
            if pattern is _ATTRIBUTIVE and m.group("size"):
                # the word is also the size's: keep it for the size, grade the function on its own
                out.edits.append((m.start("noun"), m.start("noun"), new.lower() + " "))
                out.rewrites.append(f"{sev_phrase} {m.group('size')}{m.group('noun')} -> {sev_phrase} "
                                    f"{m.group('size')}{new.lower()} {m.group('noun')} (measured {stated})")
            else:
                start, end = m.start("sev"), m.end("sev")
                out.edits.append((start, end, new))
                out.rewrites.append(f"{sev_phrase} -> {new} (measured {stated})")
    return out


# ------------------------------------------------------------------------------------------------------------
# Sentences


def _review_note(items: Sequence[str]) -> str:
    return "(review: " + "; ".join(items) + ")"


def _append_note(text: str, note: str) -> str:
    if note in text:
        return text
    m = re.search(r"[.!?]\s*$", text)
    return (text[:m.start()] + " " + note + text[m.start():]) if m else text + " " + note


def _labeller_review(text: str, stated: dict[str, float], m: Measurements | None, checked: set[str]) -> list[str]:
    """What the rule-based labeller reads in the sentence that the measurements contradict."""
    from cmr.reports import label_sentence

    labels = label_sentence(text).stated()
    out: list[str] = []
    for side, finding, cut, name in (("lv", "lv_dysfunction", L.LVEF_ABNORMAL_BELOW, "LVEF"),
                                     ("rv", "rv_dysfunction", L.RVEF_ABNORMAL_BELOW, "RVEF")):
        f = f"{side}ef_pct"
        if f not in stated or finding not in labels:
            continue
        present = labels[finding].state == "present"
        measured = format_value(f, stated[f])
        if present != (stated[f] < cut):  # also after a rewrite: "normal function ..., with global hypokinesis"
            out.append(f"{finding.replace('_', ' ')} {'stated' if present else 'denied'}: measured {name} {measured} %")
        elif present and side not in checked and labels[finding].severity not in (None, _measured_grade(stated[f], side)):
            out.append(f"{finding.replace('_', ' ')} graded {labels[finding].severity}: measured {name} {measured} %")
    for finding, f, cut, name in (("lv_dilation", "lvedvi_ml_m2", L.LVEDVI_DILATED_ABOVE, "LVEDVi"),
                                  ("rv_dilation", "rvedvi_ml_m2", L.RVEDVI_DILATED_ABOVE, "RVEDVi")):
        v = _value(m, f)
        if v is None or finding not in labels:
            continue
        present = labels[finding].state == "present"
        if present != (v > cut):
            out.append(f"{finding.replace('_', ' ')} {'stated' if present else 'denied'}: measured {name} "
                       f"{format_value(f, v)} ml/m²")
    return out


def ground_sentence(sentence: str, measurements: Measurements | None, *,
                    missing_reason: str = "no measurements for this study", flag_in_text: bool = True
                    ) -> GroundedSentence:
    """One sentence with the measured numbers (see the module doc). `measurements` None or not `usable`:
    every measured-quantity number is removed."""
    original = sentence
    if sentence.startswith(_NOTE_PREFIXES):
        kind: Kind = "measurements" if sentence.startswith(SUMMARY_PREFIX) else "note"
        if kind == "note":
            return GroundedSentence(sentence, sentence, kind)
    else:
        kind = "draft"
        sentence = _without_review_notes(sentence)  # grounded before: the notes are made again from scratch
    statements = find_statements(sentence)
    edits: list[tuple[int, int, str]] = []
    removals: list[tuple[int, int]] = []
    changes: list[NumberChange] = []
    stated_ef: dict[str, str] = {}
    stated: dict[str, float] = {}
    for s in statements:
        v = _value(measurements, s.measure)
        if v is None:
            removals.append((_removal_start(sentence, s.span[0]), s.span[1]))
            changes.append(NumberChange(s.measure, "removed", before=s.text,
                                        reason=_unavailable_reason(measurements, s.measure, missing_reason)))
            continue
        new = format_value(s.measure, v)
        edits.append((s.num_span[0], s.num_span[1], new))
        changes.append(NumberChange(s.measure, "replaced", before=s.text, after=new + s.unit))
        stated[s.measure] = float(new)
        if s.measure in _EF_FIELDS:
            stated_ef.setdefault(s.measure[:2], new)
    text = _apply(sentence, edits + [(a, b, "") for a, b in removals])
    if removals:
        text = _tidy(text)
        if not _has_content(text):
            return GroundedSentence("", original, kind, tuple(changes))
    # Words against the measured EF, whether or not the sentence states the number.
    ef_values = dict(stated_ef)
    for f in _EF_FIELDS:
        v = _value(measurements, f)
        if v is not None:
            ef_values.setdefault(f[:2], format_value(f, v))
            stated.setdefault(f, float(format_value(f, v)))
    check = _check_function_words(text, ef_values)
    text = _apply(text, check.edits)
    review = list(check.review)
    review += [r for r in _labeller_review(text, stated, measurements, check.handled) if r not in review]
    if review and flag_in_text and kind == "draft":
        text = _append_note(text, _review_note(_note_items(review)))
    unverified = tuple(_unverified(text))
    return GroundedSentence(text, original, kind, tuple(changes), tuple(check.rewrites), tuple(review), unverified)


def _note_items(review: Sequence[str]) -> list[str]:
    """The in-text note: the measured values a reader needs to correct the words (the detail is in `review`)."""
    items: list[str] = []
    for r in review:
        m = re.search(r"measured (.+)$", r)
        for part in (m.group(1) if m else r).split(", "):
            if part not in items:
                items.append(part)
    return ["measured " + ", ".join(items)]


def _unverified(text: str) -> list[str]:
    taken = [s.span for s in find_statements(text)] + _review_spans(text)
    return [m.group(0) for m in _OTHER_NUMBER.finditer(text)
            if not any(m.start() < e and m.end() > s for s, e in taken)]


def _summary(m: Measurements) -> tuple[str, list[NumberChange]] | None:
    if not usable(m):
        return None
    added: list[NumberChange] = []

    def part(f: str, unit: str) -> str | None:
        v = _value(m, f)
        if v is None:
            return None
        text = f"{_NAMES[f]} {format_value(f, v)} {unit}"
        added.append(NumberChange(f, "added", after=f"{format_value(f, v)} {unit}"))
        idx = _INDEXED.get(f)
        iv = _value(m, idx) if idx else None
        if idx and iv is not None:
            iunit = f"{unit}/m²"
            text += f" ({format_value(idx, iv)} {iunit})"
            added.append(NumberChange(idx, "added", after=f"{format_value(idx, iv)} {iunit}"))
        return text

    lv = [p for p in (part("lvef_pct", "%"), part("lvedv_ml", "ml"), part("lvesv_ml", "ml"), part("lv_mass_g", "g"))
          if p]
    rv = [p for p in (part("rvef_pct", "%"), part("rvedv_ml", "ml")) if p]
    if not lv and not rv:
        return None
    body = ", ".join(lv) + ("; " if lv and rv else "") + ", ".join(rv)
    note = f" {_review_note(list(m.quality_reasons) or ['quality check'])}" if m.quality == "check" else ""
    return f"{SUMMARY_PREFIX} {body}{note}.", added


def measurement_sentence(m: Measurements) -> str | None:
    """"Automated quantification: LVEF 31 %, LVEDV 245 ml (118 ml/m²), LVESV 169 ml, LV mass 150 g; RVEF 48 %."
    (with "(review: <reasons>)" for quality "check"); None when nothing is measured."""
    out = _summary(m)
    return None if out is None else out[0]


def review_sentence(m: Measurements) -> str:
    return f"{REVIEW_PREFIX} {'; '.join(m.quality_reasons) or 'quality check'}."


def missing_sentence(m: Measurements | None, reason: str) -> str:
    why = "; ".join(m.quality_reasons) if m is not None and m.quality == "failed" and m.quality_reasons else reason
    return f"{MISSING_PREFIX} ({why}): LVEF, volumes and mass are not stated."


# ------------------------------------------------------------------------------------------------------------
# Drafts


def ground_draft(sentences: Iterable[str], measurements: Measurements | None, *,
                 missing_reason: str = "no measurements for this study", flag_in_text: bool = True,
                 add_measurement_sentence: bool = True) -> Iterator[GroundedSentence]:
    """The grounded draft, sentence by sentence, as lazily as the rules allow (a streamed draft stays
    streamed): with measurements to state and no LVEF statement seen yet, sentences are held back until one
    appears (then no measurement sentence is needed) or the draft ends (then the measurement sentence comes
    first). Dropped sentences are yielded too (`dropped`), so callers can report them."""
    ok = usable(measurements)
    summary = _summary(measurements) if ok and add_measurement_sentence else None  # type: ignore[arg-type]
    held: list[GroundedSentence] = []
    decided = summary is None  # nothing to add: stream straight through
    states_lvef = summary_seen = noted = False
    position = -1
    for sentence in sentences:
        sentence = " ".join(sentence.split())
        if not sentence:
            continue
        position += 1
        if sentence.startswith(SUMMARY_PREFIX):
            decided = summary_seen = True  # grounded before: the draft has its measurement sentence
        noted = noted or sentence.startswith((REVIEW_PREFIX, MISSING_PREFIX))
        g = replace(ground_sentence(sentence, measurements, missing_reason=missing_reason, flag_in_text=flag_in_text),
                    input_index=position)
        if g.kind == "draft" and any(c.measure == "lvef_pct" and c.action == "replaced" for c in g.changes):
            states_lvef = decided = True
        if decided:
            yield from held
            held = []
            yield g
        else:
            held.append(g)
    if not decided:
        assert summary is not None
        yield GroundedSentence(summary[0], None, "measurements", tuple(summary[1]))
        yield from held
    if noted:
        return
    if not ok:
        yield GroundedSentence(missing_sentence(measurements, missing_reason), None, "note")
    elif measurements is not None and measurements.quality == "check" and states_lvef and not summary_seen:
        yield GroundedSentence(review_sentence(measurements), None, "note")


@dataclass(frozen=True)
class GroundedDraft:
    sentences: tuple[GroundedSentence, ...]

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.sentences if not s.dropped]

    @property
    def text(self) -> str:
        return " ".join(self.texts)

    def changes(self) -> list[NumberChange]:
        return [c for s in self.sentences for c in s.changes]

    def counts(self) -> dict[str, int]:
        """replaced / removed / added numbers, rewritten phrases, sentences flagged for review, dropped."""
        out = {"replaced": 0, "removed": 0, "added": 0}
        for c in self.changes():
            out[c.action] += 1
        out["rewritten"] = sum(len(s.rewrites) for s in self.sentences)
        out["review"] = sum(1 for s in self.sentences if s.review)
        out["dropped"] = sum(1 for s in self.sentences if s.dropped)
        return out


def ground_text(sentences: Sequence[str] | str, measurements: Measurements | None, **kwargs: object) -> GroundedDraft:
    """`ground_draft` of a whole draft (a list of sentences, or a text that is split into sentences)."""
    if isinstance(sentences, str):
        from cmr.reports import split_sentences

        sentences = split_sentences(sentences)
    return GroundedDraft(tuple(ground_draft(sentences, measurements, **kwargs)))  # type: ignore[arg-type]


def draft_report(sentences: Sequence[str] | str, measurements: Measurements | None, **kwargs: object) -> str:
    """The grounded draft as one text."""
    return ground_text(sentences, measurements, **kwargs).text
