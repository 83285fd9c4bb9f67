"""Rule-based labeller for CMR impressions: which findings of `cmr.labels.FINDINGS` a text states present or
absent (with severity and uncertainty), and which disease of `cmr.labels.DISEASES` it names.

    labels = label_report("Mildly dilated, severely impaired LV (LVEF 25%). No LGE.")
    labels.state("lv_dysfunction")     # "present"
    labels.findings["lv_dysfunction"]  # FindingLabel(state="present", severity="severe", uncertain=False)
    labels.state("lge")                # "absent"
    labels.state("rv_dilation")        # "not_mentioned"

How a sentence is read (NegEx-style, with a small subject/attribute grammar on top):
  1. Normalise: American spelling, lower case, unicode dashes; parenthesised measurements are set aside
     (only their ejection fractions are read), so "(LVEDVi 110 mL/m2)" cannot break a phrase.
  2. Tokenise with `cmr.reports.lexicon.LEXICON`, leftmost-longest: subjects (LV, aortic root, ...),
     attribute nouns (size, systolic function, wall thickness), states (dilated, impaired, normal,
     hypertrophy, effusion, LGE, ...), severity words, negation / uncertainty triggers, clause breaks
     (";", "with", "but", ...), disease names and normal-study summaries.
  3. Per clause, bind each state to the attribute nouns it governs ("normal LV size and systolic function")
     and to its subject: the noun after an adjective ("dilated LV"), the noun before a noun state or a
     predicate ("LV dilatation", "the LV is dilated"), "hypertrophy of the septum", else the clause's or
     the previous clause's subject ("Non-dilated RV with preserved systolic function"), else a default
     (function and wall thickness: LV; effusion: pericardium). A state tied to a subject that is no
     finding's ("pleural effusion", "dilated right atrium") is dropped.
  4. Negation: "no", "without", "absence of", ... negate every finding to the end of the clause (so "No LGE,
     pericardial effusion or LA dilatation" negates all three); "not" the next state; "... not seen",
     "... unlikely" the states just before. Pseudo-negations ("no change", "not only") are consumed.
     Uncertainty ("possible", "cannot be excluded") keeps a finding present with `uncertain=True`.
  5. Ejection fractions: a worded LV/RV function statement wins (it is the reader's call, "low-normal (LVEF
     49%)"); a bare "LVEF 35%" decides by `cmr.labels` thresholds, and grades a stated impairment that has
     no severity word (LV: mild >= 40%, moderate >= 30%, severe below; RV: the report writer's 40/30 cuts).
  6. Disease: the first one named and not negated (a certain one before a hedged one, a disease before
     "normal"); "normal" comes from a normal-study summary ("Normal cardiac MRI.") or an athlete's heart.
A report is the union of its sentences: a finding stated present anywhere is present; "Normal study." or
"Otherwise normal." makes every finding not stated elsewhere absent.

Label what the text states, not what it implies: "dilated cardiomyopathy" names the disease (nicm) but
states no LV dilation; "LVEF 52%, mildly reduced" is a present LV dysfunction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Final, Iterable, Literal, Mapping, Sequence

from cmr import labels as L
from cmr.reports.lexicon import (
    COPULAS,
    DEFAULT_SUBJECT,
    FILLER_WORDS,
    LEXICON,
    NORMAL_COVERS,
    SEVERITY_RANK,
    SUBJECT_FINDINGS,
    SUBJECT_PREPOSITIONS,
    Lexeme,
)
from cmr.synth.phrasebook import to_american

__all__ = [
    "FindingLabel",
    "FindingState",
    "ReportLabels",
    "SentenceLabels",
    "Severity",
    "label_report",
    "label_reports",
    "label_sentence",
    "split_sentences",
]

FindingState = Literal["present", "absent", "not_mentioned"]
Severity = Literal["mild", "moderate", "severe"]
Summary = Literal["normal", "otherwise_normal"]


@dataclass(frozen=True)
class FindingLabel:
    state: FindingState = "not_mentioned"
    severity: Severity | None = None  # only for present findings whose grade the text states
    uncertain: bool = False  # present, but hedged ("possible", "cannot be excluded")

    @property
    def present(self) -> bool:
        return self.state == "present"


NOT_MENTIONED: Final = FindingLabel()


def _all_findings(stated: Mapping[str, FindingLabel]) -> Mapping[str, FindingLabel]:
    return MappingProxyType({f: stated.get(f, NOT_MENTIONED) for f in L.FINDINGS})


@dataclass(frozen=True)
class SentenceLabels:
    text: str
    findings: Mapping[str, FindingLabel]  # every finding of cmr.labels.FINDINGS
    disease: str | None = None  # a disease the sentence names (not negated), else None
    disease_uncertain: bool = False
    summary: Summary | None = None  # "Normal study." / "Otherwise normal."

    def stated(self) -> dict[str, FindingLabel]:
        """The findings this sentence states, present or absent."""
        return {f: lab for f, lab in self.findings.items() if lab.state != "not_mentioned"}


@dataclass(frozen=True)
class ReportLabels:
    findings: Mapping[str, FindingLabel]  # every finding of cmr.labels.FINDINGS
    disease: str | None  # one of cmr.labels.DISEASES, or None when the text names none
    disease_uncertain: bool
    sentences: tuple[SentenceLabels, ...]

    def state(self, finding: str) -> FindingState:
        return self.findings[finding].state

    def present(self, finding: str) -> bool:
        return self.findings[finding].present

    def severity(self, finding: str) -> Severity | None:
        return self.findings[finding].severity

    def as_label_dict(self) -> dict[str, bool | str | None]:
        """Shaped like reports.jsonl `labels`: finding -> present (unmentioned counts as absent), disease."""
        out: dict[str, bool | str | None] = {f: self.present(f) for f in L.FINDINGS}
        out["disease"] = self.disease
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (for logs and the generator service)."""

        def finding_dict(lab: FindingLabel) -> dict[str, object]:
            return {"state": lab.state, "severity": lab.severity, "uncertain": lab.uncertain}

        return {
            "findings": {f: finding_dict(lab) for f, lab in self.findings.items()},
            "disease": self.disease,
            "disease_uncertain": self.disease_uncertain,
            "sentences": [
                {"text": s.text, "findings": {f: finding_dict(lab) for f, lab in s.stated().items()},
                 "disease": s.disease, "disease_uncertain": s.disease_uncertain, "summary": s.summary}
                for s in self.sentences
            ],
        }


