"""`cmr dataset import --keep-series exam`: which series of a study are de-identified and written.

`cmr train` reads only the exam tensor, which is assembled from the cine and LGE series (cmr.dicom.exam); scouts,
maps, perfusion, flow, STIR, PSIR phase, real-time cines, derived and secondary captures never enter it. With
`exam` only the series the loader needs to rebuild the same exam are kept, so the written study loads to the same
exam (same series picked, same views) as the whole study does:
- every cine and LGE series (the slots pick among them; the long axis and the heart centre are measured on them);
- every other series that took part in naming the long-axis views (classify_study names LAX planes jointly, so
  dropping one could rename a cine's view).
A SeriesInstanceUID is kept or skipped whole (its orientation parts are classified together). `all` keeps every
series, as before the option existed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydicom.dataset import Dataset

from cmr.dicom import Series

KeepSeries = Literal["exam", "all"]
KEEP_SERIES: tuple[str, ...] = ("exam", "all")
EXAM_KINDS = frozenset({"cine", "lge"})
_LAX_VIEWS = frozenset({"2ch", "3ch", "4ch", "lax"})


def kept_by_exam(s: Series) -> bool:
    """Whether the exam needs `s` (see the module doc)."""
    return s.kind in EXAM_KINDS or (s.kind != "localizer" and s.view in _LAX_VIEWS)


def skip_reason(kind: str) -> str:
    return f"not an exam series ({kind})"


@dataclass(frozen=True)
class SeriesSplit:
    kept: list[Dataset]
    skipped: list[Dataset]


def _series_uid(ds: Dataset) -> str:
    return str(ds.get("SeriesInstanceUID", "") or "")


def split_datasets(datasets: Sequence[Dataset], series: Sequence[Series], keep: KeepSeries) -> SeriesSplit:
    """The datasets of the series to keep, and the others. Under `exam`, files the loader skipped (no usable
    image: a secondary capture, a file without pixels) are not written either."""
    if keep == "all":
        return SeriesSplit(list(datasets), [])
    uids = frozenset(s.series_instance_uid for s in series if kept_by_exam(s))
    kept, skipped = [], []
    for ds in datasets:
        (kept if _series_uid(ds) in uids else skipped).append(ds)
    return SeriesSplit(kept, skipped)


__all__ = ["EXAM_KINDS", "KEEP_SERIES", "KeepSeries", "SeriesSplit", "kept_by_exam", "skip_reason", "split_datasets"]
