"""Zero-shot finding scores and their calibration.

Raw score of a finding for an exam: cos(exam, mean "present" prompt) - cos(exam, mean "absent" prompt).
Probability: Platt scaling of that score, p = sigmoid(a * score + b), fitted per finding on labelled exams
the model was not trained on (`cmr calibrate`). So p = 0.5 means: among exams like the calibration set, half
of those with this score had the finding. It inherits the calibration set's prevalence; the fit records it.
Without a calibration file the probability is sigmoid(score / 0.05), which only preserves the ranking (the
service says so in its calibration note).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cmr.findings.prompts import DEFAULT_PHRASING, PromptSet, prompt_sets

FORMAT = "cmr-zero-shot-calibration/1"
PHRASE_KEY = "phrase"  # the pooled fit for free phrases: p(exam has what a prompt states | cosine)
PROMPT_MATCH = 0.9  # a phrase this close (text cosine) to one of the prompts is read as that finding
UNCALIBRATED_SCALE = 0.05  # typical spread of raw scores: keeps uncalibrated outputs away from 0/1

EncodeTexts = Callable[[list[str]], NDArray[np.float32]]


class CalibrationError(ValueError):
    pass


def _unit(x: NDArray[np.floating]) -> NDArray[np.float32]:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _sigmoid(x: NDArray[np.floating]) -> NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


@dataclass(frozen=True)
class PlattFit:
    a: float
    b: float
    n: int
    prevalence: float


@dataclass
class Calibration:
    model_version: str
    fitted_on: str
    phrasing: str
    fits: dict[str, PlattFit] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def save(self, path: Path) -> None:
        d = {"format": FORMAT, **asdict(self)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(d, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"cannot read calibration {path}: {exc}") from exc
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CalibrationError(f"{path} is not a zero-shot calibration file ({FORMAT})")
        try:
            fits = {k: PlattFit(**v) for k, v in d["fits"].items()}
            return cls(model_version=d["model_version"], fitted_on=d["fitted_on"], phrasing=d["phrasing"],
                       fits=fits, created=d.get("created", ""))
        except (KeyError, TypeError) as exc:
            raise CalibrationError(f"{path}: malformed calibration ({exc})") from exc


def calibration_path_for(checkpoint: Path) -> Path:
    """Where the calibration of a checkpoint lives: beside it, `<stem>.calibration.json`."""
    return checkpoint.with_name(checkpoint.stem + ".calibration.json")


class ZeroShotClassifier:
    """Prompt ensembles embedded once; scores and probabilities for any number of exam vectors."""

    def __init__(self, sets: Sequence[PromptSet], prompts: NDArray[np.float32],
                 calibration: Calibration | None = None, phrasing: str = DEFAULT_PHRASING) -> None:
        """`prompts`: the embeddings of every set's positives then negatives, in `sets` order."""
        self.sets = list(sets)
        self.keys = [s.key for s in self.sets]
        pos, neg, owner, polarity, i = [], [], [], [], 0
        for k, s in enumerate(self.sets):
            p, n = prompts[i : i + len(s.positives)], prompts[i + len(s.positives) : i + len(s.positives) + len(s.negatives)]
            i += len(s.positives) + len(s.negatives)
            pos.append(_unit(_unit(p).mean(0)))
            neg.append(_unit(_unit(n).mean(0)))
            owner += [k] * (len(p) + len(n))
            polarity += [True] * len(p) + [False] * len(n)
        if i != len(prompts):
            raise ValueError(f"{len(prompts)} prompt embeddings for {i} prompts")
        self._pos = np.stack(pos)  # [K, D] class embeddings
        self._neg = np.stack(neg)
        self._prompts = _unit(prompts)  # [P, D] every single prompt
        self._prompt_owner = np.asarray(owner)
        self._prompt_positive = np.asarray(polarity)
        self.phrasing = phrasing
        self.calibration = calibration

    @classmethod
    def build(cls, encode_texts: EncodeTexts, calibration: Calibration | None = None,
              phrasing: str = DEFAULT_PHRASING) -> ZeroShotClassifier:
        """Embed every prompt with `encode_texts` (the in-process model, or the encoder service)."""
        sets = prompt_sets(phrasing)
        texts = [t for s in sets for t in (*s.positives, *s.negatives)]
        if calibration is not None and calibration.phrasing != phrasing:
            raise CalibrationError(f"calibration fitted with {calibration.phrasing!r} prompts, not {phrasing!r}")
        return cls(sets, np.asarray(encode_texts(texts), np.float32), calibration, phrasing)

    def raw_scores(self, exam_emb: NDArray[np.floating]) -> NDArray[np.float32]:
        """[N, D] exam vectors -> [N, K] raw scores (columns in `self.keys` order)."""
        img = _unit(np.atleast_2d(exam_emb))
        return img @ self._pos.T - img @ self._neg.T

    def probabilities(self, exam_emb: NDArray[np.floating]) -> NDArray[np.float64]:
        raw = self.raw_scores(exam_emb).astype(np.float64)
        if self.calibration is None:
            return _sigmoid(raw / UNCALIBRATED_SCALE)
        a = np.array([self.calibration.fits[k].a if k in self.calibration.fits else 1 / UNCALIBRATED_SCALE
                      for k in self.keys])
        b = np.array([self.calibration.fits[k].b if k in self.calibration.fits else 0.0 for k in self.keys])
        return _sigmoid(raw * a + b)

    # --- free phrases (text search, cohorts) ------------------------------------------------------------------
    def match_phrase(self, phrase_emb: NDArray[np.floating]) -> tuple[str, bool, float] | None:
        """(key, states present?, text cosine) when the phrase says what one of the prompts says."""
        sims = self._prompts @ _unit(np.asarray(phrase_emb, np.float32))
        j = int(np.argmax(sims))
        if sims[j] < PROMPT_MATCH:
            return None
        return self.keys[int(self._prompt_owner[j])], bool(self._prompt_positive[j]), float(sims[j])

    def phrase_probabilities(self, exam_emb: NDArray[np.floating], phrase_emb: NDArray[np.floating]) -> NDArray[np.float64]:
        """P(exam matches phrase), [N]: a known finding's calibrated probability when the phrase is one of
        its prompts (1 - p for an 'absent' prompt), else the pooled phrase calibration of the cosine."""
        match = self.match_phrase(phrase_emb)
        if match is not None:
            key, present, _ = match
            p = self.probabilities(exam_emb)[:, self.keys.index(key)]
            return p if present else 1.0 - p
        cos = (_unit(np.atleast_2d(exam_emb)) @ _unit(np.asarray(phrase_emb, np.float32))).astype(np.float64)
        fit = self.calibration.fits.get(PHRASE_KEY) if self.calibration else None
        if fit is None:
            return _sigmoid(cos / UNCALIBRATED_SCALE)
        return _sigmoid(fit.a * cos + fit.b)

    def calibration_note(self) -> str:
        c = self.calibration
        if c is None:
            return ("uncalibrated: probability = sigmoid(raw score / 0.05); it ranks exams but 0.5 is not a "
                    "decision threshold (run `cmr calibrate`)")
        return (f"Platt scaling per finding, fitted on {c.fitted_on} ({c.created[:10]}): p = 0.5 means half of "
                "the calibration exams with this score had the finding, at that set's prevalence")

    def fit(self, exam_emb: NDArray[np.floating], labels: Mapping[str, NDArray[np.bool_]], *, model_version: str,
            fitted_on: str) -> Calibration:
        """Platt-scale each key with labels of both classes; the rest stay uncalibrated."""
        from sklearn.linear_model import LogisticRegression

        raw = self.raw_scores(exam_emb)
        fits: dict[str, PlattFit] = {}
        for j, key in enumerate(self.keys):
            if key not in labels:
                continue
            y = np.asarray(labels[key], bool)
            if y.shape[0] != raw.shape[0]:
                raise CalibrationError(f"{key}: {y.shape[0]} labels for {raw.shape[0]} exams")
            if y.all() or not y.any():
                continue
            lr = LogisticRegression(C=1e4, max_iter=1000).fit(raw[:, j : j + 1].astype(np.float64), y)
            fits[key] = PlattFit(a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]), n=int(y.size),
                                 prevalence=float(y.mean()))
        # Pooled fit for free phrases: every single prompt's cosine against its finding's labels ('absent'
        # prompts with the labels flipped), so a phrase's cosine maps to how often exams match what it says.
        img = _unit(np.atleast_2d(exam_emb))
        xs, ys = [], []
        for j, key in enumerate(self.keys):
            if key not in fits:
                continue
            y = np.asarray(labels[key], bool)
            for pi in np.flatnonzero(self._prompt_owner == j):
                xs.append(img @ self._prompts[pi])
                ys.append(y if self._prompt_positive[pi] else ~y)
        if xs:
            x, y = np.concatenate(xs)[:, None].astype(np.float64), np.concatenate(ys)
            lr = LogisticRegression(C=1e4, max_iter=1000).fit(x, y)
            fits[PHRASE_KEY] = PlattFit(a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]), n=int(y.size),
                                        prevalence=float(y.mean()))
        calibration = Calibration(model_version=model_version, fitted_on=fitted_on, phrasing=self.phrasing, fits=fits)
        self.calibration = calibration
        return calibration


def classifier_for_model(model: object, checkpoint: Path | None = None) -> ZeroShotClassifier:
    """Prompt ensembles embedded by a CMR-CLIP `model`, with the calibration file beside `checkpoint` (default:
    the shipped checkpoint) when there is one: the scoring `cmr zeroshot` and the services use."""
    from cmr.model.checkpoint import DEFAULT_CHECKPOINT
    from cmr.model.inference import embed_texts

    cal_path = calibration_path_for(checkpoint or DEFAULT_CHECKPOINT)
    calibration = Calibration.load(cal_path) if cal_path.exists() else None
    return ZeroShotClassifier.build(lambda texts: embed_texts(model, texts), calibration)  # type: ignore[arg-type]
