"""Training and evaluation end to end on eight synthetic studies with a tiny model: the exam cache, the
training loop (metrics, checkpoints, resume), the evaluation results schema, and `cmr embed|eval|train|cache`."""

from __future__ import annotations

import copy
import csv
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cmr.data import build_cache, read_records
from cmr.data import cache as cache_mod
from cmr.dicom import load_study
from cmr.labels import DISEASES, FINDINGS
from cmr.model.checkpoint import load_model, read_checkpoint
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config
from cmr.model.inference import embed_studies, embed_texts
from cmr.synth.generate import generate_dataset
from cmr.train.trainer import TrainingError, train
from orchestration.cli.main import app
from tiny_config import TINY

N_STUDIES = 8
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_cfg() -> Config:
    return Config.from_dict(copy.deepcopy(TINY))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    generate_dataset(out, N_STUDIES, 5, workers=1, scanner="ge_signa_1.5T", phrasing="train", progress=False)
    return out


@pytest.fixture(scope="module")
def cached(data: Path, tiny_cfg: Config):  # noqa: ANN201 - ExamCache
    return build_cache(data, tiny_cfg.model.exam, workers=1, progress=False)


@pytest.fixture(scope="module")
def run_dir(cached, data: Path, tiny_cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: ANN001
    out = tmp_path_factory.mktemp("run") / "run"
    result = train(tiny_cfg, data, out, workers=1, progress=False)
    assert result.epochs == 2 and result.stopped == "epochs"
    assert (result.n_train, result.n_val) == (6, 2)
    assert result.best_checkpoint == out / "best.pt"
    return out


@pytest.fixture(scope="module")
def model(run_dir: Path) -> CMRCLIP:
    return load_model(run_dir / "best.pt")


def _metrics(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as fh:
        return list(csv.DictReader(fh))


# --- exam cache -------------------------------------------------------------------------------------------


def test_cache_holds_every_study(cached, data: Path, tiny_cfg: Config) -> None:  # noqa: ANN001
    spec = tiny_cfg.model.exam
    assert len(cached.records) == N_STUDIES
    assert cached.ok.all() and cached.done.all() and cached.errors == {}
    assert cached.pixels.shape == (N_STUDIES, spec.length, spec.image_size, spec.image_size)
    assert cached.pixels.dtype == np.uint8 and cached.mask.dtype == bool
    assert cached.mask.any(1).all()
    assert all(cached.pixels[i][cached.mask[i]].max() > 0 for i in range(N_STUDIES))  # not blank
    # The cached tensor is the loader's exam, quantised to 8 bits.
    rec = cached.records[3]
    exam = load_study(data / rec.folder).to_exam(spec)
    px, mk = cached.exam(3)
    assert np.array_equal(mk, exam.mask)
    assert np.abs(px - exam.pixels).max() <= 0.5 / 255 + 1e-6


def test_cache_second_build_is_a_no_op(cached, data: Path, tiny_cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    before = np.array(cached.pixels)

    def must_not_load(*args: object) -> None:
        raise AssertionError("a cached study was loaded again")

    monkeypatch.setattr(cache_mod, "_load_one", must_not_load)
    t0 = time.perf_counter()
    again = build_cache(data, tiny_cfg.model.exam, workers=1, progress=False)
    assert time.perf_counter() - t0 < 5.0
    assert again.ok.all() and again.errors == {}
    assert np.array_equal(np.array(again.pixels), before)
    assert np.array_equal(again.mask, cached.mask)


def test_cache_records_unloadable_study(cached, data: Path, tiny_cfg: Config, tmp_path: Path) -> None:  # noqa: ANN001
    copy_dir = tmp_path / "data"
    copy_dir.mkdir()
    lines = (data / "reports.jsonl").read_text().splitlines()[:2]
    for line in lines:
        folder = json.loads(line)["folder"]
        shutil.copytree(data / folder, copy_dir / folder)
    junk = copy_dir / "studies" / "broken_study"
    junk.mkdir(parents=True)
    (junk / "IM0001.dcm").write_bytes(b"not a dicom file at all" * 20)
    bad = dict(json.loads(lines[0]), folder="studies/broken_study")
    (copy_dir / "reports.jsonl").write_text("\n".join([*lines, json.dumps(bad)]) + "\n")

    c = build_cache(copy_dir, tiny_cfg.model.exam, workers=1, progress=False)
    assert c.done.all()
    assert c.ok.tolist() == [True, True, False]
    assert list(c.errors) == ["studies/broken_study"]
    reason = c.errors["studies/broken_study"]
    assert isinstance(reason, str) and len(reason) > 10
    # The error is remembered: reopening does not retry, and training uses only the good studies.
    again = build_cache(copy_dir, tiny_cfg.model.exam, workers=1, progress=False)
    assert again.errors == c.errors and again.ok.tolist() == [True, True, False]


def test_cache_grows_with_the_data_set_without_reloading(cached, data: Path, tiny_cfg: Config, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """More studies in reports.jsonl: only the new ones are loaded, the cached rows are carried over."""
    copy_dir = tmp_path / "grow"
    shutil.copytree(data, copy_dir, ignore=shutil.ignore_patterns("cache"))
    lines = (data / "reports.jsonl").read_text().splitlines()
    (copy_dir / "reports.jsonl").write_text("\n".join(lines[:5]) + "\n")
    first = build_cache(copy_dir, tiny_cfg.model.exam, workers=1, progress=False)
    assert first.ok.all() and len(first.records) == 5
    loaded: list[int] = []
    real = cache_mod._load_one

    def counting(args):  # noqa: ANN001, ANN202
        loaded.append(args[0])
        return real(args)

    monkeypatch.setattr(cache_mod, "_load_one", counting)
    (copy_dir / "reports.jsonl").write_text("\n".join(lines[2:] + lines[:2]) + "\n")  # reordered and grown
    grown = build_cache(copy_dir, tiny_cfg.model.exam, workers=1, progress=False)
    assert grown.ok.all() and len(grown.records) == N_STUDIES
    assert sorted(grown.records[i].folder for i in loaded) == sorted(json.loads(x)["folder"] for x in lines[5:])
    for i, rec in enumerate(grown.records):  # every row matches the original cache of that study
        j = [r.folder for r in cached.records].index(rec.folder)
        assert np.array_equal(grown.pixels[i], cached.pixels[j]) and np.array_equal(grown.mask[i], cached.mask[j])


def test_cache_of_missing_data_dir(tmp_path: Path, tiny_cfg: Config) -> None:
    with pytest.raises(FileNotFoundError, match="reports.jsonl"):
        build_cache(tmp_path / "nothing", tiny_cfg.model.exam, workers=1, progress=False)


# --- training ---------------------------------------------------------------------------------------------


def test_train_writes_metrics_and_checkpoints(run_dir: Path, model: CMRCLIP, tiny_cfg: Config) -> None:
    rows = _metrics(run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        assert np.isfinite(float(r["train_loss"])) and np.isfinite(float(r["val_loss"]))
        assert float(r["temperature"]) > 0
    assert int(rows[1]["step"]) > int(rows[0]["step"]) > 0
    assert (run_dir / "last.pt").is_file()
    assert model.cfg == tiny_cfg.model and not model.training
    meta = read_checkpoint(run_dir / "best.pt")["meta"]
    assert meta["epoch"] in (1, 2)
    # Training changed the weights (the checkpoint is not the initialisation).
    from cmr.model.checkpoint import create_model

    init = create_model(tiny_cfg, seed=tiny_cfg.train.seed)
    assert not torch.equal(init.image_proj.weight, model.image_proj.weight)


def test_train_refuses_to_overwrite_a_run(run_dir: Path, data: Path, tiny_cfg: Config) -> None:
    before = (run_dir / "metrics.csv").read_text()
    with pytest.raises(TrainingError, match="resume"):
        train(tiny_cfg, data, run_dir, workers=1, progress=False)
    assert (run_dir / "metrics.csv").read_text() == before


def test_resume_without_a_run_raises(data: Path, tiny_cfg: Config, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="nothing to resume"):
        train(tiny_cfg, data, tmp_path / "fresh", resume=True, workers=1, progress=False)


def test_resume_continues_the_run(run_dir: Path, data: Path, tiny_cfg: Config, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    cfg3 = Config(tiny_cfg.model, replace(tiny_cfg.train, epochs=3))
    result = train(cfg3, data, run, resume=True, workers=1, progress=False)
    assert result.epochs == 3
    rows = _metrics(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert int(rows[2]["step"]) > int(rows[1]["step"])
    assert torch.load(run / "last.pt", map_location="cpu", weights_only=True)["epoch"] == 3
    load_model(run / "best.pt")


def test_supervised_ceiling_trains_predicts_and_joins_the_evaluation(cached, data: Path, tiny_cfg: Config,
                                                                    model: CMRCLIP, tmp_path: Path) -> None:  # noqa: ANN001
    from cmr.eval.run import run_evaluation
    from cmr.labels import DISEASES, FINDINGS
    from cmr.train.supervised import load_supervised, train_supervised

    res = train_supervised(tiny_cfg, data, tmp_path / "sup", workers=1, progress=False)
    assert res.checkpoint.exists() and res.epochs >= 1
    with pytest.raises(TrainingError, match="already"):
        train_supervised(tiny_cfg, data, tmp_path / "sup", workers=1, progress=False)
    sup = load_supervised(res.checkpoint)
    probs = sup.predict(cached.pixels[:3], cached.mask[:3])
    assert set(probs) == set(FINDINGS) | {f"disease:{d}" for d in DISEASES}
    assert all(p.shape == (3,) and ((p >= 0) & (p <= 1)).all() for p in probs.values())
    disease_sum = sum(probs[f"disease:{d}"] for d in DISEASES)
    assert np.allclose(disease_sum, 1.0, atol=1e-5)  # softmax over the diseases
    results = run_evaluation({"tiny": model}, [data], draws=2, progress=False, supervised={"ceiling": sup})
    entry = next(e for name, e in results["entries"].items() if name.startswith("ceiling"))
    assert set(entry["zero_shot"]) >= set(FINDINGS)
    assert "few_shot" not in entry and results["primary"].startswith("tiny")


# --- evaluation -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results(model: CMRCLIP, data: Path) -> dict[str, Any]:
    from cmr.eval.run import run_evaluation

    return run_evaluation({"tiny": model}, [data], draws=2, progress=False)


def test_evaluation_schema(results: dict[str, Any]) -> None:
    assert results["primary"] in results["entries"]
    [entry] = results["entries"].values()
    assert entry["model"] == "tiny" and entry["n_studies"] == N_STUDIES
    zs = entry["zero_shot"]
    assert set(FINDINGS) <= set(zs)
    for key, v in zs.items():
        assert v["auroc"] is None or 0.0 <= v["auroc"] <= 1.0, key
        assert 0 <= v["n_pos"] <= N_STUDIES
    assert any(v["auroc"] is not None for v in zs.values())
    # The diagnostic with training phrasings scores the same labels with other prompts.
    seen = entry["zero_shot_seen_phrasing"]
    assert set(seen) == set(zs) and all(seen[k]["n_pos"] == zs[k]["n_pos"] for k in zs)
    assert any(seen[k]["auroc"] != zs[k]["auroc"] for k in zs if zs[k]["auroc"] is not None)
    for direction in ("image_to_text", "text_to_image"):
        r = entry["retrieval"][direction]
        assert 0.0 <= r["R@1"] <= 1.0
    assert set(FINDINGS) <= set(entry["few_shot"])
    rob = entry["robustness"]
    assert -1.0 <= rob["drop_view_mean"] <= 1.0 + 1e-6
    json.dumps(results)  # the results are plain JSON data


def test_evaluation_leaves_autograd_on(results: dict[str, Any]) -> None:
    # run_evaluation is a library call: it must not switch off gradients for the rest of the process.
    assert torch.is_grad_enabled()


# --- command line -----------------------------------------------------------------------------------------


def _assert_one_line_error(result: Any, *contains: str) -> None:
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert err.startswith("error: ") and err.count("\n") == 1, err  # nothing else on stderr (no progress bars)
    assert all(c in err for c in contains), err
    assert "Traceback" not in result.output


def _vectors(stdout: str) -> list[np.ndarray]:
    return [np.array(item["vector"]) for item in json.loads(stdout)]


def test_cli_embed_text(run_dir: Path, model: CMRCLIP) -> None:
    r = runner.invoke(app, ["embed", "text", "dilated LV", "--json", "--checkpoint", str(run_dir / "best.pt")])
    assert r.exit_code == 0, r.output
    [item] = json.loads(r.stdout)
    assert item["input"] == "dilated LV" and item["dim"] == 16
    v = np.array(item["vector"])
    assert v.shape == (16,) and abs(np.linalg.norm(v) - 1.0) < 1e-4
    assert np.allclose(v, embed_texts(model, ["dilated LV"])[0], atol=1e-5)


def test_cli_embed_empty_text(run_dir: Path) -> None:
    r = runner.invoke(app, ["embed", "text", "  ", "--checkpoint", str(run_dir / "best.pt")])
    _assert_one_line_error(r, "empty")


def test_cli_embed_junk_study(run_dir: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\x00garbage" * 50)
    r = runner.invoke(app, ["embed", "study", str(junk), "--checkpoint", str(run_dir / "best.pt")])
    _assert_one_line_error(r, "junk.dcm")


def test_cli_embed_with_bad_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    r = runner.invoke(app, ["embed", "text", "dilated LV", "--checkpoint", str(bad)])
    _assert_one_line_error(r, "bad.pt")


def test_cli_embed_study(run_dir: Path, data: Path, model: CMRCLIP) -> None:
    folder = data / read_records(data)[0].folder
    r = runner.invoke(app, ["embed", "study", str(folder), "--json", "--checkpoint", str(run_dir / "best.pt")])
    assert r.exit_code == 0, r.output
    [v] = _vectors(r.stdout)
    assert v.shape == (16,) and abs(np.linalg.norm(v) - 1.0) < 1e-4
    assert np.allclose(v, embed_studies(model, [folder])[0], atol=1e-5)


def test_cli_eval(run_dir: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "res" / "results.json"
    r = runner.invoke(app, ["eval", "--data", str(data), "--checkpoint", str(run_dir / "best.pt"), "--out", str(out),
                            "--no-untrained-baseline", "--draws", "2"])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["primary"].startswith("tiny / ") and len(res["entries"]) == 1
    assert res["meta"]["checkpoint"] == str(run_dir / "best.pt") and res["meta"]["few_shot_draws"] == 2
    assert str(out) in r.stdout
    assert torch.is_grad_enabled()


def test_cli_train_missing_data(tmp_path: Path) -> None:
    r = runner.invoke(app, ["train", "--data", str(tmp_path / "no_such_data"), "--out", str(tmp_path / "run")])
    _assert_one_line_error(r, "no_such_data")
    assert not (tmp_path / "run").exists()


def test_cli_train_bad_set(tmp_path: Path, data: Path) -> None:
    for item in ("nonsense=1", "epochs", "epochs=", "lr=1e-3x", "epochs=abc"):
        r = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--set", item])
        _assert_one_line_error(r, "--set")
    assert not (tmp_path / "run").exists()


def test_cli_cache(data: Path, tmp_path: Path, cached) -> None:  # noqa: ANN001
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(TINY))
    r = runner.invoke(app, ["cache", str(data), "--config", str(cfg_path), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert f"{N_STUDIES} of {N_STUDIES} studies cached" in r.stdout and "0 rejected" in r.stdout


def test_cli_train_tiny_run(data: Path, tmp_path: Path, cached) -> None:  # noqa: ANN001
    cfg_path = tmp_path / "tiny.json"
    cfg_path.write_text(json.dumps(TINY))
    run = tmp_path / "run"
    args = ["train", "--config", str(cfg_path), "--data", str(data), "--out", str(run), "--workers", "1",
            "--set", "epochs=1", "--set", "max_minutes=5", "--set", "aug_crop_scale=[0.9, 1.0]"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "1 epochs" in r.stdout and str(run / "best.pt") in r.stdout
    assert len(_metrics(run)) == 1
    saved = Config.from_dict(read_checkpoint(run / "best.pt")["config"]).train
    assert (saved.epochs, saved.max_minutes, saved.aug_crop_scale) == (1, 5.0, (0.9, 1.0))
    # Same --out again without --resume: a one-line error, the run untouched.
    r = runner.invoke(app, args)
    _assert_one_line_error(r, "--resume")
    assert len(_metrics(run)) == 1


def test_torchrun_data_parallel_training(data: Path, cached, tmp_path: Path) -> None:  # noqa: ANN001
    """Two processes (gloo on CPU, as NCCL would on GPUs) train one model: same code path as multi-GPU."""
    import os
    import subprocess
    import sys

    cfg_path = tmp_path / "tiny.json"
    cfg = copy.deepcopy(TINY)
    cfg["train"]["epochs"] = 1
    cfg_path.write_text(json.dumps(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "orchestration.cli.main", "train", "--config", str(cfg_path), "--data", str(data), "--out", str(tmp_path / "ddp"),
         "--workers", "1"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "ddp" / "metrics.csv").open()))
    assert len(rows) == 1  # only rank 0 logs
    # 6 training studies form one global batch, split 3 + 3 over the two processes: one synchronised step.
    assert rows[0]["step"] == "1"
    load_model(tmp_path / "ddp" / "best.pt")


def test_cli_zeroshot_scores_every_finding_and_draws_a_chart(run_dir: Path, data: Path, tmp_path: Path) -> None:
    from cmr.labels import DISEASES

    folder = data / read_records(data)[0].folder
    chart = tmp_path / "z.png"
    result = runner.invoke(app, ["zeroshot", str(folder), "--checkpoint", str(run_dir / "best.pt"), "--json",
                                 "--out", str(chart)])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout.splitlines()[0])[folder.name]
    assert set(scores) == set(FINDINGS) | {f"disease:{d}" for d in DISEASES}
    assert all(-2.0 <= v <= 2.0 for v in scores.values())
    assert chart.stat().st_size > 5000 and chart.read_bytes()[:4] == b"\x89PNG"
    bad = runner.invoke(app, ["zeroshot", str(tmp_path / "nope"), "--checkpoint", str(run_dir / "best.pt")])
    assert bad.exit_code == 2 and "error:" in bad.output


def test_cli_calibrate_fits_saves_and_assesses(run_dir: Path, data: Path, tmp_path: Path) -> None:
    from cmr.findings import Calibration

    out, docs = tmp_path / "cal.json", tmp_path / "docs"
    result = runner.invoke(app, ["calibrate", "--data", str(data), "--checkpoint", str(run_dir / "best.pt"),
                                 "--out", str(out), "--assess", str(data), "--docs", str(docs)])
    assert result.exit_code == 0, result.output
    cal = Calibration.load(out)
    assert cal.fits and all(0 < f.prevalence < 1 for f in cal.fits.values())
    summary = json.loads((docs / "calibration.json").read_text())
    assert set(summary) == set(cal.fits) - {"phrase"} and (docs / "reliability.png").stat().st_size > 5000
    assert "ECE" in (docs / "calibration.md").read_text()
    bad = runner.invoke(app, ["calibrate", "--data", str(tmp_path / "nope"), "--checkpoint", str(run_dir / "best.pt")])
    assert bad.exit_code == 2 and "reports.jsonl" in bad.output


def test_cli_zeroshot_with_the_shipped_calibrated_model_gives_probabilities(data: Path) -> None:
    folder = data / read_records(data)[0].folder
    result = runner.invoke(app, ["zeroshot", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    probs = json.loads(result.stdout.splitlines()[0])[folder.name]
    assert all(0.0 <= v <= 1.0 for v in probs.values())
    assert set(probs) == {*FINDINGS, *(f"disease:{d}" for d in DISEASES)}  # every finding and disease
    text = runner.invoke(app, ["zeroshot", str(folder)])
    assert "Platt" in text.output


def test_cli_explain_splits_a_pair_similarity_per_view_and_number(run_dir: Path, data: Path, tmp_path: Path) -> None:
    """An attention-pooling model with measurement tokens: the parts sum to the cosine `cmr embed` gives; the
    CLS-pooled run says in one line why it cannot explain."""
    from cmr.model.checkpoint import create_model, save_checkpoint

    d: dict[str, Any] = copy.deepcopy(TINY)
    d["model"]["image"].update({"measurements": ["lvef_pct", "rv_lv_edv_ratio"], "pooling": "attention"})
    ckpt = tmp_path / "attn.pt"
    save_checkpoint(ckpt, create_model(Config.from_dict(d), seed=1))
    a, b = (str(data / r.folder) for r in read_records(data)[:2])
    chart = tmp_path / "why.png"
    r = runner.invoke(app, ["explain", a, b, "--checkpoint", str(ckpt), "--json", "--plot", str(chart)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    emb = runner.invoke(app, ["embed", "study", a, b, "--checkpoint", str(ckpt), "--json"])
    va, vb = _vectors(emb.stdout)
    assert out["cosine"] == pytest.approx(float(va @ vb), abs=1e-4)
    assert sum(p["contribution"] for p in out["parts"]) == pytest.approx(out["cosine"], abs=1e-4)
    assert {p["part"] for p in out["parts"]} >= {"cine_sax", "lvef_pct"}  # the shipped segmenter measured LVEF
    assert chart.read_bytes()[:4] == b"\x89PNG"
    _assert_one_line_error(runner.invoke(app, ["explain", a, b, "--checkpoint", str(run_dir / "best.pt")]),
                           "attention")


@pytest.fixture
def text_bank_spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What training put in its text bank ("texts") and which bank rows each batch read ("rows"; the last entry
    is the validation pass)."""
    from cmr.train import trainer as trainer_mod
    from cmr.train.text_bank import TextBank

    seen: dict[str, Any] = {"rows": []}
    build, batch = TextBank.build.__func__, TextBank.batch  # type: ignore[attr-defined]

    def spy_build(cls, model, texts, *args, **kwargs):  # noqa: ANN001, ANN202
        seen["texts"] = list(texts)
        return build(cls, model, texts, *args, **kwargs)

    def spy_batch(self, rows, device):  # noqa: ANN001, ANN202
        seen["rows"].append(rows.tolist())
        return batch(self, rows, device)

    monkeypatch.setattr(trainer_mod.TextBank, "build", classmethod(spy_build))
    monkeypatch.setattr(trainer_mod.TextBank, "batch", spy_batch)
    return seen


def _numbers_config(**train_options: Any) -> Config:
    """TINY with two late-fused, sum-pooled measurement tokens, one epoch, every number kept, plus train_options."""
    d: dict[str, Any] = copy.deepcopy(TINY)
    d["model"]["image"].update({"measurements": ["lvef_pct", "lvedvi_ml_m2"], "pooling": "attention",
                                "measurement_fusion": "late", "measurement_pool": "sum", "measurement_depth": 0})
    d["train"].update({"epochs": 1, "aug_drop_measure": 0.0, "aug_drop_all_measures": 0.0, **train_options})
    return Config.from_dict(d)


def test_numbers_only_exams_train_against_their_number_text(data: Path, cached, tmp_path: Path,  # noqa: ANN001
                                                            text_bank_spy: dict[str, Any]) -> None:
    """aug_numbers_text: an exam read from its numbers alone is paired with the sentences numbers can state
    (cmr.train.number_text), the validation loss still with the whole impression."""
    from cmr.train.number_text import number_text

    seen = text_bank_spy
    train(_numbers_config(aug_numbers_only=1.0, aug_numbers_text=True), data, tmp_path / "run", workers=1,
          progress=False)
    n = N_STUDIES
    texts = seen["texts"]
    assert len(texts) == 2 * n and texts[n:] == [number_text(t) for t in texts[:n]]
    assert any(a != b for a, b in zip(texts[:n], texts[n:]))  # some impression says more than numbers can
    train_rows, val_rows = seen["rows"][:-1], seen["rows"][-1]
    assert train_rows and all(r >= n for rows in train_rows for r in rows)  # every exam was numbers-only
    assert all(r < n for r in val_rows)


def test_single_number_exams_train_against_their_finding_text(data: Path, cached, tmp_path: Path,  # noqa: ANN001
                                                              text_bank_spy: dict[str, Any]) -> None:
    """aug_number_finding_text: an exam read from one number is paired with what its report says of that number's
    finding (cmr.train.number_text.finding_text); the bank holds one block of such texts per finding."""
    from cmr.train.number_text import NUMBER_FINDINGS, finding_text

    seen = text_bank_spy
    train(_numbers_config(aug_numbers_only=1.0, aug_single_number=1.0, aug_numbers_text=True,
                          aug_number_finding_text=True), data, tmp_path / "run", workers=1, progress=False)
    n = N_STUDIES
    texts = seen["texts"]
    assert len(texts) == (2 + len(NUMBER_FINDINGS)) * n
    for k, finding in enumerate(NUMBER_FINDINGS):
        assert texts[(2 + k) * n:(3 + k) * n] == [finding_text(t, finding) for t in texts[:n]]
    train_rows = [r for rows in seen["rows"][:-1] for r in rows]
    blocks = {r // n - 2 for r in train_rows}  # every exam read one number: LVEF's or LVEDVi's finding block
    assert train_rows and blocks <= {NUMBER_FINDINGS.index("lv_dysfunction"), NUMBER_FINDINGS.index("lv_dilation")}
    assert all(r < n for r in seen["rows"][-1])  # validation: the whole impressions
