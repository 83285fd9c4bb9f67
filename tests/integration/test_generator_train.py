"""CMR-TARGET training end to end on four synthetic studies with a tiny CMR-CLIP: the exam-token feature
cache, a tiny decoder overfitting the four impressions (greedy drafts state the same findings), checkpoints,
metrics, `--resume`, and refusal of a mismatched CLIP version, through `train_generator` and the CLI."""

from __future__ import annotations

import copy
import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from cmr.data.cache import build_cache
from cmr.generator import Decoding, GeneratorCheckpointError, load_generator, read_generator_checkpoint
from cmr.generator.config import DecoderConfig, GeneratorTrainConfig, TargetConfig
from cmr.generator.features import build_token_features
from cmr.generator.train import GeneratorTrainResult, train_generator
from cmr.generator.vocab import impression_sentences
from cmr.labels import FINDINGS
from cmr.generator.checkpoint import load_exam_encoder
from cmr.model.checkpoint import checkpoint_version, create_model, read_checkpoint, save_checkpoint
from cmr.model.config import Config
from cmr.model.image_encoder import ExamEncoder
from cmr.reports import label_report
from cmr.synth.generate import generate_dataset
from orchestration.cli import generator_cmd
from tiny_config import TINY

N_STUDIES = 4
EPOCHS = 150
runner = CliRunner()


@pytest.fixture(scope="session")
def target_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("target_synth") / "data"
    generate_dataset(out, N_STUDIES, 11, workers=1, scanner="ge_signa_1.5T", phrasing="train", progress=False)
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny CMR-CLIP checkpoints with different image weights (so different versions)."""
    d = tmp_path_factory.mktemp("clips")
    cfg = Config.from_dict(copy.deepcopy(TINY))
    model = create_model(cfg, seed=0)
    paths = []
    for seed, name in ((0, "clip-a.pt"), (1, "clip-b.pt")):
        torch.manual_seed(seed)
        model.visual = ExamEncoder(cfg.model.image, cfg.model.exam)  # the text side is shared: MiniLM loads once
        with torch.no_grad():  # an untrained CNN barely tells these four exams apart; let the pixels speak louder
            for layer in model.visual.frames.body:
                if isinstance(layer, torch.nn.Conv2d):
                    layer.weight.mul_(3.0)
            model.visual.frames.head.weight.mul_(30.0)
        save_checkpoint(d / name, model)
        paths.append(d / name)
    return paths[0], paths[1]


def _config(clip: Path, **train: object) -> TargetConfig:
    base = dict(epochs=EPOCHS, batch_size=4, lr=1e-2, warmup_steps=10, val_fraction=0.0, label_smoothing=0.0,
                memory_drop=0.0, val_generate_every=0, patience=10_000, threads=1)
    return TargetConfig(name="tiny", clip=str(clip),
                        model=DecoderConfig(layers=2, width=64, heads=4, dropout=0.0, max_tokens=48, max_sentences=12),
                        train=GeneratorTrainConfig(**{**base, **train}))


@pytest.fixture(scope="module")
def overfit(target_data: Path, clips: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> GeneratorTrainResult:
    out = tmp_path_factory.mktemp("target_run") / "run"
    return train_generator(_config(clips[0]), target_data, out, progress=False)


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


def _exam_tokens(clip_path: Path, data: Path) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """What a service would feed the generator: the CLIP image encoder's tokens of each study."""
    encoder = load_exam_encoder(clip_path)
    cache = build_cache(data, encoder.spec, workers=1, progress=False)
    px = torch.from_numpy(np.array(cache.pixels)).float() / 255.0
    with torch.no_grad():
        tokens, pad = encoder.forward_tokens(px, torch.from_numpy(cache.mask))
    return tokens, pad, [r.impression for r in cache.records]


def test_overfit_drafts_state_the_training_findings(overfit: GeneratorTrainResult, target_data: Path,
                                                    clips: tuple[Path, Path]) -> None:
    assert overfit.stopped == "epochs" and overfit.epochs == EPOCHS and (overfit.n_train, overfit.n_val) == (4, 0)
    assert overfit.clip_version == checkpoint_version(clips[0])
    gen = load_generator(overfit.best_checkpoint, clips[0])
    tokens, pad, impressions = _exam_tokens(clips[0], target_data)
    for i, reference in enumerate(impressions):
        sentences = list(gen.generate(tokens[i], pad[i], Decoding(numbered=False)))
        drafted, truth = label_report(" ".join(sentences)), label_report(reference)
        assert {f: drafted.state(f) for f in FINDINGS} == {f: truth.state(f) for f in FINDINGS}, (sentences, reference)
        assert drafted.disease == truth.disease
        assert len(sentences) == len(impression_sentences(reference))
        beam = list(gen.generate(tokens[i], pad[i], Decoding(strategy="beam", beam_width=3, numbered=False)))
        assert beam and all(s[-1] == "." for s in beam)  # whole memorised sentences (which ones: length-normalised)


