"""Language metrics of drafted impressions against reference impressions, from maintained libraries:
BLEU-1..4 (sacrebleu, corpus level), ROUGE-L (rouge-score, F-measure with stemming, mean over pairs) and
METEOR (nltk, mean over pairs).

Both sides are normalised the same way first: list numbering removed, sentences joined with single spaces
(a numbered and an unnumbered report that say the same thing score the same). BLEU-n is the cumulative BLEU
of n-gram orders 1..n (uniform weights, the usual "BLEU-1..4" of report-generation papers), sacrebleu's
13a tokenisation, lower-cased.

METEOR here matches exact words and Porter stems but not WordNet synonyms: nltk reads WordNet from a corpus
download, and nothing is downloaded at run time on this platform. Scores are therefore a little lower than
METEOR with synonyms; they are comparable between the modes measured here, not with published figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cmr.reports.labeller import split_sentences

BLEU_ORDERS = (1, 2, 3, 4)


def normalise(report: str) -> str:
    """Sentences without numbering, joined by single spaces."""
    return " ".join(" ".join(s.split()) for s in split_sentences(report))


class _NoSynonyms:
    """Stands in for nltk's WordNet reader: METEOR's synonym stage matches nothing (see the module doc)."""

    def synsets(self, *_: Any, **__: Any) -> list[Any]:
        return []


@dataclass(frozen=True)
class TextScores:
    bleu: dict[int, float]  # order -> corpus BLEU-n, 0..1
    rouge_l: float  # mean F-measure, 0..1
    meteor: float  # mean, 0..1 (exact + stem matching)
    n_pairs: int

    def to_dict(self) -> dict[str, Any]:
        return {**{f"bleu_{n}": v for n, v in self.bleu.items()}, "rouge_l": self.rouge_l, "meteor": self.meteor,
                "n_pairs": self.n_pairs}


def text_scores(generated: Sequence[str], references: Sequence[str]) -> TextScores:
    """BLEU-1..4, ROUGE-L and METEOR of `generated[i]` against `references[i]`."""
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import meteor_score
    from rouge_score import rouge_scorer
    from sacrebleu.metrics import BLEU

    if len(generated) != len(references):
        raise ValueError(f"{len(generated)} generated reports but {len(references)} references")
    if not generated:
        raise ValueError("no reports to score")
    hyp = [normalise(g) for g in generated]
    ref = [normalise(r) for r in references]
    bleu = {n: BLEU(max_ngram_order=n, lowercase=True, tokenize="13a", effective_order=False)
            .corpus_score(hyp, [ref]).score / 100.0 for n in BLEU_ORDERS}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    rouge = float(np.mean([scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyp, ref)]))
    stemmer, wordnet = PorterStemmer(), _NoSynonyms()
    meteor = float(np.mean([meteor_score([r.lower().split()], h.lower().split(), stemmer=stemmer, wordnet=wordnet)
                            for h, r in zip(hyp, ref)]))
    return TextScores(bleu, rouge, meteor, len(hyp))


__all__ = ["BLEU_ORDERS", "TextScores", "normalise", "text_scores"]
