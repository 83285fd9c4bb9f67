"""The text backbone is any local Hugging Face BERT-style directory, not only the bundled MiniLM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cmr.model.checkpoint import create_model
from cmr.model.config import Config
from cmr.model.text_encoder import backbone_fingerprint, resolve_backbone


@pytest.fixture(scope="module")
def saved_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import AutoModel, AutoTokenizer

    src = resolve_backbone("minilm")
    dst = tmp_path_factory.mktemp("backbone") / "mybert"
    AutoModel.from_pretrained(src).save_pretrained(dst)
    AutoTokenizer.from_pretrained(src).save_pretrained(dst)
    return dst


def test_minilm_resolves_to_a_model_directory() -> None:
    p = resolve_backbone("minilm")
    assert (p / "config.json").is_file()
    assert any(p.glob("*.safetensors")) or any(p.glob("*.bin"))


@torch.no_grad()
def test_local_bert_directory_gives_same_embeddings_as_minilm(saved_bert: Path, tiny_dict: dict) -> None:
    texts = ["dilated left ventricle with reduced systolic function", "no late gadolinium enhancement"]
    ref = create_model(Config.from_dict(tiny_dict), seed=7).eval()
    tiny_dict["model"]["text"]["backbone"] = str(saved_bert)
    mine = create_model(Config.from_dict(tiny_dict), seed=7).eval()
    assert mine.text.model_dir == saved_bert
    e_ref, e_mine = ref.encode_text(texts), mine.encode_text(texts)
    assert e_mine.shape == (2, 16)
    assert torch.allclose(e_ref, e_mine, atol=1e-5)
    # The frozen/fine-tuned split applies to any backbone.
    assert mine.text.n_frozen == ref.text.n_frozen
    assert set(mine.text.trainable_state_dict()) == set(ref.text.trainable_state_dict())


def test_fingerprint_depends_on_backbone_files(saved_bert: Path, tmp_path: Path) -> None:
    fp = backbone_fingerprint(saved_bert)
    assert fp == backbone_fingerprint(saved_bert)
    copy = tmp_path / "edited"
    copy.mkdir()
    for f in saved_bert.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    with (copy / "vocab.txt").open("a") as fh:
        fh.write("newtoken\n")
    assert backbone_fingerprint(copy) != fp


def test_folder_without_config_json(tmp_path: Path, tiny_dict: dict) -> None:
    folder = tmp_path / "notamodel"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    with pytest.raises(FileNotFoundError, match="config.json") as exc:
        resolve_backbone(str(folder))
    assert "notamodel" in str(exc.value)
    tiny_dict["model"]["text"]["backbone"] = str(folder)
    with pytest.raises(FileNotFoundError, match="config.json"):
        create_model(Config.from_dict(tiny_dict))


def test_missing_backbone_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a local Hugging Face model directory"):
        resolve_backbone(str(tmp_path / "does_not_exist"))
