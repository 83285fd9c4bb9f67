"""Zero-shot classifier: prompt ensembles, raw scores, Platt calibration (fit, save, load, refuse bad files)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from cmr.findings import Calibration, CalibrationError, ZeroShotClassifier, calibration_path_for, prompt_sets
from cmr.labels import DISEASES, FINDINGS

DIM = 32


def _fake_encoder(texts: list[str]) -> np.ndarray:
    """Deterministic unit vector per text (a stand-in text encoder; the real one is tested elsewhere)."""
    out = []
    for t in texts:
        rng = np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16))
        v = rng.normal(size=DIM)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, np.float32)


def test_prompt_sets_cover_every_finding_and_disease() -> None:
    sets = prompt_sets()
    assert [s.key for s in sets] == [*FINDINGS, *(f"disease:{d}" for d in DISEASES)]
    assert all(s.positives and s.negatives and not set(s.positives) & set(s.negatives) for s in sets)


def test_raw_scores_are_positive_minus_negative_cosines() -> None:
    clf = ZeroShotClassifier.build(_fake_encoder)
    s = clf.sets[0]
    pos = _fake_encoder(list(s.positives)).mean(0)
    neg = _fake_encoder(list(s.negatives)).mean(0)
    exam = pos / np.linalg.norm(pos)
    want = 1.0 - float(exam @ (neg / np.linalg.norm(neg)))
    assert clf.raw_scores(exam)[0, 0] == pytest.approx(want, abs=1e-5)


def test_platt_fit_recovers_a_known_calibration(tmp_path: Path) -> None:
    clf = ZeroShotClassifier.build(_fake_encoder)
    rng = np.random.default_rng(0)
    exams = rng.normal(size=(4000, DIM)).astype(np.float32)
    raw = clf.raw_scores(exams)
    a_true, b_true = 12.0, -0.5
    labels = {k: rng.random(len(exams)) < 1 / (1 + np.exp(-(a_true * raw[:, j] + b_true)))
              for j, k in enumerate(clf.keys[:3])}
    cal = clf.fit(exams, labels, model_version="m@1", fitted_on="synthetic")
    assert set(cal.fits) == {*clf.keys[:3], "phrase"}
    for fit in (cal.fits[k] for k in clf.keys[:3]):
        assert fit.a == pytest.approx(a_true, rel=0.2) and fit.b == pytest.approx(b_true, abs=0.2)
    p = clf.probabilities(exams)
    # Calibrated: in each probability decile the observed rate is close to the mean probability.
    for j in range(3):
        y = labels[clf.keys[j]]
        for lo in (0.2, 0.5, 0.7):
            sel = (p[:, j] >= lo) & (p[:, j] < lo + 0.1)
            if sel.sum() > 100:
                assert abs(y[sel].mean() - p[sel, j].mean()) < 0.07
    path = tmp_path / "c.json"
    cal.save(path)
    again = ZeroShotClassifier.build(_fake_encoder, Calibration.load(path))
    np.testing.assert_allclose(again.probabilities(exams), p)
    assert "Platt" in again.calibration_note() and "uncalibrated" in ZeroShotClassifier.build(_fake_encoder).calibration_note()


def test_one_class_labels_stay_uncalibrated() -> None:
    clf = ZeroShotClassifier.build(_fake_encoder)
    exams = np.random.default_rng(1).normal(size=(50, DIM))
    cal = clf.fit(exams, {clf.keys[0]: np.zeros(50, bool)}, model_version="m", fitted_on="x")
    assert cal.fits == {}
    with pytest.raises(CalibrationError, match="labels for"):
        clf.fit(exams, {clf.keys[0]: np.zeros(3, bool)}, model_version="m", fitted_on="x")


@pytest.mark.parametrize("content", ["not json", json.dumps({"format": "other"}),
                                     json.dumps({"format": "cmr-zero-shot-calibration/1", "fits": {"x": {"a": 1}}})])
def test_bad_calibration_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(CalibrationError):
        Calibration.load(path)


def test_calibration_phrasing_must_match(tmp_path: Path) -> None:
    cal = Calibration(model_version="m", fitted_on="x", phrasing="train")
    with pytest.raises(CalibrationError, match="prompts"):
        ZeroShotClassifier.build(_fake_encoder, cal, phrasing="heldout")


def test_calibration_lives_beside_its_checkpoint() -> None:
    assert calibration_path_for(Path("/w/cmr-clip-small.pt")) == Path("/w/cmr-clip-small.calibration.json")


def test_shipped_calibration_matches_the_shipped_checkpoint() -> None:
    from cmr.model.checkpoint import DEFAULT_CHECKPOINT, checkpoint_version

    cal = Calibration.load(calibration_path_for(DEFAULT_CHECKPOINT))
    assert cal.model_version == checkpoint_version(DEFAULT_CHECKPOINT)
    assert set(cal.fits) == {s.key for s in prompt_sets()} | {"phrase"}


def test_phrases_that_are_prompts_use_their_finding_and_others_the_pooled_fit() -> None:
    clf = ZeroShotClassifier.build(_fake_encoder)
    rng = np.random.default_rng(2)
    exams = rng.normal(size=(3000, DIM)).astype(np.float32)
    raw = clf.raw_scores(exams)
    labels = {k: rng.random(len(exams)) < 1 / (1 + np.exp(-10 * raw[:, j])) for j, k in enumerate(clf.keys)}
    clf.fit(exams, labels, model_version="m", fitted_on="x")
    s = clf.sets[2]
    key, present, sim = clf.match_phrase(_fake_encoder([s.positives[0]])[0])
    assert (key, present) == (s.key, True) and sim == pytest.approx(1.0, abs=1e-5)
    p = clf.probabilities(exams)[:, 2]
    np.testing.assert_allclose(clf.phrase_probabilities(exams, _fake_encoder([s.positives[0]])[0]), p)
    np.testing.assert_allclose(clf.phrase_probabilities(exams, _fake_encoder([s.negatives[0]])[0]), 1 - p)
    free = _fake_encoder(["an unrelated free-text phrase"])[0]
    assert clf.match_phrase(free) is None
    fit = clf.calibration.fits["phrase"]
    cos = exams @ free / np.linalg.norm(exams, axis=1)
    np.testing.assert_allclose(clf.phrase_probabilities(exams, free), 1 / (1 + np.exp(-(fit.a * cos + fit.b))), rtol=1e-5)