# ------------------------------------------------------------------------------------------------------------
# Normalising and splitting text

# British spellings beyond the phrase banks' word table (prefixes, so every inflection is covered).
_BRITISH_STEMS: Final[tuple[tuple[re.Pattern[str], str], ...]] = tuple(
    (re.compile(uk), us) for uk, us in (
        (r"ischaem", "ischem"), (r"\bhaem", "hem"), (r"oedema", "edema"), (r"aetiolog", "etiolog"),
        (r"calibre", "caliber"), (r"oesophag", "esophag"), (r"anaem", "anem"), (r"remodell", "remodel"),
        (r"visualis", "visualiz"), (r"characteris", "characteriz"), (r"locali[s]", "localiz"),
    )
)
_UNICODE: Final[dict[str, str]] = {
    "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-", "\u2212": "-", "\u00b2": "2", "\u2019": "'",
    "\u2018": "'", "\u00a0": " ", "\u2248": "~", "\u2264": "<=", "\u2265": ">=",
}
_SPACES: Final = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower-case American-spelling text with plain punctuation; same length is not kept."""
    for src, dst in _UNICODE.items():
        text = text.replace(src, dst)
    text = to_american(text).lower()
    for pattern, us in _BRITISH_STEMS:
        text = pattern.sub(us, text)
    return _SPACES.sub(" ", text).strip()


_LIST_MARK: Final = re.compile(r"^\s*(?:\(?\d{1,2}[.)]|[-*\u2022])\s+")
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+(?=[A-Za-z(]|\d{1,2}[.)]\s)")
_ABBREVIATION_END: Final = re.compile(r"(?:\b(?:e\.g|i\.e|approx|vs|cf|incl|dr|fig|ca)\.)$", re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Sentences of an impression; list numbering ("1. ", "2) ", "- ") is removed."""
    out: list[str] = []
    for line in text.splitlines():
        start = 0
        pieces: list[str] = []
        for m in _SENTENCE_END.finditer(line):
            if _ABBREVIATION_END.search(line[start:m.start()]):
                continue
            pieces.append(line[start:m.start()])
            start = m.end()
        pieces.append(line[start:])
        for piece in pieces:
            sentence = _LIST_MARK.sub("", piece).strip()
            if re.search(r"[A-Za-z]", sentence):
                out.append(sentence)
    return out


