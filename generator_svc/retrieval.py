"""Drafting by retrieval: the impression of the nearest indexed study, or a consensus of the k nearest that
keeps only what most of them agree on, written with their own sentences (so the draft reads like a report,
and every sentence can name the studies it came from)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from cmr.labels import FINDINGS
from cmr.reports import ReportLabels, SentenceLabels, label_report, label_sentence, split_sentences

_NUMBERING = re.compile(r"^\s*\d+[.)]\s*")


@dataclass(frozen=True)
class Neighbour:
    study_key: str
    impression: str
    score: float


@dataclass(frozen=True)
class DraftSentence:
    text: str
    findings: tuple[str, ...]  # findings the sentence states present
    sources: tuple[str, ...]   # study keys the sentence came from


def _clean(sentence: str) -> str:
    return _NUMBERING.sub("", sentence).strip()


def _draft_sentence(text: str, labels: SentenceLabels, source: str) -> DraftSentence:
    present = tuple(f for f, lab in labels.stated().items() if lab.state == "present")
    return DraftSentence(_clean(text), present, (source,))


def nearest_draft(neighbours: Sequence[Neighbour]) -> list[DraftSentence]:
    """The nearest study's impression, sentence by sentence."""
    if not neighbours:
        raise ValueError("no indexed study to draft from")
    best = max(neighbours, key=lambda n: n.score)
    return [_draft_sentence(s, label_sentence(s), best.study_key) for s in split_sentences(best.impression)]


@dataclass(frozen=True)
class Consensus:
    findings: dict[str, str]  # finding -> "present" | "absent", only where a majority agrees
    disease: str | None


def consensus(labels: Sequence[ReportLabels], min_agreement: float = 0.5) -> Consensus:
    """A finding's state (or the disease) is kept when more than `min_agreement` of all neighbours state it."""
    k = len(labels)
    need = min_agreement * k
    agreed: dict[str, str] = {}
    for f in FINDINGS:
        votes = Counter(lab.state(f) for lab in labels)
        for state in ("present", "absent"):
            if votes[state] > need:
                agreed[f] = state
    diseases = Counter(lab.disease for lab in labels if lab.disease)
    disease = next((d for d, n in diseases.most_common(1) if n > need), None)
    return Consensus(agreed, disease)


def consensus_draft(neighbours: Sequence[Neighbour], min_agreement: float = 0.5) -> list[DraftSentence]:
    """Sentences of the neighbours (nearest first) that state only agreed findings, until every agreed finding
    and the agreed disease is said once. Findings the neighbours disagree on are left out, not guessed."""
    if not neighbours:
        raise ValueError("no indexed studies to draft from")
    if not 0.0 <= min_agreement < 1.0:
        raise ValueError(f"min_agreement must be in [0, 1), got {min_agreement}")
    ordered = sorted(neighbours, key=lambda n: -n.score)
    agreed = consensus([label_report(n.impression) for n in ordered], min_agreement)
    to_say = set(agreed.findings)
    disease_said = agreed.disease is None
    out: list[DraftSentence] = []
    for n in ordered:
        for s in split_sentences(n.impression):
            lab = label_sentence(s)
            stated = {f: x.state for f, x in lab.stated().items()}
            names_disease = lab.disease is not None and lab.disease == agreed.disease and not disease_said
            if lab.disease is not None and lab.disease != agreed.disease:
                continue  # would assert a diagnosis the neighbours do not agree on
            if any(agreed.findings.get(f) != st for f, st in stated.items()):
                continue  # states something the majority does not
            if not (set(stated) & to_say) and not names_disease:
                continue  # nothing new
            out.append(_draft_sentence(s, lab, n.study_key))
            to_say -= set(stated)
            disease_said = disease_said or names_disease
        if not to_say and disease_said:
            break
    if not out:
        out.append(DraftSentence("No consistent findings among the most similar studies; review the images.", (),
                                 tuple(n.study_key for n in ordered)))
    return out


def numbered(sentences: Sequence[DraftSentence]) -> list[str]:
    return [f"{i}. {s.text}" for i, s in enumerate(sentences, 1)]
