"""The re-embedding job of a model upgrade (`cmr index upgrade --checkpoint NEW.pt`).

The index keeps no pixels, only a keyed hash of each study, so the job finds every archived study on disk
under CMR_STUDY_ROOTS (cmr.dicom.locator: StudyInstanceUID -> study key with the deployment's secret), reads
it in worker processes (as the encoder service does), runs the NEW checkpoint's image and text encoders in
this process (as the generator's TargetDrafter runs CLIP), and sends the vectors to the admin service, which
writes them into the new generation with the payloads of the active one (and, for a model with attention
pooling, the new vectors' embedding parts: the old ones belong to the old vectors). The active generation
serves queries all along. Resumable: studies already in the new generation are skipped, so running it again after
an interruption, or just before the switch to catch studies ingested meanwhile, does only what is left.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from cmr.config import Settings
from cmr.dicom.locator import StudyLocator
from cmr.model.inference import MAX_TEXT_CHARS
from cmr.model.runtime import EncoderRuntime, ModelIdentity
from cmr.rpc.keys import study_key
from cmr.rpc.study_loading import MeasureConfig, StudyLoaderPool
from cmr.rpc.messages import to_parts
from cmr.v1 import admin_pb2
from search_svc.admin.client import AdminClient

log = logging.getLogger(__name__)

BATCH = 8  # studies per forward pass and per WriteGeneration request


@dataclass
class ReembedReport:
    generation: str
    model_version: str
    archived: int  # studies in the active generation
    skipped: int  # already in the new generation (an earlier run)
    written: int
    not_found: list[str] = field(default_factory=list)  # keys no study root holds (left out: see the runbook)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, reason) of studies that could not be read
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.not_found and not self.failed


def reembed(admin: AdminClient, checkpoint: Path, settings: Settings, *, workers: int = 1,
            progress: Callable[[int, int], None] | None = None, batch: int = BATCH) -> ReembedReport:
    """Re-embed every archived study with `checkpoint` into its generation (created if needed).
    progress(done, total) is called after each batch."""
    t0 = time.perf_counter()
    ident = ModelIdentity.from_checkpoint(checkpoint, device=settings.device)  # reads the file, builds no model
    gen = admin.start_upgrade(ident.version, ident.embed_dim, str(checkpoint.resolve()))
    active = admin.generations().active
    if gen.name == active:
        raise ValueError(f"{ident.version} is already the active generation ({gen.name}): nothing to upgrade")
    done = {e.study_key for e in admin.archive(gen.name, keys_only=True)}
    archive = list(admin.archive(active))
    todo = [e for e in archive if e.study_key not in done]
    report = ReembedReport(gen.name, ident.version, len(archive), len(archive) - len(todo), 0)
    if not todo:
        report.seconds = time.perf_counter() - t0
        return report
    runtime = EncoderRuntime(settings, checkpoint=checkpoint)
    locator = StudyLocator(settings.study_roots, partial(study_key, secret=settings.study_key_secret))
    # A model with measurement tokens reads the study's numbers: measure in the loader's workers, as the
    # encoder service does (when CMR_MEASURE is on), so the re-embedded vectors are the ones EncodeStudy serves.
    measure = (MeasureConfig(checkpoint=settings.segmenter_checkpoint)
               if ident.measurement_names and settings.measure else None)
    loader = StudyLoaderPool(ident.spec, max(1, workers), measure=measure)
    try:
        for start in range(0, len(todo), batch):
            chunk = todo[start:start + batch]
            studies = _embed_batch(runtime, loader, locator, chunk, report, settings.request_timeout_s)
            if studies:
                r = admin.write(gen.name, ident.version, studies, source=active)
                report.written += r.written
            if progress is not None:
                progress(min(start + batch, len(todo)), len(todo))
    finally:
        loader.close()
    report.seconds = time.perf_counter() - t0
    return report


def _embed_batch(runtime: EncoderRuntime, loader: StudyLoaderPool, locator: StudyLocator,
                 chunk: Sequence[admin_pb2.ArchiveEntry], report: ReembedReport,
                 timeout_s: float) -> list[admin_pb2.ReembeddedStudy]:
    import numpy as np

    from cmr.model.measurements import measurement_matrix

    located = []
    for entry in chunk:
        path = locator.locate(entry.study_key)
        if path is None:
            report.not_found.append(entry.study_key)
        else:
            located.append((entry, path))
    # Every study of the batch is handed to the loader's worker processes at once.
    with ThreadPoolExecutor(max(1, len(located))) as pool:
        futures = [(entry, pool.submit(loader.load_measured, path, timeout_s)) for entry, path in located]
    found, pixels, masks, values = [], [], [], []
    for entry, future in futures:
        try:
            loaded = future.result()
        except Exception as exc:  # the loader's one-line reason; the study stays out of the new generation
            report.failed.append((entry.study_key, str(exc)))
            continue
        found.append(entry)
        pixels.append(loaded.exam.pixels_uint8())
        masks.append(loaded.exam.mask)
        values.append(None if loaded.measured is None else loaded.measured.measurements.values())
    if not found:
        return []
    ident = runtime.identity
    names = ident.measurement_names
    arrays = (np.stack(pixels), np.stack(masks), measurement_matrix(values, names) if names else None)
    # An attention-pooling model's vectors go with their parts, as the ingest worker sends them (ExamHit.why)
    if ident.explains:
        images, parts = runtime.encode_exam_parts(*arrays)
    else:
        images, parts = runtime.encode_exams(*arrays), None
    texts = [e.impression[:MAX_TEXT_CHARS] for e in found if e.impression.strip()]
    text_vecs = iter(runtime.encode_texts(texts)) if texts else iter(())
    out = []
    for i, (entry, image) in enumerate(zip(found, images)):
        report_vec = next(text_vecs).tolist() if entry.impression.strip() else []
        wire = [] if parts is None else to_parts(ident.groups, ident.kinds, parts[i])
        out.append(admin_pb2.ReembeddedStudy(study_key=entry.study_key, image_embedding=image.tolist(),
                                             report_embedding=report_vec, parts=wire))
    return out


__all__ = ["ReembedReport", "reembed"]