# ------------------------------------------------------------------------------------------------------------
# Tokens


@dataclass(frozen=True)
class _Token:
    lex: Lexeme
    start: int
    end: int

    @property
    def kind(self) -> str:
        return self.lex.kind


@dataclass(frozen=True)
class _EjectionFraction:
    ventricle: str  # "lv" | "rv"
    percent: float


# Parenthesised text with a number in it: a measurement aside, read only for ejection fractions.
_ASIDE: Final = re.compile(r"\([^()]*\d[^()]*\)")
_EF: Final = re.compile(
    r"(?<![a-z0-9-])(?P<side>(?:lv|left ventricular|rv|right ventricular)\s+)?"
    r"(?P<kw>lvef|rvef|lv ef|rv ef|ef|ejection fraction)"
    r"(?:\s*(?:of|is|was|=|:|~|estimated|measured|calculated|at|approximately|approx\.?|about|around|\())*"
    r"\s*(?P<a>\d{1,2}(?:\.\d+)?)(?:\s*(?:-|to)\s*(?P<b>\d{1,2}(?:\.\d+)?))?\s*%?"
)
_EF_TOKEN: Final = Lexeme("neutral", "ef")
_SIZE_SMALL: Final = Lexeme("state", "size", abnormal=False)
_WORD: Final = re.compile(r"[a-z0-9]+")


def _mask_asides(text: str) -> str:
    return _ASIDE.sub(lambda m: " " * (m.end() - m.start()), text)


def _ejection_fractions(text: str) -> tuple[list[_EjectionFraction], list[tuple[int, int]]]:
    values: list[_EjectionFraction] = []
    spans: list[tuple[int, int]] = []
    for m in _EF.finditer(text):
        side = (m.group("side") or "") + m.group("kw")
        ventricle = "rv" if side.startswith(("rv", "right")) else "lv"
        a = float(m.group("a"))
        b = float(m.group("b")) if m.group("b") else a
        values.append(_EjectionFraction(ventricle, (a + b) / 2.0))
        spans.append((m.start(), m.end()))
    return values, spans


def _tokenise(text: str) -> tuple[list[_Token], list[_EjectionFraction]]:
    """Leftmost-longest tokens of `text` (normalised); ties go to the earlier lexeme."""
    efs, ef_spans = _ejection_fractions(text)
    masked = _mask_asides(text)
    found: list[tuple[int, int, int, Lexeme]] = []
    for entry in LEXICON:
        for m in entry.pattern.finditer(masked):
            if m.end() > m.start():
                found.append((m.start(), -(m.end() - m.start()), entry.priority, entry.lexeme))
    found.extend((s, -(e - s), -1, _EF_TOKEN) for s, e in ef_spans)
    found.sort(key=lambda t: (t[0], t[1], t[2]))
    tokens: list[_Token] = []
    taken: list[tuple[int, int]] = []
    for start, neg_len, _, lex in found:
        end = start - neg_len
        if any(start < t_end and end > t_start for t_start, t_end in taken):
            continue
        taken.append((start, end))
        tokens.append(_Token(lex, start, end))
    tokens.sort(key=lambda t: t.start)
    return tokens, efs


# ------------------------------------------------------------------------------------------------------------
# One clause: binding states to attributes and subjects


@dataclass(frozen=True)
class _Assertion:
    finding: str
    present: bool
    severity: str | None = None
    uncertain: bool = False


