"""CMR-TARGET checkpoints: weights_only-safe round trip, and refusal of a generator trained on other CMR-CLIP
weights, of damaged files and of other kinds of checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cmr.generator.checkpoint import (
    FORMAT,
    GeneratorCheckpointError,
    load_generator,
    read_generator_checkpoint,
    save_generator,
)
from cmr.generator.decoding import Decoding
from cmr.generator.model import TargetGenerator
from cmr.generator.vocab import EOR, ReportVocab
from cmr.model.checkpoint import DEFAULT_CHECKPOINT, checkpoint_version
from target_helpers import exam, make_generator


def _save(gen: TargetGenerator, path: Path, clip_version: str) -> Path:
    save_generator(path, gen.decoder, gen.vocab, gen.config, clip_version, meta={"epoch": 3})
    return path


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("clip") / "my-clip.pt"
    p.write_bytes(b"stand-in CLIP weights")  # only its version (name + content hash) matters here
    return p


def test_round_trip_gives_the_same_model_and_text(vocab: ReportVocab, clip_file: Path, tmp_path: Path) -> None:
    gen = make_generator(vocab, seed=1)
    with torch.no_grad():
        gen.decoder.out_bias[EOR] = -5.0
    path = _save(gen, tmp_path / "g.pt", checkpoint_version(clip_file))
    payload = torch.load(path, map_location="cpu", weights_only=True)  # plain data and tensors only
    assert payload["format"] == FORMAT and payload["tokenizer"] == "minilm"
    assert payload["clip_version"] == checkpoint_version(clip_file) and payload["meta"]["epoch"] == 3
    loaded = load_generator(path, clip_file)
    assert loaded.clip_version == checkpoint_version(clip_file) and loaded.config == gen.config
    for k, v in gen.decoder.state_dict().items():
        assert torch.equal(v, loaded.decoder.state_dict()[k]), k
    for d in (Decoding(), Decoding(strategy="beam"), Decoding(strategy="sample", seed=4)):
        assert list(loaded.generate(*exam(), d)) == list(gen.generate(*exam(), d))
    again = load_generator(path, clip_version=checkpoint_version(clip_file)).vocab
    assert (again.wordpiece_ids, again.casing, again.numbered) == (vocab.wordpiece_ids, vocab.casing, vocab.numbered)


def test_a_generator_of_other_clip_weights_is_refused(vocab: ReportVocab, clip_file: Path, tmp_path: Path) -> None:
    path = _save(make_generator(vocab), tmp_path / "g.pt", "cmr-clip-small@0123456789ab")
    with pytest.raises(GeneratorCheckpointError, match=r"trained on CMR-CLIP cmr-clip-small@0123456789ab.*my-clip@"):
        load_generator(path, clip_file)
    with pytest.raises(GeneratorCheckpointError, match="retrain the generator"):
        load_generator(path, clip_version="cmr-clip-small@ffffffffffff")
    with pytest.raises(GeneratorCheckpointError, match="trained on CMR-CLIP"):
        load_generator(path)  # its config names the shipped CLIP, whose version differs
    with pytest.raises(GeneratorCheckpointError, match="cannot check"):
        load_generator(path, tmp_path / "missing.pt")
    assert load_generator(path, clip_version="cmr-clip-small@0123456789ab").clip_version == "cmr-clip-small@0123456789ab"


def test_shipped_clip_is_the_default(vocab: ReportVocab, tmp_path: Path) -> None:
    path = _save(make_generator(vocab), tmp_path / "g.pt", checkpoint_version(DEFAULT_CHECKPOINT))
    assert load_generator(path).clip_version == checkpoint_version(DEFAULT_CHECKPOINT)
    assert load_generator(path, "shipped").clip_version == checkpoint_version(DEFAULT_CHECKPOINT)


def test_unusable_files_are_refused(vocab: ReportVocab, tmp_path: Path) -> None:
    with pytest.raises(GeneratorCheckpointError, match="does not exist"):
        read_generator_checkpoint(tmp_path / "none.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(GeneratorCheckpointError, match="not a readable checkpoint"):
        read_generator_checkpoint(junk)
    with pytest.raises(GeneratorCheckpointError, match="not a CMR-TARGET checkpoint"):
        read_generator_checkpoint(DEFAULT_CHECKPOINT)  # a CLIP checkpoint
    path = _save(make_generator(vocab), tmp_path / "g.pt", "v@1")
    payload = torch.load(path, weights_only=True)
    payload["state"].pop("out_bias")
    torch.save(payload, tmp_path / "broken.pt")
    with pytest.raises(GeneratorCheckpointError, match="does not match its config"):
        load_generator(tmp_path / "broken.pt", clip_version="v@1")
    payload = torch.load(path, weights_only=True)
    payload["tokenizer_fingerprint"] = "0" * 16
    torch.save(payload, tmp_path / "other_tok.pt")
    with pytest.raises(GeneratorCheckpointError, match="another tokenizer"):
        load_generator(tmp_path / "other_tok.pt", clip_version="v@1")
