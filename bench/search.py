"""Benchmark of the search store engines: index build time, memory, latency (1 and 8 client threads), QPS and
recall@10, unfiltered and with a payload filter, at 100k and 1M vectors of dimension 512.

    .venv/bin/python -m bench.search --quick     # 100k only -> docs/benchmarks/search_quick.{md,png,json}
    .venv/bin/python -m bench.search             # 100k and 1M -> docs/benchmarks/search.{md,png,json}

Data: a Gaussian mixture fitted to real CMR-CLIP embeddings (the shipped model, 256-d) of the cached
synthetic studies under data/bench/*/cache, sampled and lifted to 512-d by a fixed random orthogonal map
plus isotropic noise at the level of the real embeddings' residual, then L2-normalised. Without cached
studies (CI) a generated mixture of the same form stands in; the results say which source was used.

Engines, each measured in a fresh subprocess so that its resident memory is its own:
    edge          Qdrant Edge (qdrant-edge-py), HNSW, float32 vectors
    edge-int8     Qdrant Edge, HNSW + scalar int8 quantization, rescored with float32
    client-local  qdrant-client local mode (pure-Python brute force): 100k only, queries capped
    numpy         exact cosine over an in-memory float32 matrix (the reference)
    faiss-hnsw    FAISS IndexHNSWFlat, same m / ef_construct / hnsw_ef (bench/search_peers.py)
    hnswlib       hnswlib, same settings: the in-process peers a user might pick instead of Edge
All engines go through the service's store API (search_svc.store), numpy and the peers excepted (vectors only:
no payloads; their filter is a row mask, FAISS's checked in C++, hnswlib's a Python callback per candidate).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from bench.search_peers import PEER_ENGINES, make_peer

REPO = Path(__file__).resolve().parents[1]
DIM = 512
SIZES_FULL = (100_000, 1_000_000)
SIZES_QUICK = (100_000,)
TOP_K = 10
THREADS = (1, 8)
N_QUERIES = 1000
EF_SWEEP = (16, 32, 64, 128, 256)
OVERSAMPLING_SWEEP = (1, 2, 4, 8, 16, 32)
SWEEP_QUERIES = 300
N_WARMUP = 200  # untimed queries before each timed run, distinct from the timed ones
NUMPY_MAX_QUERIES = {100_000: 300, 1_000_000: 100}  # exact search costs a full pass over the matrix per query
CLIENT_LOCAL_MAX_QUERIES = 100  # pure-Python local mode: ~tens of ms per query unfiltered
CLIENT_LOCAL_MAX_FILTERED = 20  # ... and it evaluates the filter point by point in Python
CLIENT_LOCAL_MAX_SIZE = 100_000
HNSW_M, HNSW_EF_CONSTRUCT, HNSW_EF_SEARCH = 16, 100, 64  # the defaults of cmr.config.Settings
TARGET_P99_MS, TARGET_RECALL, TARGET_SPEEDUP = 5.0, 0.98, 10.0
SECRET = "bench-search"
SEED = 2024
CHUNK = 50_000  # rows per chunk when sampling, writing and scanning vectors
ENGINES = ("numpy", "edge", "edge-int8", "client-local", *PEER_ENGINES)
FILTER_TEXT = "vendor = siemens AND field strength = 1.5 T"
# Payload vocabularies of the synthetic exams (not filtered on: they make the payloads real-sized).
VIEW_NAMES = ("cine_sax", "cine_2ch", "cine_3ch", "cine_4ch", "lge_sax", "lge_2ch", "lge_3ch", "lge_4ch")
LABEL_NAMES = ("lv_dysfunction", "rv_dysfunction", "lv_dilation", "rv_dilation", "lv_hypertrophy", "lge",
               "aortic_dilation", "la_enlargement", "pericardial_effusion")


# ------------------------------------------------------------------------------------------------------------
# The mixture: fitted to real embeddings, or generated
# ------------------------------------------------------------------------------------------------------------
@dataclass
class Mixture:
    """A Gaussian mixture in a low-dimensional (PCA) space of the 256-d embedding space, with isotropic
    residual noise, lifted to DIM by a fixed orthogonal map. Each component has its own scanner-style mix."""

    source: str
    weights: NDArray[np.float64]  # [K]
    means: NDArray[np.float64]  # [K, d]
    chols: NDArray[np.float64]  # [K, d, d] Cholesky factors of the covariances
    basis_mean: NDArray[np.float64]  # [256]
    basis: NDArray[np.float64]  # [d, 256] PCA components
    residual_sigma: float  # per-dimension std of what the PCA space leaves out
    lift: NDArray[np.float64]  # [DIM, 256], orthonormal columns
    style_probs: NDArray[np.float64]  # [K, S]
    styles: list[tuple[str, float]]  # (vendor, field strength) per style
    impressions: list[str]
    details: dict[str, Any]

    def sample(self, n: int, rng: np.random.Generator) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
        """n unit vectors [n, DIM] and the scanner style of each."""
        comp = rng.choice(len(self.weights), size=n, p=self.weights)
        z = np.empty((n, self.means.shape[1]))
        for k in range(len(self.weights)):
            rows = np.flatnonzero(comp == k)
            z[rows] = self.means[k] + rng.standard_normal((len(rows), z.shape[1])) @ self.chols[k].T
        noise = self.residual_sigma * rng.standard_normal((n, self.basis.shape[1]))
        x = self.basis_mean + z @ self.basis + noise
        y = x @ self.lift.T + self.residual_sigma * rng.standard_normal((n, DIM))
        y /= np.linalg.norm(y, axis=1, keepdims=True)
        style = np.zeros(n, np.int64)
        for k in range(len(self.weights)):
            rows = np.flatnonzero(comp == k)
            style[rows] = rng.choice(len(self.styles), size=len(rows), p=self.style_probs[k])
        return y.astype(np.float32), style


def _scanner_styles() -> tuple[list[str], list[tuple[str, float]]]:
    from cmr.synth.scanners import STYLES
    from search_svc.store import normalise_vendor

    names = sorted(STYLES)
    return names, [(normalise_vendor(STYLES[n].manufacturer), float(STYLES[n].field_strength)) for n in names]


def _orthonormal_lift(rng: np.random.Generator, in_dim: int) -> NDArray[np.float64]:
    q, _ = np.linalg.qr(rng.standard_normal((DIM, in_dim)))
    return q


def real_embeddings(data_root: Path,
                    max_exams: int) -> tuple[NDArray[np.float32], list[str], list[str]] | None:
    """CMR-CLIP embeddings of cached synthetic studies, their scanner styles and impressions (None: no cache)."""
    import torch

    from cmr.data.cache import ExamCache
    from cmr.model.checkpoint import load_model
    from cmr.model.inference import embed_exam_arrays

    model = None
    vectors, styles, impressions = [], [], []
    for index in sorted(data_root.glob("*/cache/*/index.json")):
        data_dir = index.parents[2]
        if model is None:
            torch.set_num_threads(os.cpu_count() or 1)
            model = load_model()
        if index.parent.name != model.spec.spec_id or not (index.parent / "done.npy").exists():
            continue  # a cache made for another exam spec, or one still being built
        cache = ExamCache.open(data_dir, model.spec)
        rows = np.flatnonzero(cache.ok)[: max_exams - sum(len(v) for v in vectors)]
        if not len(rows):
            continue
        for start in tqdm(range(0, len(rows), 256), desc=f"embed {data_dir.name}", unit="batch", leave=False):
            part = rows[start : start + 256]
            vectors.append(embed_exam_arrays(model, cache.pixels[part], cache.mask[part]))
        styles += [cache.records[i].scanner for i in rows]
        impressions += [cache.records[i].impression for i in rows]
        if sum(len(v) for v in vectors) >= max_exams:
            break
    if not vectors:
        return None
    return np.concatenate(vectors), styles, impressions


def fit_mixture(embeddings: NDArray[np.float32], scanner_names: Sequence[str], impressions: list[str],
                rng: np.random.Generator, source: str) -> Mixture:
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    names, styles = _scanner_styles()
    x = embeddings.astype(np.float64)
    pca = PCA(n_components=min(32, len(x) - 1), random_state=SEED).fit(x)
    z = pca.transform(x)
    residual_sigma = float(np.sqrt(np.mean((x - pca.inverse_transform(z)) ** 2)))
    fits = {k: GaussianMixture(k, covariance_type="full", reg_covar=1e-6, random_state=SEED, n_init=2).fit(z)
            for k in (2, 4, 8, 12, 16) if k * 10 < len(x)}
    bic = {k: float(g.bic(z)) for k, g in fits.items()}
    k_best = min(bic, key=bic.__getitem__)
    gmm = fits[k_best]
    # Scanner style per component: the styles of the exams it explains, smoothed towards the overall mix.
    onehot = np.zeros((len(x), len(names)))
    for i, s in enumerate(scanner_names):
        if s in names:
            onehot[i, names.index(s)] = 1.0
    overall = (onehot.sum(0) + 1.0) / (onehot.sum() + len(names))
    counts = gmm.predict_proba(z).T @ onehot
    style_probs = (counts + 2.0 * overall) / (counts.sum(1, keepdims=True) + 2.0)
    return Mixture(
        source=source, weights=gmm.weights_, means=gmm.means_, chols=np.linalg.cholesky(gmm.covariances_),
        basis_mean=pca.mean_, basis=pca.components_, residual_sigma=residual_sigma,
        lift=_orthonormal_lift(rng, x.shape[1]), style_probs=style_probs, styles=styles,
        impressions=impressions,
        details={"exams": len(x), "pca_dims": int(pca.n_components_),
                 "pca_variance_kept": float(pca.explained_variance_ratio_.sum()), "components": k_best,
                 "bic": bic, "residual_sigma": residual_sigma},
    )


def generated_mixture(rng: np.random.Generator) -> Mixture:
    """A stand-in of the same form when no real embeddings exist: 12 anisotropic clusters in an 8-d subspace
    of a 256-d space, sharing a common direction (real embeddings have mean cosine ~0.4)."""
    names, styles = _scanner_styles()
    k, d, full = 12, 8, 256
    basis = np.linalg.qr(rng.standard_normal((full, d)))[0].T  # [d, full]
    common = rng.standard_normal(d)
    means = 0.8 * common / np.linalg.norm(common) + 0.6 * rng.standard_normal((k, d)) / np.sqrt(d)
    chols = np.stack([np.diag(rng.uniform(0.02, 0.12, d)) for _ in range(k)])
    overall = np.full(len(names), 1.0 / len(names))
    return Mixture(
        source="generated", weights=rng.dirichlet(np.full(k, 5.0)), means=means, chols=chols,
        basis_mean=np.zeros(full), basis=basis, residual_sigma=0.01, lift=_orthonormal_lift(rng, full),
        style_probs=rng.dirichlet(20 * overall, size=k), styles=styles,
        impressions=["Normal biventricular size and function. No late gadolinium enhancement."],
        details={"components": k, "subspace_dims": d, "residual_sigma": 0.01},
    )


def build_mixture(data_root: Path, rng: np.random.Generator, max_exams: int = 2000) -> Mixture:
    real = None
    try:
        real = real_embeddings(data_root, max_exams)
    except Exception as exc:  # noqa: BLE001 - any failure to read caches or the model means: no real data
        print(f"no real embeddings ({type(exc).__name__}: {exc}); using a generated mixture", file=sys.stderr)
    if real is None:
        return generated_mixture(rng)
    vectors, scanners, impressions = real
    source = (f"real: CMR-CLIP (shipped cmr-clip-small, 256-d) embeddings of {len(vectors)} cached synthetic "
              f"studies under {data_root}")
    return fit_mixture(vectors, scanners, impressions, rng, source)


# ------------------------------------------------------------------------------------------------------------
# The data set on disk, shared by the engine subprocesses
# ------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    folder: Path

    @property
    def vectors(self) -> Path:
        return self.folder / "vectors.f32"  # raw float32 [n_max, DIM], row-major

    @property
    def meta(self) -> Path:
        return self.folder / "meta.npz"

    @property
    def queries(self) -> Path:
        return self.folder / "queries.npy"

    def truth(self, size: int) -> Path:
        return self.folder / f"truth_{size}.npz"

    @property
    def source(self) -> Path:
        return self.folder / "source.json"  # where the vectors came from, for the report

    @property
    def warmup(self) -> Path:
        return self.folder / "warmup.npy"

    @property
    def impressions(self) -> Path:
        return self.folder / "impressions.json"


def write_dataset(mix: Mixture, n_max: int, folder: Path, rng: np.random.Generator) -> Dataset:
    ds = Dataset(folder)
    styles, dates, views, labels, impression = [], [], [], [], []
    first_day = dt.date(2012, 1, 1).toordinal()
    with open(ds.vectors, "wb") as out:
        for start in tqdm(range(0, n_max, CHUNK), desc="sample vectors", unit="chunk"):
            n = min(CHUNK, n_max - start)
            vecs, style = mix.sample(n, rng)
            vecs.tofile(out)
            styles.append(style.astype(np.uint8))
            dates.append((first_day + rng.integers(0, 13 * 365, n)).astype(np.int32))
            views.append((1 | rng.integers(0, 256, n)).astype(np.uint8))  # cine_sax always present
            labels.append((rng.random((n, len(LABEL_NAMES))) < 0.15) @ (1 << np.arange(len(LABEL_NAMES))))
            impression.append(rng.integers(0, len(mix.impressions), n).astype(np.int32))
    np.savez(ds.meta, style=np.concatenate(styles), date=np.concatenate(dates), views=np.concatenate(views),
             labels=np.concatenate(labels).astype(np.uint16), impression=np.concatenate(impression),
             style_vendor=np.array([v for v, _ in mix.styles]),
             style_tesla=np.array([t for _, t in mix.styles]))
    queries, _ = mix.sample(N_QUERIES + N_WARMUP, rng)  # new exams from the same population
    np.save(ds.queries, queries[:N_QUERIES])
    np.save(ds.warmup, queries[N_QUERIES:])
    ds.impressions.write_text(json.dumps(mix.impressions))
    ds.source.write_text(json.dumps({"kind": "generated" if mix.source == "generated" else "real",
                                     "description": mix.source, "details": mix.details}))
    return ds


def read_rows(path: Path, start: int, count: int) -> NDArray[np.float32]:
    """Rows [start, start+count) of a raw float32 matrix, read rather than memory-mapped (so the page cache
    never counts as the reader's memory)."""
    with open(path, "rb") as f:
        f.seek(start * DIM * 4)
        return np.fromfile(f, dtype=np.float32, count=count * DIM).reshape(count, DIM)


def filter_mask(meta: Any, size: int) -> NDArray[np.bool_]:
    """Rows the benchmark filter keeps (the same rule the engines apply to the payloads)."""
    vendor = meta["style_vendor"][meta["style"][:size]]
    tesla = meta["style_tesla"][meta["style"][:size]]
    return (vendor == "siemens") & (np.abs(tesla - 1.5) <= 0.05)


def ground_truth(ds: Dataset, size: int) -> tuple[NDArray[np.int64], NDArray[np.int64], float]:
    """Exact top-10 rows per query (float32 cosine), unfiltered and filtered, and the filter's selectivity."""
    queries = np.load(ds.queries)
    mask = filter_mask(np.load(ds.meta), size)
    best = [np.zeros((len(queries), 0), np.int64), np.zeros((len(queries), 0), np.int64)]
    best_s = [np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.float32)]
    for start in tqdm(range(0, size, CHUNK), desc=f"ground truth {size:,}", unit="chunk"):
        rows = read_rows(ds.vectors, start, min(CHUNK, size - start))
        scores = queries @ rows.T  # [Q, chunk]
        for which, s in enumerate((scores, np.where(mask[start : start + len(rows)], scores, -np.inf))):
            top = np.argpartition(-s, TOP_K, axis=1)[:, :TOP_K]
            cand = np.concatenate([best[which], top + start], axis=1)
            cand_s = np.concatenate([best_s[which], np.take_along_axis(s, top, axis=1)], axis=1)
            keep = np.argsort(-cand_s, axis=1, kind="stable")[:, :TOP_K]
            best[which] = np.take_along_axis(cand, keep, axis=1)
            best_s[which] = np.take_along_axis(cand_s, keep, axis=1)
    return best[0], best[1], float(mask.mean())