@dataclass
class _Clause:
    text: str  # the sentence text with asides masked (positions are shared with the tokens)
    tokens: list[_Token]
    inherited: tuple[str, ...] = ()  # subjects of the clauses before, for "..., with preserved function"
    claimed_attrs: set[int] = field(default_factory=set)

    def words_between(self, a: int, b: int) -> list[str]:
        return _WORD.findall(self.text[a:b])

    def gap_words(self, i: int, j: int) -> list[str]:
        """Words between tokens i < j that belong to no token."""
        return self.words_between(self.tokens[i].end, self.tokens[j].start)

    def last_subject_group(self) -> tuple[str, ...]:
        groups = self.subject_groups
        return groups[-1][2] if groups else self.inherited

    @cached_property
    def subject_groups(self) -> list[tuple[int, int, tuple[str, ...]]]:
        """Coordinated subjects ("LV and RV", "pleural or pericardial") as (first, last index, subjects)."""
        groups: list[tuple[int, int, tuple[str, ...]]] = []
        for i, tok in enumerate(self.tokens):
            if tok.kind != "subj":
                continue
            if groups and groups[-1][1] == i - 1 and set(self.gap_words(i - 1, i)) <= {"and", "or", "the"}:
                first, _, subjects = groups[-1]
                groups[-1] = (first, i, subjects + (tok.lex.value,))
            else:
                groups.append((i, i, (tok.lex.value,)))
        return groups

    def group_at(self, i: int) -> tuple[str, ...]:
        for first, last, subjects in self.subject_groups:
            if first <= i <= last:
                return subjects
        return ()


def _content_words(words: Iterable[str]) -> list[str]:
    return [w for w in words if w not in FILLER_WORDS]


def _is_predicative(c: _Clause, i: int) -> bool:
    """A state after a copula: "the LV is (mildly) dilated"."""
    j = i
    while j > 0 and c.tokens[j - 1].kind in ("sev", "neg_short"):
        j -= 1
    before_start = c.tokens[j - 1].end if j > 0 else 0
    words = c.words_between(before_start, c.tokens[j].start)
    return bool(words) and words[-1] in COPULAS


def _subject_after_adjective(c: _Clause, i: int) -> tuple[str, ...] | None:
    """ "dilated LV", "mildly dilated, severely impaired LV", "dilated LV and RV"."""
    for k in range(i + 1, len(c.tokens)):
        if _content_words(c.gap_words(k - 1, k)):
            return None
        kind = c.tokens[k].kind
        if kind == "subj":
            return c.group_at(k)
        if kind not in ("sev", "state", "attr"):
            return None
    return None


def _subject_before(c: _Clause, i: int) -> tuple[str, ...] | None:
    """ "LV dilatation", "the aortic root is mildly dilated", "LV cavity is small"."""
    loose_words = 0
    for k in range(i - 1, -1, -1):
        loose_words += len([w for w in _content_words(c.gap_words(k, k + 1)) if w not in COPULAS])
        if loose_words > 1:
            return None
        kind = c.tokens[k].kind
        if kind == "subj":
            return c.group_at(k)
        if kind not in ("sev", "attr", "neg_short"):
            return None
    return None


def _subject_after_preposition(c: _Clause, i: int) -> tuple[str, ...] | None:
    """ "hypertrophy of the interventricular septum", "fluid in the pericardial sac"."""
    k = i + 1
    if k >= len(c.tokens) or c.tokens[k].kind != "subj":
        return None
    words = c.gap_words(i, k)
    if words and words[0] in SUBJECT_PREPOSITIONS and len(words) <= 4:
        return c.group_at(k)
    return None


def _nearest_subject_before(c: _Clause, i: int) -> tuple[str, ...] | None:
    for k in range(i - 1, -1, -1):
        if c.tokens[k].kind == "subj":
            return c.group_at(k)
    return None


def _findings_for(category: str, subjects: Iterable[str]) -> tuple[str, ...]:
    out: list[str] = []
    for s in subjects:
        for f in SUBJECT_FINDINGS.get(s, {}).get(category, ()):
            if f not in out:
                out.append(f)
    return tuple(out)


