"""The import reads and parses each source file once: the de-identified in-memory datasets go to the loader
and to the writer, no file is read back. Its written files are the bytes pydicom's save_as gives and load as the
source study does."""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pydicom
import pydicom.filereader
import pytest
from pydicom.filebase import DicomBytesIO

from cmr.archive import study as study_module
from cmr.archive.importer import ImportRequest, import_archive
from cmr.config import get_settings
from cmr.deid import Deidentifier
from cmr.dicom import Study, load_study
from cmr.synth.generate import generate_dataset
from test_archive_reports import write_export


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two study folders (single-frame files with distractor series; Enhanced MR multi-frame) and an export."""
    root = tmp_path_factory.mktemp("read_once")
    entries = []
    for n, (scanner, distractors) in enumerate((("ge_signa_1.5T", True), ("philips_ingenia_1.5T", False))):
        synth = root / f"synth_{n}"
        (record,) = generate_dataset(synth, 1, 31 + n, workers=1, scanner=scanner, progress=False,
                                     distractors=distractors)
        shutil.move(synth / record["folder"], root / "studies" / f"exam_{n}")
        entries.append(record["ris"])
    return root / "studies", write_export(root, entries, "hl7")


def _save_as_bytes(ds: pydicom.Dataset) -> bytes:
    fp = DicomBytesIO()
    ds.save_as(fp, enforce_file_format=True)
    return bytes(fp.getvalue())


def _read_folder(folder: Path) -> list[pydicom.Dataset]:
    datasets, others = study_module._read(folder)  # noqa: SLF001 - the import's own reader
    assert datasets and others == 0
    return datasets


def _assert_same_images(a: Study, b: Study) -> None:
    assert [(s.kind, s.view, s.pixels.shape) for s in a.series] == [(s.kind, s.view, s.pixels.shape)
                                                                     for s in b.series]
    for sa, sb in zip(a.series, b.series):
        assert np.array_equal(sa.pixels, sb.pixels)
        assert np.allclose(sa.positions, sb.positions) and np.array_equal(sa.trigger_times, sb.trigger_times,
                                                                          equal_nan=True)
    # warnings name series by UID and files by name, both of which the import changes
    assert len(a.warnings) == len(b.warnings) and len(a.skipped) == len(b.skipped)


def test_import_parses_each_source_file_once(archive: tuple[Path, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    studies, export = archive
    sources = {p.resolve() for p in studies.rglob("*") if p.is_file()}
    reads: Counter[Path] = Counter()
    parses = 0
    real_open, real_read_partial = Path.open, pydicom.filereader.read_partial

    def open_(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads[self.resolve()] += 1
        return real_open(self, *args, **kwargs)

    def read_partial(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal parses
        parses += 1
        return real_read_partial(*args, **kwargs)

    # every file read goes through Path.open (read_bytes too), every parse (dcmread's, the loader's own)
    # through read_partial
    monkeypatch.setattr(Path, "open", open_)
    monkeypatch.setattr(pydicom.filereader, "read_partial", read_partial)
    result = import_archive(ImportRequest(studies, export, tmp_path / "out", workers=1, progress=False),
                            get_settings())
    assert result.imported == 2
    cpu = result.card["stage_cpu_seconds"]  # per stage, beside the wall seconds
    assert set(cpu) == set(result.card["stage_seconds"]) == {"read", "deidentify", "load", "report", "write"}
    assert all(v >= 0 for v in cpu.values()) and cpu["read"] > 0
    assert parses == len(sources)
    assert {p: reads[p] for p in sources} == dict.fromkeys(sources, 1)


def test_imported_files_are_save_as_bytes_and_load_as_the_source(archive: tuple[Path, Path],
                                                                 tmp_path: Path) -> None:
    studies, export = archive
    out = tmp_path / "out"
    # `all`: every source file written (`exam`, the default, leaves the distractors out: test_archive_keep_series)
    import_archive(ImportRequest(studies, export, out, workers=1, progress=False, keep_series="all"),
                   get_settings())
    secret = get_settings().study_key_secret
    for source in sorted(studies.iterdir()):
        expected = _read_folder(source)
        Deidentifier(secret, keep_dates=False).deidentify(expected)  # the import's defaults
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # as before the change: loading converts the values it reads (pydicom then writes "1.0", not " 1.0")
            load_study(expected)
        imported = sorted((out / "studies").glob("*"))
        written = next(f for f in imported if pydicom.dcmread(next(f.iterdir())).SeriesInstanceUID
                       in {str(ds.SeriesInstanceUID) for ds in expected})
        files = sorted(written.iterdir())
        assert [f.read_bytes() for f in files] == [_save_as_bytes(ds) for ds in expected]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _assert_same_images(load_study(source), load_study(written))
