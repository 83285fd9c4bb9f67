"""Under torchrun, rank 0 alone builds the exam cache and the other ranks wait at a barrier before opening it
(all ranks building at once would repeat the work and race on the same files); rank 0 reaches the barrier even
when building fails, so the others are not left waiting."""

from __future__ import annotations

from pathlib import Path

import pytest

import cmr.data.cache as cache_mod
import cmr.train.trainer as trainer
from cmr.model.config import Config
from tiny_config import TINY


class _Stop(Exception):
    pass


def _run_as(rank: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fail_build: bool = False) -> list[str]:
    calls: list[str] = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setattr(trainer.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(trainer.dist, "barrier", lambda: calls.append("barrier"))

    def build(*_a: object, **_k: object) -> None:
        calls.append("build")
        raise (RuntimeError("unreadable study folder") if fail_build else _Stop())

    monkeypatch.setattr(cache_mod, "build_cache", build)
    with pytest.raises((_Stop, RuntimeError)):
        trainer.train(Config.from_dict(TINY), tmp_path / "data", tmp_path / f"run{rank}", device="cpu",
                      progress=False)
    return calls


@pytest.mark.parametrize("rank, order", [(0, ["build", "barrier"]), (1, ["barrier", "build"])])
def test_rank_zero_builds_the_cache_while_the_others_wait(rank: int, order: list[str],
                                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _run_as(rank, monkeypatch, tmp_path) == order


def test_rank_zero_releases_the_others_when_building_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert _run_as(0, monkeypatch, tmp_path, fail_build=True) == ["build", "barrier"]