def _resolve_findings(c: _Clause, i: int, category: str, adjective: bool) -> tuple[str, ...]:
    """The findings a state of `category` at token i is about, from its subject (see module docstring)."""
    tok = c.tokens[i]
    if tok.lex.subject:
        return _findings_for(category, (tok.lex.subject,))
    predicative = _is_predicative(c, i)
    tight = []
    if adjective and not predicative:
        tight.append(_subject_after_adjective(c, i))
    tight.append(_subject_before(c, i))
    if not predicative:
        tight.append(_subject_after_preposition(c, i))
    for subjects in tight:
        if subjects:
            # Tied to a subject: that subject's finding, or nothing ("pleural effusion", "dilated RA").
            return _findings_for(category, subjects)
    for subjects in (_nearest_subject_before(c, i), c.inherited):
        found = _findings_for(category, subjects or ())
        if found:
            return found
    default = DEFAULT_SUBJECT.get(category)
    return _findings_for(category, (default,)) if default else ()


# Generic states take their category from the attribute they govern: (generic, attribute) -> (category,
# abnormal). "decreased size" is a small chamber (no dilation), "increased wall thickness" is hypertrophy.
_GENERIC_MEANING: Final[dict[tuple[str, str], tuple[str, bool]]] = {
    ("normal", "size"): ("size", False), ("normal", "function"): ("function", False),
    ("normal", "wall"): ("wall", False),
    ("decreased", "size"): ("size", False), ("decreased", "function"): ("function", True),
    ("decreased", "wall"): ("wall", False),
    ("increased", "size"): ("size", True), ("increased", "function"): ("function", False),
    ("increased", "wall"): ("wall", True),
}
_GENERIC_DEFAULT: Final[dict[str, str]] = {"decreased": "function", "increased": "size"}


def _chain_after(c: _Clause, i: int) -> list[int]:
    """Subjects and attributes an attributive state governs: "normal [LV size, wall thickness, function]"."""
    chain: list[int] = []
    seen_attr = False
    for k in range(i + 1, len(c.tokens)):
        kind = c.tokens[k].kind
        gap = c.gap_words(k - 1, k)
        if kind not in ("subj", "attr") or _content_words(gap):
            break
        # After an attribute, a subject belongs to the phrase only as "... function of the LV"; otherwise
        # it starts the next item of a list ("no increase in wall thickness or LA enlargement").
        if kind == "subj" and seen_attr and "of" not in gap:
            break
        seen_attr = seen_attr or kind == "attr"
        chain.append(k)
    return chain


def _attrs_before(c: _Clause, i: int) -> list[int]:
    """Unclaimed attributes before a predicative state: "[LV size and contractility] within normal limits"."""
    out: list[int] = []
    for k in range(i - 1, -1, -1):
        kind = c.tokens[k].kind
        if kind == "state":
            break
        if kind == "attr" and k not in c.claimed_attrs:
            out.append(k)
    return out[::-1]


def _attr_subjects(c: _Clause, k: int) -> tuple[str, ...] | None:
    """The subject written with an attribute: "LV size", "size of the LV", or an LVEF's own."""
    tok = c.tokens[k]
    if tok.lex.subject:
        return (tok.lex.subject,)
    if k > 0 and c.tokens[k - 1].kind == "subj" and not _content_words(c.gap_words(k - 1, k)):
        return c.group_at(k - 1)
    if k + 1 < len(c.tokens) and c.tokens[k + 1].kind == "subj":
        words = c.gap_words(k, k + 1)
        if words and words[0] == "of" and len(words) <= 2:
            return c.group_at(k + 1)
    return None


@dataclass(frozen=True)
class _Target:
    """What a state says: about these findings, abnormal (present) or not."""

    abnormal: bool
    findings: tuple[str, ...]