def test_run_outputs(overfit: GeneratorTrainResult, target_data: Path, clips: tuple[Path, Path]) -> None:
    run = overfit.best_checkpoint.parent
    rows = _metrics(run)
    assert len(rows) == EPOCHS and [int(r["epoch"]) for r in rows[:3]] == [1, 2, 3]
    assert set(rows[0]) >= {"epoch", "step", "train_loss", "val_loss", "val_macro_f1", "lr", "elapsed_s"}
    assert float(rows[-1]["train_loss"]) < 0.25 * float(rows[0]["train_loss"])
    best = read_generator_checkpoint(run / "best.pt")
    assert best["clip_version"] == checkpoint_version(clips[0]) and best["tokenizer"] == "minilm"
    assert "train_state" not in best and best["meta"]["epoch"] == EPOCHS
    last = read_generator_checkpoint(run / "last.pt")
    assert last["train_state"]["epoch"] == EPOCHS  # last.pt is a full generator checkpoint plus the optimizer
    assert load_generator(run / "last.pt", clips[0]).vocab.wordpiece_ids == best["vocab"]["wordpiece_ids"].tolist()
    # The exam-token cache holds what CLIP computes (float16), keyed by the CLIP version.
    tokens, pad, _ = _exam_tokens(clips[0], target_data)
    feats = build_token_features(target_data, load_exam_encoder(clips[0]), checkpoint_version(clips[0]), workers=1,
                                 progress=False)
    assert feats.tokens.dtype == np.float16 and feats.tokens.shape == tuple(tokens.shape) and feats.ok.all()
    assert np.array_equal(feats.pad, pad.numpy())
    assert np.allclose(feats.tokens.astype(np.float32), tokens.numpy(), atol=2e-2)
    assert checkpoint_version(clips[0]).replace("@", "_") in str(feats.root)


def test_exam_encoder_alone_carries_the_clip_image_weights(clips: tuple[Path, Path]) -> None:
    encoder = load_exam_encoder(clips[1])
    state = read_checkpoint(clips[1])["state"]
    assert not encoder.training
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, state[f"visual.{k}"]), k
    with pytest.raises(FileNotFoundError):
        load_exam_encoder(clips[1].with_name("missing.pt"))


def test_a_generator_is_refused_for_another_clip(overfit: GeneratorTrainResult, clips: tuple[Path, Path]) -> None:
    with pytest.raises(GeneratorCheckpointError, match=f"trained on CMR-CLIP {checkpoint_version(clips[0])}"):
        load_generator(overfit.best_checkpoint, clips[1])
    with pytest.raises(GeneratorCheckpointError, match="trained on CMR-CLIP"):
        load_generator(overfit.best_checkpoint, clip_version=checkpoint_version(clips[1]))


def _cli() -> typer.Typer:
    app = typer.Typer()
    generator_cmd.register(app)

    @app.callback()
    def _root() -> None:  # a group, so the command is addressed by name as in `cmr train-generator`
        pass

    return app


def test_cli_train_resume_and_refusals(target_data: Path, clips: tuple[Path, Path], tmp_path: Path) -> None:
    cfg = _config(clips[0], epochs=1, val_fraction=0.25, val_generate_every=1, lr=3e-3)
    cfg_path = tmp_path / "tiny_target.json"
    cfg_path.write_text(json.dumps(cfg.to_dict()))
    out = tmp_path / "run"
    app = _cli()
    base = ["train-generator", "--config", str(cfg_path), "--data", str(target_data), "--out", str(out), "--workers", "1"]

    r = runner.invoke(app, base)
    assert r.exit_code == 0, r.output
    assert "1 epochs (epochs)" in r.output and str(out / "best.pt") in r.output
    rows = _metrics(out)
    assert len(rows) == 1 and rows[0]["val_loss"] and rows[0]["val_macro_f1"] != ""  # 1 validation study, decoded
    assert 0.0 <= float(rows[0]["val_macro_f1"]) <= 1.0

    r = runner.invoke(app, base)
    assert r.exit_code == 2 and "already holds a training run" in r.output

    r = runner.invoke(app, [*base, "--resume", "--set", "epochs=2"])
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output and "2 epochs" in r.output
    rows = _metrics(out)
    assert [int(x["epoch"]) for x in rows] == [1, 2] and int(rows[1]["step"]) > int(rows[0]["step"])
    assert read_generator_checkpoint(out / "last.pt")["train_state"]["epoch"] == 2

    r = runner.invoke(app, [*base, "--resume", "--set", "epochs=3", "--set", f"clip={json.dumps(str(clips[1]))}"])
    assert r.exit_code == 2
    assert f"trained on CMR-CLIP {checkpoint_version(clips[0])}" in r.output and checkpoint_version(clips[1]) in r.output
    r = runner.invoke(app, [*base, "--resume", "--set", "epochs=3", "--set", "model.layers=1"])
    assert r.exit_code == 2 and "another decoder config" in r.output
    assert len(_metrics(out)) == 2  # refused runs changed nothing

    r = runner.invoke(app, [*base[:-4], "--out", str(tmp_path / "fresh"), "--resume"])
    assert r.exit_code == 2 and "nothing to resume" in r.output
    r = runner.invoke(app, [*base, "--set", "epochs=1.5"])
    assert r.exit_code == 2 and "epochs takes a int" in r.output
    r = runner.invoke(app, [*base, "--config", "no_such_config"])
    assert r.exit_code == 2 and "no CMR-TARGET config" in r.output
    cfg_missing_clip = {**cfg.to_dict(), "clip": str(tmp_path / "missing.pt")}
    (tmp_path / "bad.json").write_text(json.dumps(cfg_missing_clip))
    r = runner.invoke(app, ["train-generator", "--config", str(tmp_path / "bad.json"), "--data", str(target_data),
                            "--out", str(tmp_path / "run3")])
    assert r.exit_code == 2 and "does not exist" in r.output
    assert asdict(cfg.model)  # the config object is plain data
