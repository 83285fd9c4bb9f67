"""The finding plan: the decoder writes from the plan it is given (training: the reference's), generates from
the reader's own plan binarised at tuned thresholds, and the thresholds maximise F1 on held-out studies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmr.generator.config import DecoderConfig
from cmr.generator.decoder import N_FINDINGS, PLAN_SIZE, ReportDecoder, collate, stream_positions
from cmr.generator.plan import MIN_POSITIVES, apply_thresholds, tune_thresholds
from cmr.generator.vocab import BOS, EOR, SEP
from cmr.labels import FINDINGS

CFG = DecoderConfig(layers=2, width=32, heads=4, dropout=0.0, max_tokens=6, max_sentences=3)
V, W = 40, 16


def _inputs() -> tuple[torch.Tensor, ...]:
    tok, sent, pos, _ = collate([stream_positions([[5, 6, 7], [8]], BOS, SEP, EOR),
                                 stream_positions([[9, 10]], BOS, SEP, EOR)])
    mem = torch.randn(2, 5, W, generator=torch.Generator().manual_seed(3))
    pad = torch.tensor([[False, False, False, True, True], [False, True, False, False, False]])
    return tok, sent, pos, mem, pad


@torch.no_grad()
def test_the_plan_conditions_the_output_and_defaults_to_the_readers() -> None:
    torch.manual_seed(0)
    dec = ReportDecoder(CFG, V, W).eval()
    tok, sent, pos, mem, pad = _inputs()
    none = torch.zeros(2, PLAN_SIZE)
    lv = none.clone()
    lv[:, FINDINGS.index("lv_dysfunction")] = 1.0
    assert not torch.allclose(dec(tok, sent, pos, mem, pad, plan=none), dec(tok, sent, pos, mem, pad, plan=lv))
    readers = dec.plan_from_logits(dec.read_findings(mem, pad))
    assert torch.equal(dec(tok, sent, pos, mem, pad), dec(tok, sent, pos, mem, pad, plan=readers))
    assert readers[:, N_FINDINGS:].sum(dim=1).eq(1).all()  # one disease each
    with pytest.raises(ValueError, match="plan of shape"):
        dec(tok, sent, pos, mem, pad, plan=torch.zeros(2, 3))


@torch.no_grad()
def test_thresholds_decide_and_travel_in_the_state_dict() -> None:
    dec = ReportDecoder(CFG, V, W).eval()
    logits = torch.zeros(1, PLAN_SIZE)
    logits[0, 0] = 0.0  # p = 0.5 for the first finding
    dec.plan_thresholds.fill_(0.6)
    assert dec.plan_from_logits(logits)[0, 0] == 0
    dec.plan_thresholds.fill_(0.4)
    assert dec.plan_from_logits(logits)[0, 0] == 1
    other = ReportDecoder(CFG, V, W)
    other.load_state_dict(dec.state_dict())
    assert torch.equal(other.plan_thresholds, torch.full((N_FINDINGS,), 0.4))


def test_no_plan_config_has_no_plan_layers() -> None:
    dec = ReportDecoder(DecoderConfig(layers=1, width=16, heads=2, plan=False), V, W).eval()
    assert not hasattr(dec, "plan_proj") and "plan_thresholds" not in dec.state_dict()
    with pytest.raises(ValueError, match="no finding plan"):
        apply_thresholds(dec, tune_thresholds(np.zeros((1, N_FINDINGS)), np.zeros((1, N_FINDINGS)), "x"))


def test_tuned_thresholds_maximise_f1() -> None:
    rng = np.random.default_rng(0)
    n = 400
    truth = rng.random((n, N_FINDINGS)) < 0.2
    truth[:, -1] = False
    truth[:MIN_POSITIVES - 1, -1] = True  # too few positives to tune: keeps 0.5
    # Probabilities that separate the classes around 0.3 rather than 0.5.
    probs = np.where(truth, 0.3 + 0.4 * rng.random((n, N_FINDINGS)), 0.3 * rng.random((n, N_FINDINGS)))
    tuned = tune_thresholds(probs, truth, "synthetic")
    for j, f in enumerate(FINDINGS[:-1]):
        assert 0.25 <= tuned.thresholds[f] <= 0.325 and tuned.f1[f] == 1.0
    assert tuned.thresholds[FINDINGS[-1]] == 0.5 and tuned.positives[FINDINGS[-1]] == MIN_POSITIVES - 1
    with pytest.raises(ValueError, match="must both be"):
        tune_thresholds(probs[:, :3], truth[:, :3], "bad")


def test_report_plans_count_down_what_is_still_to_be_said() -> None:
    from cmr.generator.plan import remaining_after, report_plans
    from cmr.labels import DISEASES

    sentences = ["Severely dilated LV with severely impaired systolic function.", "No late gadolinium enhancement.",
                 "Findings consistent with dilated cardiomyopathy."]
    plans = report_plans(sentences, rows=5)
    lv = [FINDINGS.index("lv_dilation"), FINDINGS.index("lv_dysfunction")]
    assert plans.shape == (5, PLAN_SIZE)
    assert plans[0, lv].tolist() == [1.0, 1.0] and plans[1, lv].tolist() == [0.0, 0.0]
    assert plans[1, N_FINDINGS + DISEASES.index("nicm")] == 1.0 and plans[3:].sum() == 0  # all said: the end
    # generation removes what a sentence says exactly as training did
    after = remaining_after(torch.from_numpy(plans[0]), sentences[0])
    assert torch.equal(after, torch.from_numpy(plans[1]))
    assert remaining_after(after, sentences[2]).sum() == 0


@torch.no_grad()
def test_per_sentence_plans_match_between_training_and_generation() -> None:
    """Teacher forcing with a plan per sentence gives the same logits as the cached incremental path that
    switches the plan at each sentence boundary (`set_plan`), which is what generation does."""
    torch.manual_seed(0)
    dec = ReportDecoder(CFG, V, W).eval()
    seq, sent, pos, _ = stream_positions([[5, 6, 7], [8, 9]], BOS, SEP, EOR)
    mem = torch.randn(1, 5, W, generator=torch.Generator().manual_seed(4))
    pad = torch.zeros(1, 5, dtype=torch.bool)
    plans = torch.zeros(1, CFG.max_sentences + 1, PLAN_SIZE)
    plans[0, 0, :2] = 1.0
    plans[0, 1, 1] = 1.0
    full = dec(torch.tensor([seq]), torch.tensor([sent]), torch.tensor([pos]), mem, pad, plan=plans)
    state = dec.start(mem, pad, plan=plans[:, 0])
    steps = []
    for t, (tok, s, p) in enumerate(zip(seq, sent, pos)):
        if t > 0 and tok == SEP:
            dec.set_plan(state, plans[:, s])
        steps.append(dec.step(state, torch.tensor([tok]), torch.tensor([s]), torch.tensor([p])))
    assert torch.allclose(full[0], torch.cat(steps), atol=1e-5)
