"""Vocabulary of the CMR report labeller: what each word or phrase of an impression means to the rules.

A `Lexeme` is one regex (written lower-case, American spelling, matched on whole words) with its role:
a subject (LV, aortic root, pericardium, ...), an attribute noun (size, systolic function, wall thickness),
a state (dilated, impaired, normal, hypertrophy, effusion, LGE, ...), a severity word, a negation or
uncertainty trigger, a clause break, a disease name or a normal-study summary. `cmr.reports.labeller` finds
them in a sentence and combines them.

Grade words (size, systolic function, severity, effusion size), LGE nouns, diagnosis frames and the summary
sentences are read from the synthetic report writer's phrase banks (`cmr.synth.phrasebook`), so a wording
added there is understood here; everything else is general clinical vocabulary, so text that the writer
never produces (hand-written or generated reports) is understood too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Iterable, Literal

from cmr.synth.phrasebook import BANKS

Kind = Literal[
    "subj",  # value: a subject name (see SUBJECT_FINDINGS)
    "attr",  # value: "size" | "function" | "wall" | "diastolic"
    "state",  # value: "size" | "function" | "wall" | "effusion" | "lge", or generic (below)
    "sev",  # value: "mild" | "moderate" | "severe"
    "neg_pre",  # negates the states after it, to the end of the clause ("no", "without")
    "neg_short",  # negates the next state only ("not")
    "neg_post",  # negates the states just before it ("... is not seen")
    "unc_pre",  # marks the states after it uncertain ("possible")
    "unc_post",  # marks the states just before it uncertain ("... cannot be excluded")
    "pseudo",  # looks like a trigger but is none ("no change"): consumed so that it triggers nothing
    "term",  # clause break: ends negation scope and separates statements about different things
    "frame",  # diagnosis frame ("in keeping with"): consumed so that its "with" is no clause break
    "neutral",  # consumed so that its words mean nothing ("LGE imaging", "non-ischemic pattern")
    "disease",  # value: a name in cmr.labels.DISEASES
    "summary",  # value: "normal" | "otherwise_normal"
]

# States are specific ("dilated": size) or generic ("normal", "decreased", "increased"), which take their
# meaning from the attribute noun they go with ("normal size", "decreased contractility").


@dataclass(frozen=True)
class Lexeme:
    kind: Kind
    value: str = ""
    abnormal: bool = True  # states: True says the finding is there, False that it is not
    severity: str | None = None  # a grade carried by the phrase itself ("moderately dilated")
    nominal: bool = False  # states: a noun ("dilatation", "effusion"), whose subject comes before it
    subject: str | None = None  # fixed subject ("LVH" is about the LV, "LVEF" about LV function)
    disease: str | None = None  # a state that also names a disease ("infarct scar")
    default: str = ""  # generic normal: "all" (every attribute of its subject) or "function"
    maybe_size: bool = False  # severity words that can also mean a small chamber ("small", "small-volume")


# Subjects and the findings a statement about them can be. Subjects that are no finding's subject (right
# atrium, valves, pleura, ...) are still recognised, so that "dilated pulmonary artery" or "pleural effusion"
# is not taken as a statement about a neighbouring chamber.
SUBJECT_FINDINGS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "lv": {"size": ("lv_dilation",), "function": ("lv_dysfunction",), "wall": ("lv_hypertrophy",),
           "lge": ("lge",)},
    "rv": {"size": ("rv_dilation",), "function": ("rv_dysfunction",), "lge": ("lge",)},
    "biv": {"size": ("lv_dilation", "rv_dilation"), "function": ("lv_dysfunction", "rv_dysfunction"),
            "wall": ("lv_hypertrophy",), "lge": ("lge",)},
    "myo": {"function": ("lv_dysfunction",), "wall": ("lv_hypertrophy",), "lge": ("lge",)},
    "la": {"size": ("la_enlargement",)},
    "biatrial": {"size": ("la_enlargement",)},
    "ao": {"size": ("aortic_dilation",)},
    "peri": {"effusion": ("pericardial_effusion",)},
    "ra": {},
    "valve": {},
    "pleura": {},
    "other": {},
}

# What a generic "normal" covers when no attribute noun says which ("The RV is normal.").
NORMAL_COVERS: Final[dict[str, tuple[str, ...]]] = {
    "lv": ("size", "function"), "rv": ("size", "function"), "biv": ("size", "function"),
    "la": ("size",), "biatrial": ("size",), "ao": ("size",), "peri": ("effusion",),
}

# Subject used when a sentence names none ("Preserved systolic function." is about the LV).
DEFAULT_SUBJECT: Final[dict[str, str]] = {"function": "lv", "wall": "lv", "effusion": "peri", "lge": "myo"}

# Words that may stand between an adjective and its noun, or inside a coordinated list, without breaking it.
FILLER_WORDS: Final[frozenset[str]] = frozenset({
    "and", "or", "the", "of", "its", "their", "both", "concentric", "concentrically", "asymmetric",
    "asymmetrically", "eccentric", "eccentrically", "global", "globally", "diffuse", "diffusely", "overall",
    "regional", "segmental", "systolic", "a", "an",
})
COPULAS: Final[frozenset[str]] = frozenset({
    "is", "are", "was", "were", "be", "appears", "appear", "remains", "remain", "seems", "seem", "looks",
    "look", "now",
})
# Prepositions that tie a noun state to the subject after it ("hypertrophy of the septum").
SUBJECT_PREPOSITIONS: Final[frozenset[str]] = frozenset({
    "of", "in", "within", "involving", "along", "at", "to", "affecting", "confined",
})

SEVERITY_RANK: Final[dict[str, int]] = {"mild": 1, "moderate": 2, "severe": 3}

# Grade keys of the phrase banks -> (abnormal, severity). "mild to moderate" counts as the higher grade.
_FUNCTION_GRADES: Final[dict[str, tuple[bool, str | None]]] = {
    "hyper": (False, None), "normal": (False, None), "lownormal": (False, None),
    "mild": (True, "mild"), "mildmod": (True, "moderate"), "moderate": (True, "moderate"),
    "modsev": (True, "severe"), "severe": (True, "severe"),
}
_SIZE_GRADES: Final[dict[str, tuple[bool, str | None]]] = {
    "small": (False, None), "normal": (False, None),
    "mild": (True, "mild"), "moderate": (True, "moderate"), "severe": (True, "severe"),
}
_EFFUSION_GRADES: Final[dict[str, str]] = {"small": "mild", "moderate": "moderate", "large": "severe"}


def phrase_regex(phrase: str) -> str:
    """A literal phrase as a regex: case and spacing free, a hyphen optional or a space."""
    words = re.split(r"\s+", phrase.strip().lower())
    parts = [re.escape(w).replace(r"\-", r"[-\s]?") for w in words]
    return r"\s+".join(parts)


def _bank_values(banks: Iterable[str], prefix: str) -> Iterable[tuple[str, str]]:
    """(key suffix, phrase) for every entry of the named banks whose key starts with `prefix`."""
    for bank in (BANKS[name] for name in banks):
        for key, options in bank.items():
            if key.startswith(prefix):
                for phrase in options:
                    if phrase and "{" not in phrase:
                        yield key[len(prefix):], phrase


def _sentence_phrase(text: str) -> str:
    return text.strip().rstrip(".").strip()


# ------------------------------------------------------------------------------------------------------------
# Hand-written vocabulary: general clinical language (regexes, lower-case, American spelling).


def _any(*alternatives: str) -> str:
    """One regex matching any of the alternatives (each a regex), so that lists read one item a line."""
    return "|".join(alternatives)


_EXAM = r"(?:cardiac\s+)?(?:mri|mr|cmr)(?:\s+(?:study|examination|exam|scan))?"
_STUDY = r"(?:study|examination|exam|scan)"

_SUBJECTS: Final[list[tuple[str, str]]] = [
    (_any(r"lv", r"left\s+ventricles?", r"left\s+ventricular", r"lv\s+myocardium"), "lv"),
    (_any(r"rv", r"right\s+ventricles?", r"right\s+ventricular"), "rv"),
    (_any(r"biventricular", r"bi-?\s?ventricular", r"both\s+ventricles", r"ventricles",
          r"left\s+and\s+right\s+ventric(?:les|ular)", r"right\s+and\s+left\s+ventric(?:les|ular)"), "biv"),
    (_any(r"la", r"left\s+atri(?:um|al|a)"), "la"),
    (_any(r"ra", r"right\s+atri(?:um|al)"), "ra"),
    (_any(r"biatrial", r"bi-?\s?atrial", r"both\s+atria", r"atria"), "biatrial"),
    (_any(r"aortic\s+root", r"aortic\s+sinus(?:es)?", r"sinus(?:es)?\s+of\s+valsalva",
          r"(?:ascending\s+|thoracic\s+|descending\s+)?aorta", r"ascending\s+aortic", r"aortic"), "ao"),
    (_any(r"pericardial(?:\s+(?:sac|space|cavity))?", r"pericardium"), "peri"),
    (_any(r"(?:interventricular\s+|basal\s+|mid\s+)?septum", r"septal", r"myocardium", r"myocardial", r"apex",
          r"apical(?:\s+segments)?", r"(?:antero|infero)septal", r"inferoseptum", r"anteroseptum"), "myo"),
    (_any(r"pleural?", r"pleurae"), "pleura"),
    (_any(r"(?:aortic|mitral|tricuspid|pulmonary|pulmonic)\s+valves?", r"valvular", r"valves?", r"mitral",
          r"tricuspid"), "valve"),
    # Neighbours that are no finding's subject: their states must not land on a chamber.
    (_any(r"pulmonary\s+(?:artery|arteries|trunk|veins?)", r"(?:inferior|superior)\s+vena\s+cava", r"ivc",
          r"svc", r"coronary\s+sinus", r"liver", r"hepatic", r"renal", r"kidneys?", r"lungs?", r"lobes?",
          r"hiatus", r"thyroid", r"spleen", r"splenic", r"pancrea\w*", r"breast", r"lymph\s+nodes?"),
     "other"),
]

_ATTRS: Final[list[tuple[str, str, str | None]]] = [
    (_any(r"sizes?", r"dimensions?", r"cavity(?:\s+size|\s+dimensions)?", r"volumes?",
          r"end[-\s]?diastolic\s+volumes?", r"edv", r"caliber", r"diameters?"), "size", None),
    (_any(r"(?:global\s+|overall\s+|systolic\s+|global\s+systolic\s+|pump\s+|contractile\s+|ventricular\s+)?"
          r"function", r"systolic\s+performance", r"performance", r"contractility", r"contraction",
          r"ejection\s+fraction", r"systolic\s+(?:wall\s+)?thickening"), "function", None),
    (_any(r"lvef", r"lv\s+ef"), "function", "lv"),
    (_any(r"rvef", r"rv\s+ef"), "function", "rv"),
    (_any(r"(?:myocardial\s+|maximal\s+|max\s+)?(?:wall\s+)?thickness(?:es)?", r"walls"), "wall", None),
    (_any(r"diastolic\s+(?:function|filling|dysfunction|parameters)", r"relaxation"), "diastolic", None),
]

_STATES: Final[list[tuple[str, Lexeme]]] = [
    # chamber size
    (_any(r"dilated", r"enlarged", r"ectatic", r"increased\s+in\s+size"), Lexeme("state", "size")),
    (_any(r"dilatations?", r"dilations?", r"enlargement", r"ectasia"), Lexeme("state", "size", nominal=True)),
    (_any(r"non[-\s]?dilated", r"undilated", r"non[-\s]?enlarged", r"normal[-\s]sized", r"normally[-\s]sized",
          r"normal\s+in\s+(?:size|caliber)", r"(?:of\s+)?normal\s+(?:size|dimensions|caliber)",
          r"small\s+in\s+size", r"of\s+small\s+volume"), Lexeme("state", "size", abnormal=False)),
    # wall thickness
    (_any(r"hypertrophied", r"hypertrophic", r"thickened"), Lexeme("state", "wall")),
    (_any(r"hypertrophy", r"(?:wall\s+)?thickening"), Lexeme("state", "wall", nominal=True)),
    (_any(r"lvh", r"ash"), Lexeme("state", "wall", nominal=True, subject="lv")),
    (r"non[-\s]?hypertrophied", Lexeme("state", "wall", abnormal=False)),
    # pericardium
    (_any(r"effusions?", r"fluid(?:\s+collection)?", r"collection"),
     Lexeme("state", "effusion", nominal=True)),
    # late gadolinium enhancement
    (_any(r"late\s+(?:gadolinium\s+)?enhancement",
          r"(?:late\s+|delayed\s+)?(?:myocardial\s+)?(?:gadolinium\s+)?enhancement", r"hyper-?\s?enhancement",
          r"lge", r"scar(?:ring)?", r"fibrosis"), Lexeme("state", "lge", nominal=True)),
    (_any(r"infarct\s+scar", r"infarction\s+scar"), Lexeme("state", "lge", nominal=True, disease="ischemic")),
    # systolic function
    (_any(r"dysfunction", r"impairment", r"hypofunction", r"reduction(?:\s+in)?"),
     Lexeme("state", "decreased", nominal=True)),
    (_any(r"reduced", r"impaired", r"depressed", r"diminished", r"decreased", r"poorly\s+functioning",
          r"hypocontractile", r"(?:globally|diffusely)\s+hypokinetic"), Lexeme("state", "decreased")),
    (r"poor", Lexeme("state", "decreased", severity="severe")),
    (r"(?:global|diffuse|generalized)\s+(?:global\s+)?(?:hypokinesis|hypokinesia|hypocontractility)",
     Lexeme("state", "decreased", nominal=True)),
    (_any(r"(?:well\s+)?preserved", r"intact", r"good", r"hyperdynamic", r"vigorous", r"supranormal",
          r"low[-\s]?normal", r"borderline[-\s]normal",
          r"(?:at\s+)?(?:the\s+)?lower\s+(?:limit|end)\s+of\s+(?:the\s+)?normal(?:\s+range)?"),
     Lexeme("state", "normal", abnormal=False, default="function")),
    # generic: their meaning comes from the attribute they go with
    (_any(r"normal", r"within\s+(?:the\s+)?normal\s+(?:limits|range)", r"unremarkable",
          r"(?:at\s+)?(?:the\s+)?upper\s+(?:limit|end)\s+of\s+(?:the\s+)?normal(?:\s+range)?",
          r"high[-\s]normal", r"upper[-\s]normal"), Lexeme("state", "normal", abnormal=False, default="all")),
    (_any(r"increased", r"increase\s+(?:in|of)", r"elevated", r"raised"), Lexeme("state", "increased")),
]

_SEVERITIES: Final[list[tuple[str, Lexeme]]] = [
    (_any(r"mild(?:ly)?", r"slight(?:ly)?", r"minimal(?:ly)?", r"minor", r"trivial", r"trace", r"tiny",
          r"borderline"), Lexeme("sev", "mild")),
    (_any(r"small(?:\s+amount\s+of)?", r"small[-\s]volume"), Lexeme("sev", "mild", maybe_size=True)),
    (_any(r"moderate(?:ly)?", r"moderate[-\s]sized?", r"moderate\s+amount\s+of"), Lexeme("sev", "moderate")),
    (_any(r"severe(?:ly)?", r"marked(?:ly)?", r"large(?:\s+amount\s+of)?", r"massive", r"gross(?:ly)?",
          r"significant(?:ly)?"), Lexeme("sev", "severe")),
    # "mild to moderate" counts as the higher grade
    (r"mild(?:ly)?\s*(?:to|-)\s*moderate(?:ly)?", Lexeme("sev", "moderate")),
    (r"moderate(?:ly)?\s*(?:to|-)\s*(?:severe(?:ly)?|marked(?:ly)?)", Lexeme("sev", "severe")),
]

_TRIGGERS: Final[list[tuple[str, Kind]]] = [
    (_any(r"no", r"without", r"no\s+evidence\s+(?:of|for)", r"no\s+signs?\s+of",
          r"no\s+features\s+(?:of|to\s+suggest)", r"absence\s+of", r"negative\s+for", r"free\s+of",
          r"rather\s+than", r"resolution\s+of", r"resolved", r"neither", r"nor", r"no\s+significant",
          r"no\s+(?:definite|obvious|convincing)"), "neg_pre"),
    (_any(r"not", r"never"), "neg_short"),
    (_any(r"(?:is\s+|are\s+|was\s+|were\s+)?not\s+(?:seen|identified|demonstrated|present|evident"
          r"|visuali[sz]ed|detected|appreciated|shown)", r"absent", r"(?:is\s+|are\s+|was\s+)?excluded",
          r"(?:is\s+|was\s+)?ruled\s+out", r"unlikely", r"(?:has\s+|have\s+)?resolved", r"none", r"nil"),
     "neg_post"),
    (_any(r"possible", r"possibly", r"probable", r"probably", r"questionable", r"equivocal", r"suspected",
          r"suspicious\s+(?:for|of)", r"cannot\s+exclude", r"can\s*not\s+exclude", r"can't\s+exclude",
          r"could\s+(?:represent|reflect|be)", r"may\s+(?:represent|reflect|be)", r"might\s+(?:represent|be)",
          r"query", r"question\s+of"), "unc_pre"),
    (r"\?", "unc_pre"),  # "?amyloid": a question mark before a word
    (_any(r"(?:cannot|can\s*not|can't)\s+be\s+(?:excluded|ruled\s+out)", r"not\s+(?:excluded|ruled\s+out)",
          r"is\s+(?:possible|suspected)"), "unc_post"),
    (_any(r"no\s+(?:significant\s+|interval\s+)?change",
          r"no\s+(?:significant\s+|interval\s+)?(?:increase|decrease|change)\s+in\s+(?:the\s+)?size",
          r"not\s+only", r"not\s+necessarily", r"unchanged", r"not\s+(?:significantly\s+)?changed",
          r"without\s+(?:significant\s+)?change", r"whether\s+or\s+not", r"not\s+been"), "pseudo"),
    (r";", "term"),
    (_any(r"with", r"accompanied\s+by", r"showing", r"demonstrating", r"but", r"however", r"although",
          r"though", r"whereas", r"while", r"apart\s+from", r"aside\s+from", r"except(?:\s+for)?",
          r"other\s+than", r"which"), "term"),
    (_any(r"in\s+keeping\s+with", r"consistent\s+with", r"compatible\s+with", r"suggestive\s+of",
          r"typical\s+of", r"characteristic\s+of", r"to\s+suggest", r"representing", r"concerning\s+for",
          r"indicative\s+of", r"diagnostic\s+of"), "frame"),
    (_any(r"(?:lge|post[-\s]?contrast|late\s+gadolinium(?:\s+enhancement)?)\s+(?:imaging|images|sequences?)",
          r"(?:gadolinium|contrast)\s+kinetics",
          r"non[-\s]?ischemic(?:\s+(?:pattern|distribution|etiology))?",
          r"non[-\s]?coronary", r"wall\s+motion\s+abnormalit(?:y|ies)", r"lvedvi?", r"rvedvi?", r"lavi",
          r"lv\s+thrombus", r"intracavitary\s+thrombus"), "neutral"),
]

_DISEASES: Final[list[tuple[str, str]]] = [
    (_any(r"ischemic(?:\s+(?:cardiomyopathy|heart\s+disease|etiology|pattern))?", r"ischemia",
          r"coronary\s+artery\s+disease", r"cad", r"icm", r"(?:myocardial\s+)?infarction", r"infarcts?",
          r"(?:prior|previous|old)\s+mi", r"stemi", r"nstemi"), "ischemic"),
    (_any(r"(?:non[-\s]?ischemic\s+|idiopathic\s+)?dilated\s+cardiomyopathy",
          r"non[-\s]?ischemic\s+cardiomyopathy",
          r"dcm", r"nicm", r"hypokinetic\s+non[-\s]?dilated\s+cardiomyopathy", r"hndc"), "nicm"),
    (_any(r"hypertrophic\s+(?:obstructive\s+)?cardiomyopathy", r"hcm", r"hocm", r"yamaguchi"), "hcm"),
    # The vocabulary's only infiltrative disease is amyloidosis.
    (_any(r"(?:cardiac\s+)?amyloid(?:osis)?(?:\s+infiltration)?", r"infiltrative\s+cardiomyopathy",
          r"attr(?:-cm)?", r"al\s+amyloid"), "amyloidosis"),
    (_any(r"(?:peri)?myocarditis", r"myopericarditis", r"myocardial\s+(?:and\s+pericardial\s+)?inflammation",
          r"inflammatory\s+cardiomyopathy"), "myocarditis"),
    (_any(r"pulmonary\s+(?:arterial\s+)?hypertension", r"pah",
          r"(?:right\s+ventricular|rv)\s+pressure\s+(?:over)?load(?:ing)?",
          r"elevated\s+pulmonary\s+(?:artery\s+|arterial\s+)?pressures?"), "pulmonary_hypertension"),
    (_any(r"arrhythmogenic\s+(?:right\s+ventricular\s+)?(?:cardiomyopathy|dysplasia)(?:\s+of\s+the\s+right\s+ventricle)?",
          r"right\s+ventricular\s+dysplasia", r"arvc", r"arvd"), "arvc"),
    # The benchmark's vocabulary has no "athlete" class: its athletes are "normal" (no cardiomyopathy).
    (_any(r"athlete'?s\s+heart", r"athletic\s+(?:heart|adaptation|remodeling)",
          r"physiological\s+(?:remodeling|adaptation)",
          r"exercise[-\s]induced\s+(?:cardiac\s+)?(?:adaptation|remodeling)"), "normal"),
]

_SUMMARIES: Final[list[tuple[str, str]]] = [
    (_any(rf"(?:structurally\s+and\s+functionally\s+|structurally\s+)?normal\s+(?:heart(?!\s+size)|{_EXAM}"
          rf"|{_STUDY})",
          rf"unremarkable\s+(?:{_EXAM}|{_STUDY})",
          r"no\s+abnormality\s+of\s+cardiac\s+structure\s+or\s+function(?:\s+(?:is\s+)?identified)?",
          rf"{_EXAM}\s+(?:is\s+)?within\s+normal\s+limits"), "normal"),
    # "Otherwise normal" only as a sentence of its own: "otherwise normal LV function" is no summary.
    (_any(rf"otherwise\s+(?:normal|unremarkable|within\s+normal\s+limits)(?:\s+{_EXAM}|\s+{_STUDY})?"
          r"(?=\s*(?:[.;,]|$))",
          rf"(?:the\s+)?{_STUDY}\s+is\s+otherwise\s+(?:normal|unremarkable)",
          rf"remainder\s+of\s+the\s+{_STUDY}\s+(?:is\s+)?(?:normal|unremarkable|within\s+normal\s+limits)",
          r"no\s+other\s+(?:significant\s+)?abnormalit(?:y|ies)"), "otherwise_normal"),
]


# ------------------------------------------------------------------------------------------------------------
# Vocabulary read from the phrase banks.


def _bank_lexemes(banks: Iterable[str]) -> list[tuple[str, Lexeme]]:
    banks = tuple(banks)

    def values(prefix: str) -> list[tuple[str, str]]:
        return list(_bank_values(banks, prefix))

    out: list[tuple[str, Lexeme]] = []
    for grade, phrase in values("fn_pre.") + values("fn_pred."):
        abnormal, severity = _FUNCTION_GRADES[grade]
        lex = (Lexeme("state", "decreased", severity=severity) if abnormal
               else Lexeme("state", "normal", abnormal=False, default="function"))
        out.append((phrase_regex(phrase), lex))
    for grade, phrase in values("size_pre.") + values("size_pred."):
        if phrase.startswith(("small", "not ")):
            # "small": a chamber size or an effusion's grade, decided by the labeller; "not dilated": "not"
            # + "dilated", so that "not dilated or hypertrophied" negates both.
            continue
        abnormal, severity = _SIZE_GRADES[grade]
        out.append((phrase_regex(phrase), Lexeme("state", "size", abnormal=abnormal, severity=severity)))
    for grade, phrase in values("sev"):  # sev.* and sevadv.*
        out.append((phrase_regex(phrase), Lexeme("sev", grade.split(".")[-1])))
    for grade, phrase in values("peri."):
        if grade in _EFFUSION_GRADES and not phrase.startswith("small"):
            out.append((phrase_regex(phrase), Lexeme("sev", _EFFUSION_GRADES[grade])))
    for key in ("lge", "neg.lge"):
        for _, phrase in values(key):
            out.append((phrase_regex(phrase), Lexeme("state", "lge", nominal=True)))
    for _, phrase in values("wma.global"):
        out.append((phrase_regex(phrase), Lexeme("state", "decreased", nominal=True)))
    for _, phrase in values("dxframe"):
        out.append((phrase_regex(phrase), Lexeme("frame")))
    for _, phrase in values("s.normal"):
        out.append((phrase_regex(_sentence_phrase(phrase)), Lexeme("summary", "normal")))
    for _, phrase in values("s.otherwise_normal"):
        out.append((phrase_regex(_sentence_phrase(phrase)), Lexeme("summary", "otherwise_normal")))
    return out


def _hand_lexemes() -> list[tuple[str, Lexeme]]:
    out: list[tuple[str, Lexeme]] = [(p, Lexeme("subj", s)) for p, s in _SUBJECTS]
    out += [(p, Lexeme("attr", a, subject=s)) for p, a, s in _ATTRS]
    out += _STATES + _SEVERITIES
    out += [(p, Lexeme(kind)) for p, kind in _TRIGGERS]
    out += [(p, Lexeme("disease", d)) for p, d in _DISEASES]
    out += [(p, Lexeme("summary", s)) for p, s in _SUMMARIES]
    return out


@dataclass(frozen=True)
class CompiledLexeme:
    pattern: re.Pattern[str]
    lexeme: Lexeme
    priority: int  # lower wins between equally long matches at one position


# Whole-word matching; a hyphen counts as part of a word, so "dilated" is not found inside "non-dilated".
_WORD_EDGE_BEFORE: Final = r"(?<![a-z0-9'-])"
_WORD_EDGE_AFTER: Final = r"(?![a-z0-9-])"


def compile_lexicon(banks: Iterable[str] = tuple(BANKS)) -> tuple[CompiledLexeme, ...]:
    """Every lexeme, hand-written first (they win ties), one compiled regex each. `banks`: the phrase banks
    to read grade words from (all by default; fewer to measure how far the general vocabulary carries)."""
    seen: set[str] = set()
    out: list[CompiledLexeme] = []
    for priority, (pattern, lexeme) in enumerate(_hand_lexemes() + _bank_lexemes(banks)):
        if pattern in seen:
            continue
        seen.add(pattern)
        edged = pattern if pattern in (";", r"\?") else f"{_WORD_EDGE_BEFORE}(?:{pattern}){_WORD_EDGE_AFTER}"
        out.append(CompiledLexeme(re.compile(edged), lexeme, priority))
    return tuple(out)


LEXICON: Final[tuple[CompiledLexeme, ...]] = compile_lexicon()