# ------------------------------------------------------------------------------------------------------------
# Measurement helpers (run inside the engine subprocess)
# ------------------------------------------------------------------------------------------------------------
def memory_mb() -> dict[str, float]:
    """Resident and peak-resident memory of this process (/proc/self/status; psutil elsewhere, no peak)."""
    status = Path("/proc/self/status")
    if status.exists():
        fields = {}
        for line in status.read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return {"rss_mb": fields["VmRSS"], "peak_mb": fields["VmHWM"]}
    import psutil  # type: ignore[import-not-found]

    return {"rss_mb": psutil.Process().memory_info().rss / 2**20, "peak_mb": float("nan")}


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def latency_run(search: Callable[[NDArray[np.float32]], list[Any]], queries: NDArray[np.float32],
                warmup: NDArray[np.float32], threads: int,
                desc: str) -> tuple[list[list[Any]], dict[str, float]]:
    """Run every query (from `threads` client threads), timing each call; returns the answers and stats.
    A few untimed warm-up queries first (page cache, lazily built structures), as a serving index is warm."""
    for q in warmup[: max(5, min(len(warmup), len(queries) // 5))]:
        search(q)

    def timed(q: NDArray[np.float32]) -> tuple[list[Any], float]:
        t0 = time.perf_counter()
        found = search(q)
        return found, (time.perf_counter() - t0) * 1e3

    bar = tqdm(total=len(queries), desc=desc, unit="q", leave=False, mininterval=0.5)
    start = time.perf_counter()
    if threads == 1:
        out = []
        for q in queries:
            out.append(timed(q))
            bar.update()
    else:
        with ThreadPoolExecutor(threads) as pool:
            out = []
            for item in pool.map(timed, queries):
                out.append(item)
                bar.update()
    wall = time.perf_counter() - start
    bar.close()
    lat = np.array([ms for _, ms in out])
    return [found for found, _ in out], {"queries": len(queries), "p50_ms": float(np.percentile(lat, 50)),
                                         "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean()),
                                         "qps": len(queries) / wall}


def recall(found: list[list[Any]], truth: Sequence[Sequence[Any]]) -> float:
    return float(np.mean([len(set(f[:TOP_K]) & set(t[:TOP_K])) / TOP_K for f, t in zip(found, truth)]))


def exam_payload(row: int, meta: Any, impressions: list[str]) -> Any:
    from cmr.rpc.keys import study_key
    from search_svc.store import ExamPayload

    style = int(meta["style"][row])
    views, labels = int(meta["views"][row]), int(meta["labels"][row])
    return ExamPayload(
        study_key=study_key(f"2.25.{row + 1}", SECRET), vendor=str(meta["style_vendor"][style]),
        model_version="cmr-clip-small", study_date=dt.date.fromordinal(int(meta["date"][row])),
        field_strength_t=float(meta["style_tesla"][style]),
        views=tuple(v for i, v in enumerate(VIEW_NAMES) if views >> i & 1),
        labels=tuple(v for i, v in enumerate(LABEL_NAMES) if labels >> i & 1),
        impression=impressions[int(meta["impression"][row])],
    )


def row_ids(rows: NDArray[np.int64]) -> list[list[str]]:
    from cmr.rpc.keys import point_id, study_key

    return [[point_id(study_key(f"2.25.{r + 1}", SECRET)) for r in q] for q in rows]


# ------------------------------------------------------------------------------------------------------------
# Engine workers, each in its own interpreter (`--worker ENGINE --phase PHASE`)
# ------------------------------------------------------------------------------------------------------------
def worker(engine: str, phase: str, ds: Dataset, size: int, result_path: Path) -> None:
    if engine == "numpy":
        result = numpy_worker(ds, size)
    elif engine in PEER_ENGINES:
        result = peer_worker(engine, ds, size)
    elif phase == "build":
        result = build_worker(engine, ds, size)
    else:
        result = serve_worker(engine, ds, size)
    result_path.write_text(json.dumps(result))


def _truth(ds: Dataset, size: int) -> tuple[NDArray[np.float32], NDArray[np.float32], Any]:
    return np.load(ds.queries), np.load(ds.warmup), np.load(ds.truth(size))


def numpy_worker(ds: Dataset, size: int) -> dict[str, Any]:
    queries, warmup, truth = _truth(ds, size)
    mask = filter_mask(np.load(ds.meta), size)
    gc.collect()
    before = memory_mb()
    t0 = time.perf_counter()
    matrix = np.empty((size, DIM), np.float32)
    for start in range(0, size, CHUNK):
        matrix[start : start + CHUNK] = read_rows(ds.vectors, start, min(CHUNK, size - start))
    load_s = time.perf_counter() - t0  # the vectors are unit length already: loading is the whole "build"
    after = memory_mb()

    def top(scores: NDArray[np.float32]) -> list[int]:
        best = np.argpartition(-scores, TOP_K)[:TOP_K]
        return [int(i) for i in best[np.argsort(-scores[best])]]

    def search(q: NDArray[np.float32]) -> list[int]:
        return top(matrix @ q)

    def search_filtered(q: NDArray[np.float32]) -> list[int]:
        return top(np.where(mask, matrix @ q, -np.inf).astype(np.float32))

    n = NUMPY_MAX_QUERIES.get(size, 100)
    runs: dict[str, dict[str, Any]] = {"unfiltered": {}, "filtered": {}}
    cases = (("unfiltered", search, truth["all"]), ("filtered", search_filtered, truth["filtered"]))
    for name, fn, gt in cases:
        for threads in THREADS:
            found, stats = latency_run(fn, queries[:n], warmup, threads, f"numpy {size:,} {name} x{threads}")
            runs[name][str(threads)] = {**stats, "recall": recall(found, gt[:n].tolist())}
    return {"build_s": load_s, "upsert_s": load_s, "optimize_s": 0.0,
            "memory_mb": after["rss_mb"] - before["rss_mb"], "build_peak_mb": after["peak_mb"], "disk_mb": None,
            "runs": runs, "sweep": []}


def peer_worker(engine: str, ds: Dataset, size: int) -> dict[str, Any]:
    """FAISS HNSW or hnswlib on the same vectors, graph settings, queries and hnsw_ef sweep as Edge."""
    queries, warmup, truth = _truth(ds, size)
    mask = filter_mask(np.load(ds.meta), size)
    gc.collect()
    before = memory_mb()
    index = make_peer(engine, DIM, HNSW_M, HNSW_EF_CONSTRUCT, size)
    t0 = time.perf_counter()
    for start in tqdm(range(0, size, CHUNK), desc=f"{engine} {size:,} build", unit="chunk"):
        index.add(read_rows(ds.vectors, start, min(CHUNK, size - start)))
    build_s = time.perf_counter() - t0
    after = memory_mb()
    cases = (("unfiltered", None, truth["all"]), ("filtered", mask, truth["filtered"]))
    runs: dict[str, dict[str, Any]] = {"unfiltered": {}, "filtered": {}}
    for name, allowed, gt in cases:
        for threads in THREADS:
            found, stats = latency_run(lambda q, a=allowed: index.search(q, TOP_K, HNSW_EF_SEARCH, a), queries,
                                       warmup, threads, f"{engine} {size:,} {name} x{threads}")
            runs[name][str(threads)] = {**stats, "recall": recall(found, gt.tolist())}
    sweep = []
    n = min(SWEEP_QUERIES, len(queries))
    for ef in EF_SWEEP:
        for name, allowed, gt in cases:
            found, stats = latency_run(lambda q, a=allowed, ef=ef: index.search(q, TOP_K, ef, a), queries[:n],
                                       warmup, 1, f"{engine} {size:,} hnsw_ef={ef} {name}")
            sweep.append({"knob": "hnsw_ef", "value": ef, "filter": name, **stats,
                          "recall": recall(found, gt[:n].tolist())})
    return {"build_s": build_s, "upsert_s": None, "optimize_s": build_s,
            "memory_mb": after["rss_mb"] - before["rss_mb"], "build_peak_mb": memory_mb()["peak_mb"],
            "disk_mb": None, "segments": "-", "runs": runs, "sweep": sweep}


def _default_oversampling() -> float:
    from search_svc.store import IndexParams

    return IndexParams().quantization_oversampling


def store_params(engine: str) -> Any:
    from search_svc.store import IndexParams, Quantization

    return IndexParams(HNSW_M, HNSW_EF_CONSTRUCT, HNSW_EF_SEARCH,
                       Quantization.INT8 if engine == "edge-int8" else Quantization.NONE)


def fill_store(store: Any, ds: Dataset, size: int, desc: str, build: bool = True) -> tuple[float, float]:
    """Upsert `size` exam points through the store API, then (build) build the index; (upsert s, optimize s)."""
    from search_svc.store import VectorPoint

    meta = dict(np.load(ds.meta))
    impressions = json.loads(ds.impressions.read_text())

    def points() -> Iterator[VectorPoint]:
        for start in range(0, size, CHUNK):
            rows = read_rows(ds.vectors, start, min(CHUNK, size - start))
            for i, vec in enumerate(rows):
                yield VectorPoint.for_exam(exam_payload(start + i, meta, impressions), vec)

    store.ensure_collection("exams", DIM)
    t0 = time.perf_counter()
    store.upsert("exams", tqdm(points(), total=size, desc=f"{desc} upsert", unit="pt", mininterval=1))
    upsert_s = time.perf_counter() - t0
    if not build:
        return upsert_s, 0.0
    print(f"{desc}: building the index ...", file=sys.stderr, flush=True)
    t1 = time.perf_counter()
    store.optimize("exams")
    return upsert_s, time.perf_counter() - t1


def build_worker(engine: str, ds: Dataset, size: int) -> dict[str, Any]:
    """Edge: build the shard on disk and close it; serve_worker opens it in a fresh process."""
    from search_svc.store import EdgeStore

    folder = ds.folder / f"index_{engine}_{size}"
    shutil.rmtree(folder, ignore_errors=True)
    with EdgeStore(folder, store_params(engine)) as store:
        upsert_s, optimize_s = fill_store(store, ds, size, f"{engine} {size:,}")
        info = store.collection_info("exams")
    return {"build_s": upsert_s + optimize_s, "upsert_s": upsert_s, "optimize_s": optimize_s,
            "build_peak_mb": memory_mb()["peak_mb"], "disk_mb": folder_mb(folder), "segments": info.segments,
            "indexed_vectors": info.indexed_vectors}


def serve_worker(engine: str, ds: Dataset, size: int) -> dict[str, Any]:
    """Open the store (Edge: the shard build_worker left; local mode: filled here, in memory) and query it."""
    from search_svc.store import EdgeStore, ExamFilter, QdrantStore

    queries, warmup, truth = _truth(ds, size)
    warnings.filterwarnings("ignore", message=".*Local mode is not recommended.*")
    gc.collect()
    before = memory_mb()
    extra: dict[str, Any] = {}
    if engine == "client-local":
        store: Any = QdrantStore.local(None, store_params(engine))
        upsert_s, optimize_s = fill_store(store, ds, size, f"{engine} {size:,}")
        extra = {"build_s": upsert_s + optimize_s, "upsert_s": upsert_s, "optimize_s": optimize_s,
                 "build_peak_mb": memory_mb()["peak_mb"], "disk_mb": None, "segments": 1}
        gc.collect()
    else:
        store = EdgeStore(ds.folder / f"index_{engine}_{size}", store_params(engine))
        assert store.count("exams") == size
    flt = ExamFilter(vendors=("siemens",), field_strengths_t=(1.5,))
    caps = ((CLIENT_LOCAL_MAX_QUERIES, CLIENT_LOCAL_MAX_FILTERED) if engine == "client-local"
            else (len(queries), len(queries)))
    cases = (("unfiltered", None, truth["all"]), ("filtered", flt, truth["filtered"]))
    runs: dict[str, dict[str, Any]] = {"unfiltered": {}, "filtered": {}}
    for (name, f, gt), n in zip(cases, caps):
        ids = row_ids(gt[:n])
        for threads in THREADS:
            found, stats = latency_run(lambda q, f=f: [h.id for h in store.search("exams", q, TOP_K, f)],
                                       queries[:n], warmup, threads, f"{engine} {size:,} {name} x{threads}")
            runs[name][str(threads)] = {**stats, "recall": recall(found, ids)}
    memory = memory_mb()["rss_mb"] - before["rss_mb"]  # after queries: the pages searching needs are resident
    sweep = []
    if engine.startswith("edge"):
        # Float32 HNSW: hnsw_ef is the knob. int8: the oversampling (candidates rescored per result) is.
        knob, values = ("hnsw_ef", EF_SWEEP) if engine == "edge" else ("oversampling", OVERSAMPLING_SWEEP)
        n = min(SWEEP_QUERIES, len(queries))
        for value in values:
            if knob == "oversampling":
                store.params = dataclasses.replace(store.params, quantization_oversampling=float(value))
            ef = value if knob == "hnsw_ef" else None
            for name, f, gt in cases:
                found, stats = latency_run(
                    lambda q, f=f, ef=ef: [h.id for h in store.search("exams", q, TOP_K, f, hnsw_ef=ef)],
                    queries[:n], warmup, 1, f"{engine} {size:,} {knob}={value} {name}")
                sweep.append({"knob": knob, "value": value, "filter": name, **stats,
                              "recall": recall(found, row_ids(gt[:n]))})
    store.close()
    return {**extra, "memory_mb": memory, "runs": runs, "sweep": sweep}


def run_worker(engine: str, ds: Dataset, size: int) -> dict[str, Any]:
    """One engine at one size: Edge builds in one interpreter and serves in another, so the memory measured
    is what a service opening the index holds; the others run in one fresh interpreter each. A phase whose
    result is already in the work folder (an interrupted run, resumed) is not run again."""
    result: dict[str, Any] = {"engine": engine, "size": size}
    phases = ("build", "serve") if engine.startswith("edge") else ("serve",)
    done = {p: ds.folder / f"result_{engine}_{size}_{p}.json" for p in phases}
    index = ds.folder / f"index_{engine}_{size}"
    if "build" in done and not done["serve"].exists() and not (index / "exams" / "collection.json").exists():
        done["build"].unlink(missing_ok=True)  # the index it built is gone: build again
    for phase in phases:
        result_path = done[phase]
        if result_path.exists():
            result.update(json.loads(result_path.read_text()))
            continue
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", engine, "--phase", phase,
               "--data", str(ds.folder), "--size", str(size), "--result", str(result_path)]
        paths = filter(None, [str(REPO), os.environ.get("PYTHONPATH")])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        proc = subprocess.run(cmd, cwd=REPO, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark worker {engine} ({phase}) at {size:,} failed "
                               f"with exit status {proc.returncode}")
        result.update(json.loads(result_path.read_text()))
    shutil.rmtree(ds.folder / f"index_{engine}_{size}", ignore_errors=True)
    return result


# ------------------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    from cmr.machine import cpu_name, memory_gb

    cpu, mem_gb = cpu_name(), memory_gb()

    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "platform": platform.platform(),
            "python": platform.python_version(), "qdrant-edge-py": version("qdrant-edge-py"),
            "qdrant-client": version("qdrant-client"), "numpy": np.__version__}


def _find(results: list[dict[str, Any]], engine: str, size: int) -> dict[str, Any] | None:
    return next((r for r in results if r["engine"] == engine and r["size"] == size), None)


def evaluate_targets(results: list[dict[str, Any]], sizes: Sequence[int]) -> list[dict[str, Any]]:
    targets = []
    if 1_000_000 in sizes:
        for engine in ("edge", "edge-int8"):
            r = _find(results, engine, 1_000_000)
            if r is None:
                continue
            one = r["runs"]["unfiltered"]["1"]
            targets.append({
                "target": f"{engine} at 1M: single-thread p99 <= {TARGET_P99_MS:g} ms with recall@10 >= "
                          f"{TARGET_RECALL} (store defaults: hnsw_ef {HNSW_EF_SEARCH}"
                          + (f", oversampling {_default_oversampling():g})" if engine == "edge-int8" else ")"),
                "value": f"p99 {one['p99_ms']:.2f} ms, recall@10 {one['recall']:.3f}",
                "met": one["p99_ms"] <= TARGET_P99_MS and one["recall"] >= TARGET_RECALL,
            })
            ok = [s for s in r["sweep"] if s["filter"] == "unfiltered" and s["recall"] >= TARGET_RECALL]
            if ok:
                best = min(ok, key=lambda s: s["p99_ms"])
                targets.append({
                    "target": f"{engine} at 1M, the fastest {best['knob']} of the sweep with recall@10 >= "
                              f"{TARGET_RECALL}",
                    "value": f"{best['knob']} {best['value']}: p99 {best['p99_ms']:.2f} ms, "
                             f"recall@10 {best['recall']:.3f}",
                    "met": best["p99_ms"] <= TARGET_P99_MS,
                })
    else:
        targets.append({"target": f"single-thread p99 <= {TARGET_P99_MS:g} ms at 1M with recall@10 >= "
                                  f"{TARGET_RECALL}",
                        "value": "not measured (quick mode runs 100k only)", "met": None})
    local = _find(results, "client-local", 100_000)
    for engine in ("edge", "edge-int8"):
        r = _find(results, engine, 100_000)
        if local is None or r is None:
            continue
        ratio = local["runs"]["unfiltered"]["1"]["p99_ms"] / r["runs"]["unfiltered"]["1"]["p99_ms"]
        targets.append({
            "target": f"{engine} at 100k: single-thread p99 >= {TARGET_SPEEDUP:g}x lower than qdrant-client "
                      "local mode",
            "value": f"{ratio:,.0f}x ({r['runs']['unfiltered']['1']['p99_ms']:.2f} ms vs "
                     f"{local['runs']['unfiltered']['1']['p99_ms']:.1f} ms)",
            "met": ratio >= TARGET_SPEEDUP,
        })
    return targets


def _smallest(sweep: list[dict[str, Any]], flt: str, recall_at_least: float) -> dict[str, Any] | None:
    ok = [x for x in sweep if x["filter"] == flt and x["recall"] >= recall_at_least]
    return min(ok, key=lambda x: x["value"]) if ok else None


def findings(report: dict[str, Any]) -> list[str]:
    """What the numbers say, computed from them (so a re-run rewrites it consistently)."""
    results, out = report["results"], []
    for size in report["sizes"]:
        edge, int8, exact = (_find(results, e, size) for e in ("edge", "edge-int8", "numpy"))
        if edge is None:
            continue
        one, eight = edge["runs"]["unfiltered"]["1"], edge["runs"]["unfiltered"]["8"]
        warm = next((x for x in edge["sweep"] if x["value"] == HNSW_EF_SEARCH and x["filter"] == "unfiltered"), None)
        line = (f"{size:,} points, Edge float32 HNSW: p50 {one['p50_ms']:.2f} ms / p99 {one['p99_ms']:.2f} ms at "
                f"recall@10 {one['recall']:.3f} in the first timed run after opening the index")
        if warm:
            line += f"; the same hnsw_ef later in the sweep (warmer): p50 {warm['p50_ms']:.2f} / p99 {warm['p99_ms']:.2f} ms"
        if exact:
            line += (f". numpy exact: p50 {exact['runs']['unfiltered']['1']['p50_ms']:.1f} ms "
                     f"({exact['runs']['unfiltered']['1']['p50_ms'] / one['p50_ms']:.0f}x slower)")
        out.append(line + ".")
        flt = _smallest(edge["sweep"], "filtered", TARGET_RECALL)
        out.append(f"{size:,} points, filtered ({report['selectivity'][str(size)]:.0%} of points pass): recall@10 "
                   f"{edge['runs']['filtered']['1']['recall']:.3f} at the default hnsw_ef {HNSW_EF_SEARCH}; "
                   + (f"hnsw_ef {flt['value']} reaches {flt['recall']:.3f} at p99 {flt['p99_ms']:.2f} ms."
                      if flt else f"no hnsw_ef of the sweep reaches {TARGET_RECALL}."))
        out.append(f"{size:,} points, 8 client threads on {report['machine']['cores']} cores: "
                   f"{eight['qps'] / one['qps']:.1f}x the single-thread QPS, p99 {eight['p99_ms']:.0f} ms: the "
                   "requests queue for the cores and for the Python GIL (taken back after each engine call).")
        if int8:
            need = [(f, _smallest(int8["sweep"], f, TARGET_RECALL)) for f in ("unfiltered", "filtered")]
            out.append(
                f"{size:,} points, int8: recall@10 {int8['runs']['unfiltered']['1']['recall']:.3f} at the default "
                f"oversampling {_default_oversampling():g}; "
                + "; ".join(f"{f} needs oversampling {x['value']} for {TARGET_RECALL}" if x else
                            f"{f}: no oversampling of the sweep reaches {TARGET_RECALL}" for f, x in need)
                + f". Memory {int8['memory_mb']:,.0f} MB vs {edge['memory_mb']:,.0f} MB float32: the int8 copy "
                "comes on top of the float32 vectors, which rescoring reads; it saves memory only with the "
                "originals on disk. Embeddings of one model are tightly packed (nearest neighbours at cosine "
                "~0.995), so int8 rounding reorders close neighbours.")
        out += peer_findings(results, size, edge)
        out.append(f"{size:,} points, build: {size / edge['upsert_s']:,.0f} points/s through the store API "
                   f"(the binding's payload conversion dominates), HNSW {edge['optimize_s']:,.0f} s "
                   + (f"(int8: {int8['optimize_s']:,.0f} s)" if int8 else "") + ".")
    return out


def peer_findings(results: list[dict[str, Any]], size: int, edge: dict[str, Any]) -> list[str]:
    """The peers against Edge at equal recall: each engine's fastest hnsw_ef of the sweep reaching TARGET_RECALL."""
    out = []
    mine = _smallest(edge["sweep"], "unfiltered", TARGET_RECALL)
    for engine in PEER_ENGINES:
        peer = _find(results, engine, size)
        theirs = peer and _smallest(peer["sweep"], "unfiltered", TARGET_RECALL)
        if not (mine and theirs):
            continue
        out.append(f"{size:,} points, {engine} on the same vectors at recall@10 >= {TARGET_RECALL} (unfiltered, "
                   f"smallest hnsw_ef reaching it): p99 {theirs['p99_ms']:.2f} ms (hnsw_ef {theirs['value']}, "
                   f"recall {theirs['recall']:.3f}) vs Edge through the store {mine['p99_ms']:.2f} ms (hnsw_ef "
                   f"{mine['value']}, recall {mine['recall']:.3f}): {mine['p99_ms'] / theirs['p99_ms']:.1f}x; "
                   f"build {peer['build_s']:,.0f} s vs Edge's HNSW {edge['optimize_s']:,.0f} s.")
    return out


def _mark(met: bool | None) -> str:
    return {True: "**met**", False: "**not met**", None: "n/a"}[met]


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def write_markdown(report: dict[str, Any], path: Path, plot_name: str) -> None:
    results = report["results"]
    m = report["machine"]
    lines = [
        "# Search store benchmark",
        "",
        f"Produced by `bench/search.py`{' --quick' if report['quick'] else ''} on {report['date']}. "
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB RAM, {m['platform']}, Python {m['python']}, "
        f"qdrant-edge-py {m['qdrant-edge-py']}, qdrant-client {m['qdrant-client']}, numpy {m['numpy']}.",
        "",
        "**Timings were taken on a shared 2-core machine** (another benchmark ran on it at times), so latencies "
        "carry noise; compare engines within one run rather than across runs.",
        "",
        "## Data",
        "",
        f"- Source: {report['source']['description']}.",
        f"- Mixture: {json.dumps(report['source']['details'])}.",
        f"- {DIM}-d vectors: the 256-d mixture samples are lifted to {DIM}-d by a fixed random orthogonal map "
        "(512x256, orthonormal columns) plus isotropic Gaussian noise at the per-dimension level of the real "
        "embeddings' residual (what 32 PCA components leave out), then L2-normalised. The shipped model is "
        "256-d; the lift keeps its neighbourhood structure while giving the engines the production dimension.",
        f"- Payloads: a full de-identified `ExamPayload` per point (study key, date, vendor, field strength, views, "
        "labels, a real impression); vendor and field strength follow the scanner styles of the exams each "
        "mixture component explains, so the filter correlates with the vectors as it does in real data.",
        f"- Queries: {N_QUERIES} new samples from the same mixture; top-{TOP_K}; recall@{TOP_K} against exact "
        "float32 cosine over all points (filtered: over the points passing the filter).",
        f"- Filter: {FILTER_TEXT}; selectivity "
        + ", ".join(f"{int(s):,}: {v:.1%}" for s, v in report["selectivity"].items()) + ".",
        f"- HNSW: m={HNSW_M}, ef_construct={HNSW_EF_CONSTRUCT}, hnsw_ef={HNSW_EF_SEARCH} at search (the settings' "
        "defaults); int8 = scalar quantization (quantile 0.99): the best top_k x oversampling candidates by "
        "int8 score are rescored with the float32 vectors (store default oversampling "
        f"{store_params('edge-int8').quantization_oversampling:g}).",
        "- Build = upsert through the store API + `optimize()` (the HNSW build); numpy: loading the matrix. "
        "Memory = resident-set growth of a fresh process: Edge opens the index another process built and runs "
        "the queries (its mapped files' resident pages count; the build's own peak is under Build detail); "
        "local mode fills its in-memory store and runs the queries; numpy holds the matrix. Disk = the Edge "
        "shard folder, write-ahead log included.",
        f"- qdrant-client local mode: 100k only, {CLIENT_LOCAL_MAX_QUERIES} unfiltered and "
        f"{CLIENT_LOCAL_MAX_FILTERED} filtered queries (it is brute force in pure Python; our store serialises "
        "its calls because local mode is not thread-safe). numpy exact: "
        + ", ".join(f"{q} queries at {s:,}" for s, q in NUMPY_MAX_QUERIES.items()) + ".",
        "",
        "## Targets",
        "",
        "| target | measured | status |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {t['target']} | {t['value']} | {_mark(t['met'])} |" for t in report["targets"]]
    lines += ["", "## Findings", ""] + [f"- {line}" for line in findings(report) + report.get("notes", [])]
    for flt in ("unfiltered", "filtered"):
        title = "Unfiltered search" if flt == "unfiltered" else f"Filtered search ({FILTER_TEXT})"
        lines += ["", f"## {title}", "",
                  "| points | engine | build s | memory MB | disk MB | p50 ms (1 thr) | p99 ms (1 thr) | QPS (1 thr) | "
                  "p50 ms (8 thr) | p99 ms (8 thr) | QPS (8 thr) | recall@10 | queries |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in sorted(results, key=lambda r: (r["size"], ENGINES.index(r["engine"]))):
            one, eight = r["runs"][flt]["1"], r["runs"][flt]["8"]
            lines.append(
                f"| {r['size']:,} | {r['engine']} | {_fmt(r['build_s'])} | {_fmt(r['memory_mb'], 0)} | "
                f"{_fmt(r['disk_mb'], 0)} | {one['p50_ms']:.2f} | {one['p99_ms']:.2f} | {one['qps']:,.0f} | "
                f"{eight['p50_ms']:.2f} | {eight['p99_ms']:.2f} | {eight['qps']:,.0f} | {one['recall']:.3f} | "
                f"{one['queries']} |")
    sweeps = [r for r in results if r["sweep"]]
    if sweeps:
        lines += ["", "## Sweeps (1 client thread)", "",
                  "Float32 HNSW: `hnsw_ef` (candidates kept while walking the graph). int8: the oversampling "
                  "(int8 candidates rescored with float32 per result), at hnsw_ef 64.", "",
                  "| points | engine | filter | knob | value | p50 ms | p99 ms | QPS | recall@10 |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in sweeps:
            for s in r["sweep"]:
                lines.append(f"| {r['size']:,} | {r['engine']} | {s['filter']} | {s['knob']} | {s['value']} | "
                             f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['qps']:,.0f} | {s['recall']:.3f} |")
    lines += ["", "## Build detail", "",
              "| points | engine | upsert s | optimize (HNSW) s | build peak RSS MB | segments |",
              "| --- | --- | --- | --- | --- | --- |"]
    for r in sorted(results, key=lambda r: (r["size"], ENGINES.index(r["engine"]))):
        lines.append(f"| {r['size']:,} | {r['engine']} | {_fmt(r['upsert_s'])} | {_fmt(r['optimize_s'])} | "
                     f"{_fmt(r['build_peak_mb'], 0)} | {r.get('segments', '-')} |")
    lines += ["", f"![latency and recall]({plot_name})", ""]
    path.write_text("\n".join(lines))


def write_plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = report["results"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    labels, p99_all, p99_flt = [], [], []
    for r in sorted(results, key=lambda r: (r["size"], ENGINES.index(r["engine"]))):
        labels.append(f"{r['engine']}\n{r['size'] // 1000:,}k")
        p99_all.append(r["runs"]["unfiltered"]["1"]["p99_ms"])
        p99_flt.append(r["runs"]["filtered"]["1"]["p99_ms"])
    x = np.arange(len(labels))
    ax1.bar(x - 0.2, p99_all, 0.4, label="unfiltered")
    ax1.bar(x + 0.2, p99_flt, 0.4, label=f"filtered ({FILTER_TEXT})")
    ax1.axhline(TARGET_P99_MS, color="red", linestyle="--", linewidth=1, label=f"target {TARGET_P99_MS:g} ms")
    ax1.set_yscale("log")
    ax1.set_xticks(x, labels, fontsize=8)
    ax1.set_ylabel("p99 latency, 1 client thread (ms, log)")
    ax1.set_title("Search latency")
    ax1.legend(fontsize=8)
    largest = max(r["size"] for r in results)
    for r in (r for r in results if r["size"] == largest):  # the largest size's sweeps only, for legibility
        for flt, style in (("unfiltered", "-o"), ("filtered", "--s")):
            pts = [s for s in r["sweep"] if s["filter"] == flt]
            if pts:
                ax2.plot([s["p99_ms"] for s in pts], [s["recall"] for s in pts], style,
                         label=f"{r['engine']} {r['size'] // 1000:,}k {flt} ({pts[0]['knob']})")
                for s in pts:
                    ax2.annotate(str(s["value"]), (s["p99_ms"], s["recall"]), fontsize=6)
    ax2.axhline(TARGET_RECALL, color="red", linestyle="--", linewidth=1)
    ax2.axvline(TARGET_P99_MS, color="red", linestyle="--", linewidth=1)
    ax2.set_xscale("log")
    ax2.set_xlabel("p99 latency, 1 client thread (ms, log)")
    ax2.set_ylabel(f"recall@{TOP_K}")
    ax2.set_title("Recall vs latency: hnsw_ef (float32) / oversampling (int8) as labels")
    ax2.legend(fontsize=7)
    fig.suptitle(f"Search store benchmark, {DIM}-d, {report['machine']['cores']} cores (shared), "
                 f"{report['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="search store benchmark (1 client thread)")
    for col in ("points", "engine", "build s", "mem MB", "p99 ms", "recall", "p99 ms filt", "recall filt"):
        table.add_column(col, justify="right")
    for r in sorted(report["results"], key=lambda r: (r["size"], ENGINES.index(r["engine"]))):
        a, f = r["runs"]["unfiltered"]["1"], r["runs"]["filtered"]["1"]
        table.add_row(f"{r['size']:,}", r["engine"], _fmt(r["build_s"]), _fmt(r["memory_mb"], 0),
                      f"{a['p99_ms']:.2f}", f"{a['recall']:.3f}", f"{f['p99_ms']:.2f}", f"{f['recall']:.3f}")
    console = Console(stderr=True)
    console.print(table)
    for t in report["targets"]:
        console.print(f"{_mark(t['met'])}: {t['target']} -> {t['value']}")


# ------------------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------------------
def run(quick: bool = False, out_dir: Path = Path("docs/benchmarks"),
        data_root: Path = REPO / "data" / "bench", work_dir: Path | None = None,
        sizes: Sequence[int] | None = None, resume: Path | None = None,
        engines: Sequence[str] = ENGINES) -> dict[str, Any]:
    """Run the benchmark and write <out_dir>/search{,_quick}.{md,png,json}; returns the report.
    sizes overrides the point counts (a smoke test of the benchmark itself). The work folder is removed
    after a complete run and kept after a failed one: pass it as `resume` to measure only what is missing."""
    sizes = tuple(sizes or (SIZES_QUICK if quick else SIZES_FULL))
    rng = np.random.default_rng(SEED)
    if resume is not None:
        ds = Dataset(Path(resume))
        print(f"resuming in {ds.folder}", file=sys.stderr)
    else:
        ds = Dataset(Path(tempfile.mkdtemp(prefix="bench-search-", dir=work_dir)))
        mix = build_mixture(data_root, rng)
        print(f"data source: {mix.source}", file=sys.stderr)
        write_dataset(mix, max(sizes), ds.folder, rng)
    try:
        selectivity = {}
        for size in sizes:
            if not ds.truth(size).exists():
                gt_all, gt_filtered, _ = ground_truth(ds, size)
                np.savez(ds.truth(size), all=gt_all, filtered=gt_filtered)
            selectivity[size] = float(filter_mask(np.load(ds.meta), size).mean())
        results, measured_now = [], []
        for size in sizes:
            for engine in engines:
                if engine == "client-local" and size > CLIENT_LOCAL_MAX_SIZE:
                    continue
                print(f"== {engine} at {size:,} points", file=sys.stderr, flush=True)
                if not (ds.folder / f"result_{engine}_{size}_serve.json").exists():
                    measured_now.append(f"{engine} at {size:,}")
                results.append(run_worker(engine, ds, size))
    except BaseException:
        print(f"benchmark interrupted; its work folder is kept: resume with --resume {ds.folder}", file=sys.stderr)
        raise
    source = json.loads(ds.source.read_text())
    shutil.rmtree(ds.folder, ignore_errors=True)
    report: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "quick": quick, "machine": machine(), "sizes": list(sizes),
        "source": source,
        "notes": ([f"The run was interrupted and resumed; measured after resuming: {', '.join(measured_now)}."]
                  if resume is not None else []),
        "params": {"dim": DIM, "top_k": TOP_K, "hnsw_m": HNSW_M, "hnsw_ef_construct": HNSW_EF_CONSTRUCT,
                   "hnsw_ef_search": HNSW_EF_SEARCH, "queries": N_QUERIES, "filter": FILTER_TEXT},
        "selectivity": {str(k): v for k, v in selectivity.items()},
        "results": results,
    }
    report["targets"] = evaluate_targets(results, sizes)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "search_quick" if quick else "search"
    (out_dir / f"{stem}.json").write_text(json.dumps(report, indent=1))
    render(out_dir / f"{stem}.json")
    return report


def render(report_json: Path) -> None:
    """Write the markdown table and the plot beside a report's JSON (again, e.g. after a wording change)."""
    report = json.loads(report_json.read_text())
    report["targets"] = evaluate_targets(report["results"], report["sizes"])
    write_plot(report, report_json.with_suffix(".png"))
    write_markdown(report, report_json.with_suffix(".md"), report_json.with_suffix(".png").name)
    print_summary(report)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100k vectors only (about 10 minutes on 2 cores)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    ap.add_argument("--out-dir", type=Path, default=Path("docs/benchmarks"))
    ap.add_argument("--data-root", type=Path, default=REPO / "data" / "bench",
                    help="where cached synthetic studies are looked for (the mixture's source)")
    ap.add_argument("--work-dir", type=Path, default=None,
                    help="scratch folder (default: the system temp dir); needs about 2 GB per million vectors "
                    "for the data set plus the Edge shard being measured (~7 GB at 1M)")
    ap.add_argument("--resume", type=Path, metavar="WORK_DIR",
                    help="finish an interrupted run from its kept work folder (same --quick/--sizes)")
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="only re-render the .md and .png beside a saved report")
    ap.add_argument("--sizes", type=int, nargs="+", help="point counts to run instead (e.g. a small smoke test)")
    ap.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES),
                    help="engines to measure (default all)")
    ap.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=("build", "serve"), default="serve", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.render:
        render(args.render)
        return
    if args.worker:
        worker(args.worker, args.phase, Dataset(args.data), args.size, args.result)
        return
    report = run(quick=args.quick, out_dir=args.out_dir, data_root=args.data_root, work_dir=args.work_dir,
                 sizes=args.sizes, resume=args.resume, engines=args.engines)
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
