"""Measurement tokens and attention pooling: the numbers reach the embedding, a missing number is a masked
token, the per-view / per-number parts sum exactly to the embedding, and bad inputs fail clearly."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch

from cmr.model.checkpoint import create_model
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config
from cmr.model.measurements import MEASUREMENT_NAMES, derive, measurement_matrix, measurement_vector
from tiny_config import TINY

NAMES = ("lvef_pct", "lvedvi_ml_m2", "rv_lv_edv_ratio")


def _model(measurements: tuple[str, ...] = NAMES, pooling: str = "attention", seed: int = 0,
           fusion: str = "joint", number_pool: str = "attention", depth: int = 1,
           balance: bool = False) -> CMRCLIP:
    d: dict[str, Any] = copy.deepcopy(TINY)
    d["model"]["image"].update({"measurements": list(measurements), "pooling": pooling,
                                "measurement_fusion": fusion, "measurement_pool": number_pool,
                                "measurement_depth": depth, "measurement_balance": balance})
    return create_model(Config.from_dict(d), seed=seed).eval()


@pytest.fixture(scope="module", params=["joint", "late", "late-sum", "late-sum-balanced"])
def model(request: pytest.FixtureRequest) -> CMRCLIP:
    fusion, pool, balanced = (request.param.split("-") + ["", ""])[:3]
    return _model(fusion=fusion, number_pool=pool or "attention", balance=balanced == "balanced")


def _exam(model: CMRCLIP, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    s = model.spec
    return torch.rand(b, s.length, s.image_size, s.image_size, generator=g), torch.ones(b, s.length, dtype=torch.bool)


def test_derive_indexes_by_bsa_and_falls_back_to_a_typical_one() -> None:
    with_bsa = derive({"lvedv_ml": 200.0, "bsa_m2": 2.0, "rvedv_ml": 100.0, "lv_mass_g": 160.0})
    assert with_bsa["lvedvi_ml_m2"] == pytest.approx(100.0)
    assert with_bsa["rv_lv_edv_ratio"] == pytest.approx(0.5)
    assert with_bsa["lv_mass_edv_ratio"] == pytest.approx(0.8)
    assert derive({"lvedv_ml": 190.0})["lvedvi_ml_m2"] == pytest.approx(100.0)  # DEFAULT_BSA_M2 = 1.9
    assert derive({"lvedvi_ml_m2": 77.0, "lvedv_ml": 500.0})["lvedvi_ml_m2"] == 77.0  # measured index wins


def test_measurement_vector_marks_unknown_values_nan_and_rejects_unknown_names() -> None:
    v = measurement_vector({"lvef_pct": 35.0, "lvedv_ml": None, "rvedv_ml": "x"}, NAMES)
    assert v.dtype == np.float32 and v[0] == 35.0 and np.isnan(v[1:]).all()
    assert np.isnan(measurement_vector(None, NAMES)).all()
    assert measurement_matrix([], NAMES).shape == (0, 3)
    with pytest.raises(ValueError, match="unknown measurement tokens"):
        measurement_vector({}, ("lvef", ))


def test_config_rejects_unknown_or_repeated_measurements() -> None:
    d = copy.deepcopy(TINY)
    d["model"]["image"]["measurements"] = ["lvef_pct", "lvef_pct"]
    with pytest.raises(ValueError, match="at most once"):
        Config.from_dict(d)
    d["model"]["image"]["measurements"] = ["ejection"]
    with pytest.raises(ValueError, match="lvef_pct"):
        Config.from_dict(d)


@torch.no_grad()
def test_numbers_change_the_embedding_and_missing_numbers_are_masked(model: CMRCLIP) -> None:
    px, mk = _exam(model, 2)
    low = torch.tensor([[25.0, 130.0, 1.0]] * 2)
    high = torch.tensor([[65.0, 70.0, 1.0]] * 2)
    e_low, e_high = model.encode_exam(px, mk, low), model.encode_exam(px, mk, high)
    assert not torch.allclose(e_low, e_high, atol=1e-4)
    none = model.encode_exam(px, mk, None)
    all_nan = model.encode_exam(px, mk, torch.full((2, 3), float("nan")))
    torch.testing.assert_close(none, all_nan)
    part = torch.tensor([[25.0, float("nan"), 1.0]] * 2)
    tokens, pad = model.exam_tokens(px, mk, part)
    assert tokens.shape[1] == 1 + model.spec.length + 3
    assert pad[:, -3:].tolist() == [[False, True, False]] * 2


@torch.no_grad()
def test_contributions_sum_to_the_embedding_and_explain_cosines_exactly(model: CMRCLIP) -> None:
    px, mk = _exam(model, 3)
    mk[1, model.spec.slots[0].length:] = False  # exam 1: only its first slot
    ms = torch.tensor([[30.0, 120.0, 1.4], [float("nan")] * 3, [60.0, float("nan"), 0.9]])
    emb, parts = model.exam_contributions(px, mk, ms)
    torch.testing.assert_close(emb, model.encode_exam(px, mk, ms), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(parts.sum(1), emb, atol=1e-5, rtol=1e-5)
    groups = model.contribution_groups
    assert groups == (*model.spec.slot_names, *NAMES, "exam")
    norms = parts.norm(dim=-1)
    # missing views and numbers contribute nothing; the CLS token only pools an exam with nothing else
    for k, name in enumerate(groups):
        if name in model.spec.slot_names[1:] or name in NAMES or name == "exam":
            assert norms[1, k] == 0.0, name
    assert norms[2, groups.index("lvedvi_ml_m2")] == 0.0 and norms[2, groups.index("lvef_pct")] > 0
    v = torch.nn.functional.normalize(torch.randn(model.cfg.embed_dim), dim=0)
    torch.testing.assert_close((parts @ v).sum(1), emb @ v, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_cls_pooled_models_read_numbers_but_cannot_be_explained() -> None:
    m = _model(pooling="cls")
    px, mk = _exam(m, 1)
    e1 = m.encode_exam(px, mk, torch.tensor([[25.0, 130.0, 1.0]]))
    e2 = m.encode_exam(px, mk, torch.tensor([[65.0, 70.0, 1.0]]))
    assert not torch.allclose(e1, e2, atol=1e-4)
    with pytest.raises(ValueError, match="attention"):
        m.exam_contributions(px, mk)


@torch.no_grad()
def test_wrong_measurement_shape_is_a_clear_error(model: CMRCLIP) -> None:
    px, mk = _exam(model, 2)
    with pytest.raises(ValueError, match="measurement tokens"):
        model.encode_exam(px, mk, torch.zeros(2, 5))


@torch.no_grad()
def test_a_model_without_measurement_tokens_ignores_given_numbers_in_inference() -> None:
    from cmr.model.inference import embed_exam_arrays

    m = _model(measurements=(), pooling="cls")
    px, mk = _exam(m, 2)
    a = embed_exam_arrays(m, px.numpy(), mk.numpy())
    b = embed_exam_arrays(m, px.numpy(), mk.numpy(), measurements=np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(a, b)
    assert m.contribution_groups == (*m.spec.slot_names, "exam")


def test_every_known_measurement_has_a_finite_scale() -> None:
    from cmr.model.measurements import MEASUREMENT_SCALES

    assert set(MEASUREMENT_SCALES) == set(MEASUREMENT_NAMES)
    assert all(math.isfinite(c) and s > 0 for c, s in MEASUREMENT_SCALES.values())


@torch.no_grad()
def test_late_fusion_number_parts_do_not_depend_on_the_pixels() -> None:
    m = _model(fusion="late")
    px, mk = _exam(m, 2)
    ms = torch.tensor([[30.0, 120.0, 1.4], [60.0, 80.0, 0.9]])
    # Parts before the unit normalisation (which every part shares): the numbers' parts are the same whatever
    # the frames show, the frames' parts are not.
    a = m.image_proj(m.visual.token_contributions(px, mk, ms))
    b = m.image_proj(m.visual.token_contributions(torch.rand_like(px), mk, ms))
    torch.testing.assert_close(a[:, -3:], b[:, -3:])
    assert not torch.allclose(a[:, 1:-3], b[:, 1:-3], atol=1e-4)


def test_late_fusion_trains_on_exams_without_numbers() -> None:
    m = _model(fusion="late").train()
    px, mk = _exam(m, 3)
    ms = torch.tensor([[float("nan")] * 3, [30.0, float("nan"), 1.2], [float("nan")] * 3])
    emb = m.encode_exam(px, mk, ms)
    assert torch.isfinite(emb).all()
    emb.sum().backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert m.visual.measure.value_in.grad is not None and m.visual.measure.value_in.grad.abs().sum() > 0


def test_late_fusion_needs_attention_pooling() -> None:
    d = copy.deepcopy(TINY)
    d["model"]["image"].update({"measurements": list(NAMES), "pooling": "cls", "measurement_fusion": "late"})
    with pytest.raises(ValueError, match="attention"):
        Config.from_dict(d)
    d["model"]["image"].update({"pooling": "attention", "measurement_fusion": "early"})
    with pytest.raises(ValueError, match="'joint' or 'late'"):
        Config.from_dict(d)


def test_number_features_are_flat_beyond_the_outer_knots_and_monotone_inside() -> None:
    from cmr.model.measurements import MEASUREMENT_SCALES, MeasurementEncoder

    enc = MeasurementEncoder(("lvedvi_ml_m2",), 8)
    c, sc = MEASUREMENT_SCALES["lvedvi_ml_m2"]
    z = torch.linspace(-6, 6, 121)
    feats, missing = enc.features((c + sc * z)[:, None])
    assert not missing.any()
    f = feats[:, 0]  # [121, K]
    assert (f.diff(dim=0) >= -1e-6).all()  # every feature rises with the value (a monotone basis)
    beyond_hi, beyond_lo = z >= max(enc.KNOTS) + 1, z <= min(enc.KNOTS)
    torch.testing.assert_close(f[beyond_hi], f[beyond_hi][:1].expand_as(f[beyond_hi]))  # a huge LV = very big
    torch.testing.assert_close(f[beyond_lo], torch.zeros_like(f[beyond_lo]))
    nan_feats, nan_missing = enc.features(torch.tensor([[float("nan")]]))
    assert nan_missing.all() and (nan_feats == 0).all()


def test_a_ventricle_the_quality_check_calls_implausible_gives_no_tokens() -> None:
    ok = {"lvef_pct": 55.0, "rvef_pct": 50.0, "lvedv_ml": 150.0, "rvedv_ml": 160.0, "lv_mass_g": 110.0}
    assert all(v is not None for k, v in derive(ok).items() if k != "lvesvi_ml_m2")
    rv_failed = derive({**ok, "rvef_pct": -25.0, "rvedv_ml": 10.0})  # RV missed at end-diastole
    assert rv_failed["rvef_pct"] is rv_failed["rvedvi_ml_m2"] is rv_failed["rv_lv_edv_ratio"] is None
    assert rv_failed["lvef_pct"] == 55.0 and rv_failed["lv_mass_edv_ratio"] is not None
    lv_failed = derive({**ok, "lvedv_ml": 9.0})  # an LVEDV of 9 ml is no ventricle
    assert all(v is None for k, v in lv_failed.items() if k not in ("rvef_pct", "rvedvi_ml_m2"))
    assert lv_failed["rvef_pct"] == 50.0 and lv_failed["rvedvi_ml_m2"] is not None  # the RV stands on its own
    assert derive({**ok, "lvef_pct": 95.0})["lvef_pct"] is None


@torch.no_grad()
def test_sum_pooled_numbers_add_up_each_number_on_its_own() -> None:
    m = _model(fusion="late", number_pool="sum", depth=0)
    px, mk = _exam(m, 1)
    nan = float("nan")
    both = torch.tensor([[30.0, 120.0, nan]])
    only_ef, only_edv = torch.tensor([[30.0, nan, nan]]), torch.tensor([[nan, 120.0, nan]])
    none_ = torch.tensor([[nan, nan, nan]])

    def numbers_part(v: torch.Tensor) -> torch.Tensor:  # the summed number parts, before normalisation
        return m.visual.token_contributions(px, mk, v)[:, -3:].sum(1)

    torch.testing.assert_close(numbers_part(both), numbers_part(only_ef) + numbers_part(only_edv))
    assert numbers_part(none_).abs().max() == 0


def test_config_rejects_an_unknown_number_pool() -> None:
    d = copy.deepcopy(TINY)
    d["model"]["image"].update({"measurements": list(NAMES), "pooling": "attention", "measurement_fusion": "late",
                                "measurement_pool": "max"})
    with pytest.raises(ValueError, match="'attention' or 'sum'"):
        Config.from_dict(d)


@torch.no_grad()
def test_balanced_late_fusion_gives_the_frames_and_the_numbers_equal_weight() -> None:
    m = _model(fusion="late", number_pool="sum", depth=0, balance=True)
    px, mk = _exam(m, 2)
    nan = float("nan")
    ms = torch.tensor([[30.0, 120.0, 1.4], [nan, nan, nan]])
    parts = m.visual.token_contributions(px, mk, ms)  # before the projection
    frames, numbers = parts[:, :-3].sum(1), parts[:, -3:].sum(1)
    torch.testing.assert_close(frames.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(numbers.norm(dim=-1), torch.tensor([1.0, 0.0]))  # no numbers: no numbers part
    # Scaling the numbers' values' effect up cannot outweigh the frames any more.
    m.visual.measure_pool.value.weight.mul_(100.0)
    again = m.visual.token_contributions(px, mk, ms)
    torch.testing.assert_close(again[:, -3:].sum(1).norm(dim=-1), torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(again[:, :-3], parts[:, :-3])


def test_balance_needs_late_fusion() -> None:
    d = copy.deepcopy(TINY)
    d["model"]["image"].update({"measurements": list(NAMES), "pooling": "attention", "measurement_fusion": "joint",
                                "measurement_balance": True})
    with pytest.raises(ValueError, match="measurement_balance needs"):
        Config.from_dict(d)