def _generic_targets(c: _Clause, i: int) -> list[_Target]:
    """Targets of a generic state ("normal", "decreased", "increased"): one per attribute it governs."""
    tok = c.tokens[i]
    generic = tok.lex.value
    chain = _chain_after(c, i)
    if _is_predicative(c, i):
        # "The LV is at the upper limit of normal size": attributes may follow, a subject may not.
        chain = chain[:next((n for n, k in enumerate(chain) if c.tokens[k].kind == "subj"), len(chain))]
    chain_subjects = tuple(c.tokens[k].lex.value for k in chain if c.tokens[k].kind == "subj")
    attrs = [k for k in chain if c.tokens[k].kind == "attr"]
    if not attrs and not chain_subjects:
        attrs = _attrs_before(c, i)
    c.claimed_attrs.update(attrs)
    out: list[_Target] = []
    if attrs:
        for k in attrs:
            meaning = _GENERIC_MEANING.get((generic, c.tokens[k].lex.value))
            if meaning is None:  # diastolic function: not a finding of ours
                continue
            category, abnormal = meaning
            subjects = _attr_subjects(c, k) or chain_subjects
            findings = (_findings_for(category, subjects) if subjects
                        else _resolve_findings(c, i, category, adjective=False))
            out.append(_Target(abnormal, findings))
        return out
    # No attribute noun: "The RV is normal.", "severely impaired LV", "preserved LV".
    subjects_known = chain_subjects or None
    if generic == "normal":
        probe = subjects_known or _subject_before(c, i) or _nearest_subject_before(c, i) or c.inherited
        categories: tuple[str, ...] = (
            ("function",) if tok.lex.default == "function"
            else tuple(dict.fromkeys(cat for s in probe for cat in NORMAL_COVERS.get(s, ())))
        )
        abnormal = False
    else:
        categories = (_GENERIC_DEFAULT[generic],)
        abnormal = generic == "decreased"
    for category in categories:
        findings = (_findings_for(category, subjects_known) if subjects_known
                    else _resolve_findings(c, i, category, adjective=not tok.lex.nominal))
        out.append(_Target(abnormal, findings))
    return out


def _state_targets(c: _Clause, i: int) -> list[_Target]:
    lex = c.tokens[i].lex
    if lex.value in ("normal", "decreased", "increased"):
        return _generic_targets(c, i)
    return [_Target(lex.abnormal, _resolve_findings(c, i, lex.value, adjective=not lex.nominal))]


# ------------------------------------------------------------------------------------------------------------
# One clause: negation, uncertainty, severity

_POST_SCOPE_WORDS: Final = 6
_SHORT_SCOPE_WORDS: Final = 3
_SEVERITY_GAP_WORDS: Final = 3
_SMALL_LOOKAHEAD_WORDS: Final = 4


def _negation(c: _Clause, i: int) -> Literal["none", "broad", "short"]:
    """How token i is negated: "broad" by a trigger before it in the clause or after it; "short" by "not"."""
    for k in range(i - 1, -1, -1):
        kind = c.tokens[k].kind
        if kind == "neg_pre":
            return "none" if _new_predicate_between(c, k, i) else "broad"
        if kind == "neg_short" and _within_short_scope(c, k, i):
            return "short"
    if _post_trigger(c, i, "neg_post"):
        return "broad"
    return "none"


def _new_predicate_between(c: _Clause, k: int, i: int) -> bool:
    """ "No effusion and the aortic root is dilated": a subject with its own verb ends the trigger's list."""
    return _is_predicative(c, i) and any(c.tokens[m].kind == "subj" for m in range(k + 1, i))


_LIST_WORDS: Final[frozenset[str]] = frozenset({"or", "nor"})


def _within_short_scope(c: _Clause, k: int, i: int) -> bool:
    """ "not" reaches the next state or disease a few words on, and states listed after it with "or"
    ("not dilated or hypertrophied")."""
    words = 0
    for m in range(k + 1, i + 1):
        gap = c.gap_words(m - 1, m)
        if c.tokens[m - 1].kind in ("state", "disease") and m - 1 > k:
            if not gap or not set(gap) <= _LIST_WORDS | FILLER_WORDS - {"and"}:
                return False
        else:
            words += len(gap)
    return words <= _SHORT_SCOPE_WORDS


def _post_trigger(c: _Clause, i: int, kind: str) -> bool:
    for k in range(i + 1, len(c.tokens)):
        if c.tokens[k].kind == kind:
            between = c.text[c.tokens[i].end:c.tokens[k].start]
            return "," not in between and len(_WORD.findall(between)) <= _POST_SCOPE_WORDS
    return False


def _uncertain(c: _Clause, i: int) -> bool:
    for k in range(i - 1, -1, -1):
        if c.tokens[k].kind == "unc_pre":
            # Scope: to the end of the clause, or the first comma after a stated finding.
            states_between = [m for m in range(k + 1, i) if c.tokens[m].kind in ("state", "disease")]
            return not (states_between and "," in c.text[c.tokens[states_between[0]].end:c.tokens[i].start])
    return _post_trigger(c, i, "unc_post")


