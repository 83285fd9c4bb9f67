"""GIF/PNG montages of a study."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cmr.dicom import NoCineError, Series, Study, load_study
from cmr.dicom.geometry import PRIOR_LV_LONG_AXIS
from cmr.render import MAX_GIF_FRAMES, TILE_PX, collect_tiles, render_study
from realdata_paths import SUNNYBROOK_MIDSLICE as MIDSLICE


def _iop(normal: np.ndarray) -> np.ndarray:
    ref = [1.0, 0.0, 0.0] if abs(normal[2]) > 0.9 else [0.0, 0.0, 1.0]
    row = np.cross(normal, ref)
    row /= np.linalg.norm(row)
    return np.concatenate([row, np.cross(normal, row)])


def _series(kind: str, view: str, normal: np.ndarray, slices: int, phases: int, number: int) -> Series:
    rng = np.random.default_rng(number)
    pixels = rng.uniform(0, 100, (slices, phases, 20, 20)).astype(np.float32)
    positions = np.array([normal * 8.0 * k for k in range(slices)])
    times = np.tile(np.arange(phases) * 40.0, (slices, 1))
    return Series(key=f"s{number}", series_instance_uid=f"1.2.{number}", pixels=pixels, orientation=_iop(normal),
                  positions=positions, pixel_spacing=(2.0, 2.0), trigger_times=times, distinct_phases=phases,
                  series_number=number, kind=kind, view=view)  # type: ignore[arg-type]


@pytest.fixture
def full() -> Study:
    u = PRIOR_LV_LONG_AXIS
    lax = np.cross(u, [0.0, 0.0, 1.0])
    lax /= np.linalg.norm(lax)
    series = [
        _series("cine", "sax", u, 6, 20, 1), _series("cine", "4ch", lax, 1, 20, 2),
        _series("cine", "2ch", lax, 1, 25, 3), _series("cine", "3ch", lax, 1, 20, 4),
        _series("lge", "sax", u, 6, 1, 5), _series("lge", "4ch", lax, 1, 1, 6),
        _series("lge", "2ch", lax, 1, 1, 7), _series("lge", "3ch", lax, 1, 1, 8),
        _series("localizer", "axial", np.array([0.0, 0.0, 1.0]), 1, 1, 9),
    ]
    return Study(study_instance_uid="1.2.3", series=series, n_files=0)


def test_tiles_of_a_full_study(full: Study) -> None:
    labels = [t.label for t in collect_tiles(full)]
    assert labels == ["SAX base", "SAX mid", "SAX apex", "4CH", "2CH", "3CH",
                      "LGE SAX", "LGE 4CH", "LGE 2CH", "LGE 3CH"]


def test_gif_is_an_animated_grid(full: Study, tmp_path: Path) -> None:
    out = render_study(full, tmp_path / "x.gif")
    with Image.open(out) as im:
        assert im.size == (4 * TILE_PX, 3 * TILE_PX)
        assert im.n_frames == MAX_GIF_FRAMES and im.is_animated
        im.seek(3)
        frame3 = np.asarray(im.convert("L"))
        im.seek(4)
        assert not np.array_equal(frame3, np.asarray(im.convert("L")))  # the cine tiles move


def test_png_is_static(full: Study, tmp_path: Path) -> None:
    out = render_study(full, tmp_path / "sub" / "x.png")
    with Image.open(out) as im:
        assert im.size == (4 * TILE_PX, 3 * TILE_PX) and not getattr(im, "is_animated", False)


def test_sunnybrook_gif(tmp_path: Path) -> None:
    out = render_study(load_study(MIDSLICE), tmp_path / "sb.gif")
    with Image.open(out) as im:
        assert im.size == (TILE_PX, TILE_PX) and im.n_frames == MAX_GIF_FRAMES
    assert out.stat().st_size < 1_000_000


def test_bad_suffix_and_nothing_to_render(full: Study, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        render_study(full, tmp_path / "x.jpg")
    only_localizer = Study(study_instance_uid="1", series=[full.series[-1]], n_files=1)
    with pytest.raises(NoCineError):
        render_study(only_localizer, tmp_path / "x.png")
