"""Where a search's time goes: the project's store API vs the raw Qdrant Edge shard under it, on the same index,
beside FAISS HNSW and hnswlib on the same vectors, and the stall that Edge's `optimize()` puts on searches.

    .venv/bin/python -m bench.store_overhead [--points 20000] [--queries 300]

Every variant answers the same query in turn (one client thread; the order rotates from query to query, so
none always pays the first touch of a hit's pages), so a busy machine slows them alike and their ratios hold;
absolute latencies carry the machine's load, recorded beside them. The shard's files are read once before
(`EdgeStore.warm_up`, as the search service does at start): without it the first read of each hit's payload
page was a major fault on this shared machine (~0.7 ms per hit), whichever variant came first.

Variants (unfiltered top-10, hnsw_ef swept):
- edge raw, no payload: `EdgeShard.search` alone, ids and scores only.
- edge raw, payload: the same returning the payload the store asks for (parts left out).
- edge raw, all payload: `with_payload=True`, the form the store uses for `with_parts=True` reads.
- store: `EdgeStore.search` (query checks, filter translation, lock, payload validation, result objects).
- store, with parts: as the text search calls it (`with_parts=True`).
- faiss-hnsw, hnswlib: bench/search_peers.py, same m / ef_construct, vectors only.

The optimize stall: a probe thread searches every 10 ms while `optimize()` builds the HNSW graph in another
thread; the longest gap between two probe answers is how long serving stops (the build holds the GIL).
Results: docs/benchmarks/store_overhead.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

import bench.search as bs
from bench.search_peers import PEER_ENGINES, make_peer

EF_VALUES = (16, 32, 64, 128)
PROBE_INTERVAL_S = 0.01


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _stats(lat_ms: list[float]) -> dict[str, float]:
    arr = np.asarray(lat_ms)
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "mean_ms": float(arr.mean())}


def optimize_with_probe(store: Any, collection: str, query: NDArray[np.float32]) -> dict[str, float]:
    """Run optimize() while a probe thread searches every PROBE_INTERVAL_S; the probe's longest gap is the
    stall a serving process sees."""
    done = threading.Event()
    answers: list[float] = []
    latencies: list[float] = []

    def probe() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            store.search(collection, query, bs.TOP_K)
            t1 = time.perf_counter()
            answers.append(t1)
            latencies.append((t1 - t0) * 1e3)
            time.sleep(PROBE_INTERVAL_S)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    time.sleep(0.2)  # a few answers before the build starts
    t0 = time.perf_counter()
    store.optimize(collection)
    optimize_s = time.perf_counter() - t0
    time.sleep(0.2)
    done.set()
    thread.join()
    gaps = np.diff(answers) * 1e3 if len(answers) > 1 else np.zeros(1)
    return {"optimize_s": optimize_s, "probe_answers": len(answers), "longest_gap_ms": float(gaps.max()),
            "probe_p99_ms": float(np.percentile(latencies, 99)), "probe_max_ms": float(max(latencies))}


def interleaved(variants: dict[str, Callable[[NDArray[np.float32], int], list[Any]]],
                queries: NDArray[np.float32], ef: int) -> tuple[dict[str, list[float]], dict[str, list[list[Any]]]]:
    lat: dict[str, list[float]] = {k: [] for k in variants}
    found: dict[str, list[list[Any]]] = {k: [] for k in variants}
    names = list(variants)
    for i, q in enumerate(tqdm(queries, desc=f"hnsw_ef {ef}", unit="q", leave=False, mininterval=1)):
        for name in names[i % len(names):] + names[: i % len(names)]:
            fn = variants[name]
            t0 = time.perf_counter()
            answer = fn(q, ef)
            lat[name].append((time.perf_counter() - t0) * 1e3)
            found[name].append(answer)
    return lat, found


def run(points: int, n_queries: int, out_dir: Path, work_dir: Path | None) -> dict[str, Any]:
    import qdrant_edge as edge

    from search_svc.store import EdgeStore
    from search_svc.store.base import UNSTORED_ON_READ

    rng = np.random.default_rng(bs.SEED)
    folder = Path(tempfile.mkdtemp(prefix="bench-store-", dir=work_dir))
    ds = bs.write_dataset(bs.generated_mixture(rng), points, folder, rng)
    truth_all, _, _ = bs.ground_truth(ds, points)
    queries, warmup = np.load(ds.queries)[:n_queries], np.load(ds.warmup)
    truth_ids = bs.row_ids(truth_all[:n_queries])
    vectors = bs.read_rows(ds.vectors, 0, points)
    load_before = load_average()

    store = EdgeStore(folder / "index", bs.store_params("edge"))
    upsert_s, _ = bs.fill_store(store, ds, points, f"edge {points:,}", build=False)
    stall = optimize_with_probe(store, "exams", warmup[0])
    store.count("exams")
    shard = store._collections["exams"].shard  # noqa: SLF001 - the raw engine under the store, on purpose
    row_to_id = bs.row_ids(np.arange(points)[None, :])[0]

    build: dict[str, float] = {"edge upsert (store API)": upsert_s, "edge optimize (HNSW)": stall["optimize_s"]}
    peers = {}
    for engine in PEER_ENGINES:
        peer = make_peer(engine, bs.DIM, bs.HNSW_M, bs.HNSW_EF_CONSTRUCT, points)
        t0 = time.perf_counter()
        peer.add(vectors)
        build[engine] = time.perf_counter() - t0
        peers[engine] = peer

    def raw(payload: Any) -> Callable[[NDArray[np.float32], int], list[str]]:
        def search(q: NDArray[np.float32], ef: int) -> list[str]:
            request = edge.SearchRequest(query=edge.Query.Nearest(q.tolist()), limit=bs.TOP_K,
                                         params=edge.SearchParams(hnsw_ef=ef), with_payload=payload,
                                         with_vector=False)
            return [str(p.id) for p in shard.search(request)]
        return search

    def peer_search(engine: str) -> Callable[[NDArray[np.float32], int], list[str]]:
        return lambda q, ef: [row_to_id[r] for r in peers[engine].search(q, bs.TOP_K, ef)]

    variants: dict[str, Callable[[NDArray[np.float32], int], list[Any]]] = {
        "edge raw, no payload": raw(False),
        "edge raw, payload": raw(edge.PayloadSelector.Exclude(list(UNSTORED_ON_READ))),
        "edge raw, all payload": raw(True),
        "store": lambda q, ef: [h.id for h in store.search("exams", q, bs.TOP_K, hnsw_ef=ef)],
        "store, with parts": lambda q, ef: [h.id for h in store.search("exams", q, bs.TOP_K, hnsw_ef=ef,
                                                                       with_parts=True)],
        **{engine: peer_search(engine) for engine in PEER_ENGINES},
    }
    warmed_mb = store.warm_up("exams") / 2**20
    interleaved(variants, warmup[:100], 64)  # untimed: page cache and lazily built structures
    rows = []
    for ef in EF_VALUES:
        lat, found = interleaved(variants, queries, ef)
        for name in variants:
            rows.append({"variant": name, "hnsw_ef": ef, **_stats(lat[name]),
                         "recall": bs.recall(found[name], truth_ids)})
    store.close()
    report = {
        "date": dt.date.today().isoformat(), "machine": bs.machine(), "points": points, "queries": n_queries,
        "load_average_before": load_before, "load_average_after": load_average(),
        "params": {"dim": bs.DIM, "top_k": bs.TOP_K, "hnsw_m": bs.HNSW_M, "hnsw_ef_construct": bs.HNSW_EF_CONSTRUCT},
        "build_s": build, "optimize_stall": stall, "warmed_mb": warmed_mb, "rows": rows,
    }
    shutil.rmtree(folder, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "store_overhead.json").write_text(json.dumps(report, indent=1))
    write_markdown(report, out_dir / "store_overhead.md")
    return report


def ratio_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    by = {(r["variant"], r["hnsw_ef"]): r for r in rows}
    lines = ["| hnsw_ef | store / raw with payload (p50) | store / raw with payload (p99) | "
             "store with parts / raw all payload (p99) | raw with payload / raw no payload (p50) |",
             "| --- | --- | --- | --- | --- |"]
    for ef in sorted({r["hnsw_ef"] for r in rows}):
        raw, store = by[("edge raw, payload", ef)], by[("store", ef)]
        parts, everything = by[("store, with parts", ef)], by[("edge raw, all payload", ef)]
        bare = by[("edge raw, no payload", ef)]
        lines.append(f"| {ef} | {store['p50_ms'] / raw['p50_ms']:.2f}x | {store['p99_ms'] / raw['p99_ms']:.2f}x | "
                     f"{parts['p99_ms'] / everything['p99_ms']:.2f}x | {raw['p50_ms'] / bare['p50_ms']:.2f}x |")
    return lines


def write_markdown(report: dict[str, Any], path: Path) -> None:
    m, stall = report["machine"], report["optimize_stall"]
    lines = [
        "# Store overhead: the store API vs raw Qdrant Edge, FAISS HNSW and hnswlib",
        "",
        f"Produced by `python -m bench.store_overhead --points {report['points']}` on {report['date']}. Machine: "
        f"{m['cpu']}, {m['cores']} cores, **shared with other jobs**: load average (1, 5, 15 min) "
        f"{report['load_average_before']} before the queries, {report['load_average_after']} after. "
        f"qdrant-edge-py {m['qdrant-edge-py']}, numpy {m['numpy']}.",
        "",
        f"{report['points']:,} points x {report['params']['dim']}-d (the search benchmark's generated mixture and "
        f"payloads), HNSW m={report['params']['hnsw_m']}, ef_construct={report['params']['hnsw_ef_construct']}, "
        f"top-{report['params']['top_k']}, {report['queries']} queries per hnsw_ef, one client thread; every "
        "variant answers each query in turn, so the ratios are side by side under the same load. "
        f"Recall@10 against exact cosine. The shard's files ({report['warmed_mb']:,.0f} MB) were read once "
        "before the queries (`EdgeStore.warm_up`).",
        "",
        "## Ratios (the numbers that count on a shared machine)",
        "",
        *ratio_table(report["rows"]),
        "",
        "## Latency and recall",
        "",
        "| variant | hnsw_ef | p50 ms | p99 ms | mean ms | recall@10 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r['variant']} | {r['hnsw_ef']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['mean_ms']:.3f} | "
              f"{r['recall']:.3f} |" for r in report["rows"]]
    lines += ["", "## Build", "", "| what | seconds |", "| --- | --- |"]
    lines += [f"| {k} | {v:.1f} |" for k, v in report["build_s"].items()]
    lines += [
        "", "## The optimize stall", "",
        f"`optimize()` built the HNSW graph of {report['points']:,} points in {stall['optimize_s']:.1f} s while a "
        f"probe thread searched every {PROBE_INTERVAL_S * 1e3:.0f} ms: its longest gap between two answers was "
        f"{stall['longest_gap_ms']:,.0f} ms ({stall['probe_answers']} answers in all, probe p99 "
        f"{stall['probe_p99_ms']:.1f} ms, max {stall['probe_max_ms']:,.0f} ms). The build holds the GIL, so "
        "every thread of a serving process waits for it: see docs/benchmarks/live_index.md.", ""]
    path.write_text("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--out-dir", type=Path, default=Path("docs/benchmarks"))
    ap.add_argument("--work-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    report = run(args.points, args.queries, args.out_dir, args.work_dir)
    for line in ratio_table(report["rows"]):
        print(line)
    print(f"platform {platform.platform()}; optimize stall {report['optimize_stall']}")


if __name__ == "__main__":
    main()