def _severity(c: _Clause, i: int) -> str | None:
    """The grade stated for state i: its own, or a severity word just before it ("mild concentric LV ...")."""
    if c.tokens[i].lex.severity:
        return c.tokens[i].lex.severity
    words = 0
    for k in range(i - 1, -1, -1):
        words += len(_content_words(c.gap_words(k, k + 1)))
        if words > _SEVERITY_GAP_WORDS:
            return None
        kind = c.tokens[k].kind
        if kind == "sev":
            return c.tokens[k].lex.value
        if kind not in ("subj", "attr", "neg_short"):
            return None
    return None


def _resolve_small(c: _Clause) -> None:
    """ "small": an effusion's or a scar's grade when a finding follows ("small pericardial effusion"),
    otherwise a small chamber ("small LV", "the left ventricle is small"), i.e. not dilated."""
    for i, tok in enumerate(c.tokens):
        if not tok.lex.maybe_size:
            continue
        words = 0
        grade = False
        for k in range(i + 1, len(c.tokens)):
            words += len(c.gap_words(k - 1, k))
            if words > _SMALL_LOOKAHEAD_WORDS:
                break
            kind = c.tokens[k].kind
            if kind == "state":
                grade = True
                break
            if kind not in ("subj", "attr", "sev"):
                break
        if not grade:
            c.tokens[i] = _Token(_SIZE_SMALL, tok.start, tok.end)


def _clause_assertions(c: _Clause) -> list[_Assertion]:
    _resolve_small(c)
    out: list[_Assertion] = []
    for i, tok in enumerate(c.tokens):
        if tok.kind != "state":
            continue
        negation = _negation(c, i)
        uncertain = _uncertain(c, i)
        severity = _severity(c, i)
        for target in _state_targets(c, i):
            abnormal = target.abnormal
            if negation == "short" or (negation == "broad" and abnormal):
                abnormal = not abnormal  # "not normal" is abnormal; "no normal ..." is not a statement
            for f in target.findings:
                out.append(_Assertion(f, abnormal, severity if abnormal else None, uncertain and abnormal))
    return out


@dataclass(frozen=True)
class _DiseaseMention:
    disease: str
    negated: bool
    uncertain: bool


def _clause_diseases(c: _Clause) -> list[_DiseaseMention]:
    out: list[_DiseaseMention] = []
    for i, tok in enumerate(c.tokens):
        disease = tok.lex.value if tok.kind == "disease" else tok.lex.disease
        if disease:
            out.append(_DiseaseMention(disease, _negation(c, i) != "none", _uncertain(c, i)))
    return out


def _clauses(masked: str, tokens: list[_Token]) -> list[_Clause]:
    clauses: list[_Clause] = []
    current: list[_Token] = []
    for tok in tokens + [_Token(Lexeme("term"), len(masked), len(masked))]:
        if tok.kind == "term":
            if current:
                inherited = clauses[-1].last_subject_group() if clauses else ()
                clauses.append(_Clause(masked, current, inherited))
            current = []
        else:
            current.append(tok)
    return clauses


# ------------------------------------------------------------------------------------------------------------
# Sentences and reports


def _lv_ef_grade(percent: float) -> str | None:
    if percent >= L.LVEF_ABNORMAL_BELOW:
        return None
    return "mild" if percent >= 40 else "moderate" if percent >= 30 else "severe"


def _rv_ef_grade(percent: float) -> str | None:
    if percent >= L.RVEF_ABNORMAL_BELOW:
        return None
    return "mild" if percent >= 40 else "moderate" if percent >= 30 else "severe"


_EF_FINDING: Final[dict[str, str]] = {"lv": "lv_dysfunction", "rv": "rv_dysfunction"}


