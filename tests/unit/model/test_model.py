"""CMRCLIP on a tiny config: shapes and unit norms, masking semantics, the frozen/fine-tuned text split,
the CLIP loss, and the ViT frame-encoder variant."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cmr.model.checkpoint import create_model
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config
from cmr.model.loss import clip_loss


def _exam(model: CMRCLIP, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    spec = model.spec
    px = torch.rand(b, spec.length, spec.image_size, spec.image_size, generator=g)
    return px, torch.ones(b, spec.length, dtype=torch.bool)


def _slot_range(model: CMRCLIP, name: str) -> slice:
    start = 0
    for s in model.spec.slots:
        if s.name == name:
            return slice(start, start + s.length)
        start += s.length
    raise KeyError(name)


@torch.no_grad()
def test_encode_exam_shape_and_unit_norm(tiny_model: CMRCLIP) -> None:
    px, mk = _exam(tiny_model, 3)
    e = tiny_model.encode_exam(px, mk)
    assert e.shape == (3, 16) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.isfinite(e).all()
    # Different exams, different embeddings (the encoder is not constant).
    assert not torch.allclose(e[0], e[1], atol=1e-4)


@torch.no_grad()
def test_masked_frames_do_not_influence_embedding(tiny_model: CMRCLIP) -> None:
    px, mk = _exam(tiny_model, 2)
    mk[0, [1, 3, 5]] = False
    mk[1, 6] = False
    before = tiny_model.encode_exam(px, mk)
    changed = px.clone()
    changed[~mk] = torch.rand(int((~mk).sum()), *px.shape[2:]) * 7.0 - 3.0  # even absurd values
    after = tiny_model.encode_exam(changed, mk)
    assert torch.allclose(before, after, atol=1e-6)
    # ... whereas changing a frame that is present does change it.
    changed[0, 0] = 1.0 - changed[0, 0]
    assert not torch.allclose(tiny_model.encode_exam(changed, mk)[0], before[0], atol=1e-4)


@torch.no_grad()
def test_masked_frames_ignored_in_train_mode_too(tiny_dict: dict) -> None:
    tiny_dict["model"]["image"]["dropout"] = 0.0  # so that train mode is deterministic
    model = create_model(Config.from_dict(tiny_dict), seed=1)
    model.train()  # BatchNorm on batch statistics: those must come from present frames only
    px, mk = _exam(model, 2)
    mk[:, 2] = False
    a = model.encode_exam(px, mk)
    px2 = px.clone()
    px2[:, 2] = 0.5
    assert torch.allclose(a, model.encode_exam(px2, mk), atol=1e-5)


@torch.no_grad()
def test_exam_with_missing_slot_still_embeds(tiny_model: CMRCLIP) -> None:
    px, mk = _exam(tiny_model, 2)
    lge = _slot_range(tiny_model, "lge_sax")
    mk[:, lge] = False
    px[:, lge] = 0.0
    e = tiny_model.encode_exam(px, mk)
    assert e.shape == (2, 16) and torch.isfinite(e).all()
    assert torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    # Missing is not the same as present: the view's absence changes the embedding.
    full = tiny_model.encode_exam(px, torch.ones_like(mk))
    assert not torch.allclose(e, full, atol=1e-4)


@torch.no_grad()
def test_exam_with_only_one_slot_embeds(tiny_model: CMRCLIP) -> None:
    px, mk = _exam(tiny_model, 1)
    mk[:] = False
    mk[:, _slot_range(tiny_model, "cine_4ch")] = True
    e = tiny_model.encode_exam(px, mk)
    assert torch.isfinite(e).all() and abs(float(e.norm()) - 1.0) < 1e-5


@pytest.mark.parametrize("shape", [(2, 7, 32, 32), (2, 8, 32, 16), (2, 8, 64, 64)])
def test_wrong_exam_shape_raises(tiny_model: CMRCLIP, shape: tuple[int, ...]) -> None:
    px = torch.rand(*shape)
    mk = torch.ones(shape[:2], dtype=torch.bool)
    with pytest.raises(ValueError, match="exam spec"):
        tiny_model.encode_exam(px, mk)


def test_unbatched_exam_raises_value_error(tiny_model: CMRCLIP) -> None:
    with pytest.raises(ValueError):
        tiny_model.encode_exam(torch.rand(8, 32, 32), torch.ones(8, dtype=torch.bool))


@torch.no_grad()
def test_encode_text_unit_norm(tiny_model: CMRCLIP) -> None:
    texts = ["dilated LV with reduced ejection fraction", "normal study", "late enhancement"]
    e = tiny_model.encode_text(texts)
    assert e.shape == (3, 16)
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)
    # Batching and padding do not change a text's embedding.
    alone = tiny_model.encode_text([texts[1]])
    assert torch.allclose(alone[0], e[1], atol=1e-5)


def test_encode_text_empty_list_raises(tiny_model: CMRCLIP) -> None:
    with pytest.raises(ValueError):
        tiny_model.encode_text([])


@torch.no_grad()
def test_frozen_features_then_from_frozen_equals_forward(tiny_model: CMRCLIP) -> None:
    text = tiny_model.text
    tokens = text.tokenize(["short", "a much longer impression about the left ventricle and scar"])
    assert int(tokens["attention_mask"][0].sum()) < tokens["attention_mask"].shape[1]  # padding is exercised
    direct = text(tokens)
    split = text.from_frozen(text.frozen_features(tokens), tokens["attention_mask"])
    assert torch.allclose(direct, split, atol=1e-6)
    # And the layer-by-layer split agrees with the Hugging Face model run whole, mean pooled.
    hf = text.backbone(**tokens).last_hidden_state
    m = tokens["attention_mask"].unsqueeze(-1).float()
    pooled = (hf * m).sum(1) / m.sum(1)
    assert torch.allclose(direct, pooled, atol=1e-4)


def test_frozen_layers_stay_deterministic_in_train_mode(tiny_cfg: Config) -> None:
    model = create_model(tiny_cfg, seed=0)
    model.train()
    text = model.text
    assert not text.backbone.embeddings.training
    layers = text.backbone.encoder.layer
    assert all(not layers[i].training for i in range(text.n_frozen))
    assert all(layers[i].training for i in range(text.n_frozen, len(layers)))
    tokens = text.tokenize(["mild mitral regurgitation"])
    a, b = text.frozen_features(tokens), text.frozen_features(tokens)
    assert torch.equal(a, b)


def test_only_top_layers_trainable(tiny_model: CMRCLIP, tiny_cfg: Config) -> None:
    text = tiny_model.text
    n_layers = len(text.backbone.encoder.layer)
    k = tiny_cfg.model.text.trainable_layers
    top = {f"encoder.layer.{i}." for i in range(n_layers - k, n_layers)}
    trainable = {n for n, p in text.backbone.named_parameters() if p.requires_grad}
    frozen = {n for n, p in text.backbone.named_parameters() if not p.requires_grad}
    assert trainable and all(any(n.startswith(t) for t in top) for n in trainable)
    assert all(not any(n.startswith(t) for t in top) for n in frozen)
    assert any(n.startswith("embeddings.") for n in frozen)
    # All of the top layers' weights are trainable, and the state dict for a checkpoint is just those.
    top_params = {n for n, _ in text.backbone.named_parameters() if any(n.startswith(t) for t in top)}
    assert trainable == top_params
    assert set(text.trainable_state_dict()) == trainable
    # The image side and the projections train in full.
    assert all(p.requires_grad for p in tiny_model.visual.parameters())
    assert tiny_model.image_proj.weight.requires_grad and tiny_model.text_proj.weight.requires_grad


def test_zero_trainable_layers_freezes_backbone(tiny_dict: dict) -> None:
    d = tiny_dict
    d["model"]["text"]["trainable_layers"] = 0
    model = create_model(Config.from_dict(d))
    assert not any(p.requires_grad for p in model.text.backbone.parameters())
    assert model.text.trainable_state_dict() == {}


def test_too_many_trainable_layers_raises(tiny_dict: dict) -> None:
    d = tiny_dict
    d["model"]["text"]["trainable_layers"] = 99
    with pytest.raises(ValueError, match="trainable_layers"):
        create_model(Config.from_dict(d))


def test_grad_reaches_trainable_parts_only(tiny_cfg: Config) -> None:
    model = create_model(tiny_cfg, seed=0)
    model.train()
    px, mk = _exam(model, 2)
    tokens = model.text.tokenize(["dilated LV", "normal"])
    hid = model.text.frozen_features(tokens)
    img, txt = model(px, mk, hid, tokens["attention_mask"])
    clip_loss(img, txt, model.logit_scale.exp()).backward()
    top = model.text.backbone.encoder.layer[-1]
    assert all(p.grad is not None for p in top.parameters())
    assert model.text.backbone.embeddings.word_embeddings.weight.grad is None
    assert model.visual.cls.grad is not None and model.logit_scale.grad is not None


def test_clip_loss_matched_lower_than_shuffled() -> None:
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    txt = F.normalize(img + 0.1 * torch.randn(8, 16, generator=g), dim=-1)
    scale = torch.tensor(1 / 0.07)
    matched = clip_loss(img, txt, scale)
    shuffled = clip_loss(img, txt[torch.roll(torch.arange(8), 1)], scale)
    assert float(matched) < float(shuffled)
    assert float(matched) >= 0.0
    # Symmetric: swapping the roles of image and text gives the same loss.
    assert torch.allclose(matched, clip_loss(txt, img, scale), atol=1e-6)


def _ce(row: list[float], target: int, skip: set[int] = frozenset()) -> float:  # type: ignore[assignment]
    keep = [j for j in range(len(row)) if j not in skip]
    return -row[target] + math.log(sum(math.exp(row[j]) for j in keep))


def test_clip_loss_matches_hand_computation_with_groups() -> None:
    g = torch.Generator().manual_seed(3)
    img = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(4, 8, generator=g), dim=-1)
    txt[2] = txt[1]  # studies 1 and 2 have the identical impression
    scale = 5.0
    logits = (scale * img @ txt.t()).tolist()
    cols = [[logits[i][j] for i in range(4)] for j in range(4)]

    plain = sum(_ce(logits[i], i) for i in range(4)) / 4 + sum(_ce(cols[j], j) for j in range(4)) / 4
    assert math.isclose(float(clip_loss(img, txt, torch.tensor(scale))), plain / 2, rel_tol=1e-5)

    # With groups: 1 and 2 are not each other's negatives (in either direction); all else as before.
    skip = {0: set(), 1: {2}, 2: {1}, 3: set()}
    grouped = (sum(_ce(logits[i], i, skip[i]) for i in range(4)) / 4
               + sum(_ce(cols[j], j, skip[j]) for j in range(4)) / 4) / 2
    got = float(clip_loss(img, txt, torch.tensor(scale), torch.tensor([0, 5, 5, 7])))
    assert math.isclose(got, grouped, rel_tol=1e-5)
    assert got < plain / 2  # removing a (perfectly confusable) negative can only lower the loss


def test_clip_loss_groups_all_distinct_is_plain() -> None:
    g = torch.Generator().manual_seed(4)
    img = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    txt = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    s = torch.tensor(10.0)
    assert torch.allclose(clip_loss(img, txt, s), clip_loss(img, txt, s, torch.arange(5)), atol=1e-6)


@torch.no_grad()
def test_vit_frame_encoder_variant(tiny_dict: dict) -> None:
    d = tiny_dict
    d["model"]["image"] = {"frame_encoder": "vit", "patch_size": 16, "frame_width": 16, "frame_depth": 1,
                           "width": 16, "depth": 1, "heads": 2}
    model = create_model(Config.from_dict(d), seed=0).eval()
    assert type(model.visual.frames).__name__ == "ViTFrameEncoder"
    px, mk = _exam(model, 2)
    mk[1, 4:] = False
    e = model.encode_exam(px, mk)
    assert e.shape == (2, 16)
    assert torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    px2 = px.clone()
    px2[1, 4:] = 0.9
    assert torch.allclose(model.encode_exam(px2, mk), e, atol=1e-6)


def test_vit_patch_must_divide_image_size(tiny_dict: dict) -> None:
    d = tiny_dict
    d["model"]["image"] = {"frame_encoder": "vit", "patch_size": 12, "frame_width": 16, "frame_depth": 1,
                           "width": 16, "depth": 1, "heads": 2}
    with pytest.raises(ValueError, match="patch_size"):
        create_model(Config.from_dict(d))


def test_create_model_is_seeded(tiny_cfg: Config, tiny_model: CMRCLIP) -> None:
    other = create_model(tiny_cfg, seed=0)
    for (n, a), (_, b) in zip(tiny_model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), n
    different = create_model(tiny_cfg, seed=1)
    assert not torch.equal(different.image_proj.weight, tiny_model.image_proj.weight)