def _apply_ejection_fractions(assertions: list[_Assertion], efs: list[_EjectionFraction]) -> list[_Assertion]:
    """Words win; a bare number decides where there are none, and grades an ungraded stated impairment."""
    out = list(assertions)
    for ventricle, finding in _EF_FINDING.items():
        values = [e.percent for e in efs if e.ventricle == ventricle]
        if not values:
            continue
        grade = (_lv_ef_grade if ventricle == "lv" else _rv_ef_grade)(values[0])
        worded = [a for a in out if a.finding == finding]
        if not worded:
            out.append(_Assertion(finding, grade is not None, grade))
        elif grade is not None:
            out = [_Assertion(a.finding, a.present, a.severity or grade, a.uncertain)
                   if a.finding == finding and a.present else a for a in out]
    return out


def _merge(assertions: Sequence[_Assertion]) -> dict[str, FindingLabel]:
    """Per finding: present if any statement says present (most severe grade; uncertain only if every
    present statement is), else absent if any says absent."""
    out: dict[str, FindingLabel] = {}
    for f in L.FINDINGS:
        mine = [a for a in assertions if a.finding == f]
        if not mine:
            continue
        present = [a for a in mine if a.present]
        if present:
            grades = [a.severity for a in present if a.severity]
            severity = max(grades, key=lambda g: SEVERITY_RANK[g]) if grades else None
            uncertain = all(a.uncertain for a in present)
            out[f] = FindingLabel("present", severity, uncertain)  # type: ignore[arg-type]
        else:
            out[f] = FindingLabel("absent")
    return out


def _first_disease(mentions: Sequence[_DiseaseMention]) -> tuple[str | None, bool]:
    """The first disease named and not negated, preferring a certain one and a disease over "normal"."""
    named = [m for m in mentions if not m.negated]
    for pool in ([m for m in named if m.disease != "normal" and not m.uncertain],
                 [m for m in named if m.disease != "normal"],
                 [m for m in named if not m.uncertain],
                 named):
        if pool:
            return pool[0].disease, pool[0].uncertain
    return None, False


@dataclass(frozen=True)
class _SentenceReading:
    labels: SentenceLabels
    assertions: tuple[_Assertion, ...]
    diseases: tuple[_DiseaseMention, ...]


@lru_cache(maxsize=8192)  # impressions repeat sentences ("No pericardial effusion."); readings are immutable
def _read_sentence(sentence: str) -> _SentenceReading:
    text = normalise(sentence)
    tokens, efs = _tokenise(text)
    masked = _mask_asides(text)
    summary: Summary | None = None
    for tok in tokens:
        if tok.kind == "summary" and summary is None:
            summary = tok.lex.value  # type: ignore[assignment]
    assertions: list[_Assertion] = []
    diseases: list[_DiseaseMention] = []
    for clause in _clauses(masked, tokens):
        assertions += _clause_assertions(clause)
        diseases += _clause_diseases(clause)
    assertions = _apply_ejection_fractions(assertions, efs)
    if summary == "normal":
        diseases.append(_DiseaseMention("normal", False, False))
        stated = {a.finding for a in assertions}
        assertions += [_Assertion(f, False) for f in L.FINDINGS if f not in stated]
    disease, disease_uncertain = _first_disease(diseases)
    labels = SentenceLabels(sentence, _all_findings(_merge(assertions)), disease, disease_uncertain, summary)
    return _SentenceReading(labels, tuple(assertions), tuple(diseases))


def label_sentence(sentence: str) -> SentenceLabels:
    """Findings, disease and summary stated by one sentence."""
    return _read_sentence(sentence).labels


def label_report(text: str) -> ReportLabels:
    """Findings (present / absent / not_mentioned, severity, uncertainty) and disease of an impression."""
    readings = [_read_sentence(s) for s in split_sentences(text)]
    assertions = [a for r in readings for a in r.assertions]
    findings = _merge(assertions)
    if any(r.labels.summary is not None for r in readings):
        # "Normal study." / "Otherwise normal.": everything not stated elsewhere is normal.
        findings = {f: findings.get(f, FindingLabel("absent")) for f in L.FINDINGS}
    disease, disease_uncertain = _first_disease([m for r in readings for m in r.diseases])
    return ReportLabels(_all_findings(findings), disease, disease_uncertain,
                        tuple(r.labels for r in readings))


def label_reports(texts: Iterable[str]) -> list[ReportLabels]:
    return [label_report(t) for t in texts]
