"""The load benchmark's report: JSON (everything), markdown (the answer, the configuration, per-step tables) and
one figure (p50/p99 latency against achieved QPS per RPC with and without ingestion, the limit line, and
throughput against concurrency)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.load_stats import ALL, Step, best_step

PHASES = {"ingest": "with ingestion", "idle": "without ingestion",
          "text-idle": "SearchByText alone, without ingestion",
          "text-hit-idle": "SearchByText alone, repeated queries (cache hits), without ingestion",
          "text-ingest": "SearchByText alone, with ingestion"}
# Issue 19's targets for SearchByText alone at 10 queries/s open loop: (p50, p99) ceilings in ms, None = no target.
# The cache-hit step has none: it is the reference that splits the text tower's time from everything around it.
TEXT_TARGETS: dict[str, tuple[float | None, float | None]] = {"text-idle": (8.0, 20.0), "text-hit-idle": (None, None),
                                                              "text-ingest": (None, 40.0)}


@dataclass
class LoadBench:
    when: str
    machine: str
    load_avg_before: list[float]
    load_avg_after: list[float]
    quick: bool
    security: str
    identities: int               # simulated users, one token subject each
    rate_limit: str
    index: dict[str, Any]         # real / padded / total exams, source
    mix: list[tuple[str, float]]
    warmup_s: float
    step_s: float
    limit_ms: float
    max_error_rate: float
    nice: int                     # niceness of every process of the run (they inherit it)
    steps: list[Step] = field(default_factory=list)
    best: dict[str, dict[str, Any] | None] = field(default_factory=dict)  # phase -> chosen step summary
    loadgen_cpu_share: float = 0.0  # of the CPU the whole run used (all parts), over all steps
    note: str = ""
    env_overrides: dict[str, str] = field(default_factory=dict)  # CMR_* settings the run's environment changed
    # How SearchByText embedded its query: the search service's own tower (its runtime) or None = through
    # EncoderService and Triton (runs before the in-process tower).
    text_runtime: str | None = None
    query_cache_size: int = 0


def label(step: Step) -> str:
    return f"{step.concurrency} clients" if step.mode == "closed" else f"{step.offered_qps:g}/s offered"


def best_summary(step: Step | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {"qps": step.qps, "load": label(step), "mode": step.mode, "concurrency": step.concurrency,
            "offered_qps": step.offered_qps, "p99_ms": step.p99_ms,
            "text_p99_ms": step.rpcs["SearchByText"].p99_ms if "SearchByText" in step.rpcs else float("nan"),
            "ingest_per_min": step.ingest_per_min}


def write(result: LoadBench, out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{stem}.json").write_text(json.dumps(asdict(result), indent=2, default=str))
    plot(result, out_dir / f"{stem}.png")
    md = out_dir / f"{stem}.md"
    md.write_text(to_markdown(result, f"{stem}.png"))
    return md


def plot(r: LoadBench, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.8))
    rpcs = sorted({name for s in r.steps for name in s.rpcs if name != ALL}) + [ALL]
    colors = {name: f"C{i}" for i, name in enumerate(rpcs)}
    for ax, pct in ((axes[0], "p99_ms"), (axes[1], "p50_ms")):
        for phase, style in (("ingest", "-"), ("idle", "--")):
            steps = [s for s in r.steps if s.phase == phase and s.mode == "open"]
            for name in rpcs:
                pts = [(s.qps, getattr(s.rpcs[name], pct)) for s in steps if name in s.rpcs]
                if pts:
                    ax.plot(*zip(*pts), style, marker="o", ms=3, color=colors[name],
                            label=f"{name}, {PHASES[phase]}", lw=2.4 if name == ALL else 1.1)
            closed = [(s.qps, getattr(s.rpcs[ALL], pct)) for s in r.steps if s.phase == phase and s.mode == "closed"]
            if closed:
                ax.plot(*zip(*closed), ":", marker="s" if phase == "ingest" else "D", ms=4, color="0.4", lw=0.8,
                        label=f"all, closed loop, {PHASES[phase]}")
        ax.axhline(r.limit_ms, color="red", lw=1, ls=":", label=f"{r.limit_ms:.0f} ms")
        ax.set_yscale("log")
        ax.set_xlabel("achieved QPS (all RPCs)")
        ax.set_ylabel(f"{pct[:3]} latency, ms")
        ax.set_title(f"{pct[:3]} vs QPS (open loop; solid: ingesting)", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=6, fontsize=7, frameon=False)
    ax = axes[2]
    for phase, style, color in (("ingest", "-", "C0"), ("idle", "--", "C2")):
        steps = [s for s in r.steps if s.phase == phase and s.mode == "closed"]
        if steps:
            ax.plot([s.concurrency for s in steps], [s.qps for s in steps], style, marker="o", color=color,
                    label=f"QPS, {PHASES[phase]}")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("closed-loop clients")
    ax.set_ylabel("achieved QPS")
    ax.set_title("throughput vs concurrency (closed loop)", fontsize=10)
    ax.grid(alpha=0.3)
    ing = [s for s in r.steps if s.phase == "ingest" and s.mode == "closed"]
    if ing:
        tw = ax.twinx()
        tw.plot([s.concurrency for s in ing], [s.ingest_per_min for s in ing], ":", marker="s", color="C3",
                label="ingested studies/min")
        tw.set_ylabel("studies / min", color="C3")
        tw.set_ylim(bottom=0)
        tw.legend(loc="lower right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout(rect=(0, 0.13, 1, 1))  # room for the shared legend below
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v: float) -> str:
    return "-" if v != v else f"{v:.1f}"


def _step_rows(steps: list[Step]) -> str:
    rows = []
    for s in steps:
        for name, st in s.rpcs.items():
            errs = ", ".join(f"{k} {v}" for k, v in st.errors.items()) or "0"
            rows.append(f"| {label(s)} | {'**all**' if name == ALL else name} | {st.qps:.1f} | {_fmt(st.p50_ms)} | "
                        f"{_fmt(st.p95_ms)} | {_fmt(st.p99_ms)} | {_fmt(st.max_ms)} | {errs} |")
    return "\n".join(rows)


def _cpu_rows(steps: list[Step]) -> tuple[str, str]:
    parts = sorted({k for s in steps for k in s.cpu_cores if k not in ("machine", "other")}) + ["other", "machine"]
    head = "| phase | load | QPS | in flight | ingest/min | index builds | " + " | ".join(parts) + " | load avg |"
    sep = "| --- " * (len(parts) + 7) + "|"
    rows = [f"| {PHASES[s.phase]} | {label(s)} | {s.qps:.1f} | {s.in_flight:.1f} | {s.ingest_per_min:.1f} | "
            f"{s.index_builds} | "
            + " | ".join(f"{s.cpu_cores.get(p, 0.0):.2f}" for p in parts) + f" | {s.load_avg:.2f} |" for s in steps]
    return head + "\n" + sep, "\n".join(rows)


def _answer(r: LoadBench, phase: str) -> str:
    b = r.best.get(phase)
    if not b:
        return f"- **{PHASES[phase]}**: no step kept every p99 under {r.limit_ms:.0f} ms"
    extra = f", ingesting {b['ingest_per_min']:.1f} studies/min meanwhile" if phase == "ingest" else ""
    how = "closed loop, " if b["mode"] == "closed" else "open loop, "
    return (f"- **{PHASES[phase]}: {b['qps']:.1f} QPS** ({how}{b['load']}; p99 of the mix "
            f"{b['p99_ms']:.1f} ms, SearchByText p99 {b['text_p99_ms']:.1f} ms{extra})")


def text_path(r: LoadBench) -> str:
    if r.text_runtime is None:
        return "text -> EncoderService -> Triton -> index"
    return (f"text -> the search service's own text tower ({r.text_runtime}, one thread, query cache of "
            f"{r.query_cache_size}) -> index")


def _quiet(r: LoadBench) -> str:
    return ("a quiet machine before the run" if r.load_avg_before and r.load_avg_before[0] < 1.0
            else "**shared with other jobs**: read latencies as upper bounds")


def _text_section(r: LoadBench) -> str:
    """SearchByText alone at its target rate, each phase against issue 19's targets."""
    rows = []
    for phase, (p50_max, p99_max) in TEXT_TARGETS.items():
        for s in (s for s in r.steps if s.phase == phase):
            st = s.rpcs.get("SearchByText")
            if st is None:
                continue
            errs = sum(st.errors.values())
            if p99_max is None:
                want, verdict = "reference, no target", ""
            else:
                met = st.ok > 0 and st.p99_ms <= p99_max and (p50_max is None or st.p50_ms <= p50_max)
                want = (f"p50 <= {p50_max:g}, " if p50_max is not None else "") + f"p99 <= {p99_max:g}"
                verdict = "met" if met else "**not met**"
            rows.append(f"| {PHASES[phase]} | {label(s)} | {st.qps:.1f} | {_fmt(st.p50_ms)} | {_fmt(st.p99_ms)} | "
                        f"{_fmt(st.max_ms)} | {errs} | {want} | {verdict} |")
    if not rows:
        return "Not measured in this run."
    return ("| phase | load | QPS | p50 ms | p99 ms | max ms | errors | target (ms) | |\n"
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |\n" + "\n".join(rows) + "\n\n"
            "Every query is a new text (an impression sentence in a random letter case: the query cache keys on the "
            "exact text and misses, the uncased tokenizer sees the sentence's tokens), so this is the text tower's "
            "cost on every call; docs/benchmarks/text_path.md measures what the cache saves at a stated repeat rate. "
            "The cache-hit step asks the same few sentences again (each answered once before it), so the tower is "
            "skipped: its latency is everything around the tower (TLS, token, audit, search, the why lines, the "
            "client), and the difference of the medians is what the tower adds at this rate.")


def load_json(path: Path) -> LoadBench:
    """A result written by `write`, back as objects (to re-render the report without re-running)."""
    from bench.load_stats import RpcStats

    d = json.loads(path.read_text())
    steps = []
    for st in d.pop("steps"):
        st["rpcs"] = {k: RpcStats(**v) for k, v in st["rpcs"].items()}
        steps.append(Step(**st))
    d["mix"] = [tuple(m) for m in d["mix"]]
    return LoadBench(**d, steps=steps)


def cpu_ms_per_query(step: Step) -> float:
    """CPU the serving path spent per answered query (encoder + Triton, search, load generator), in ms."""
    used = sum(step.cpu_cores.get(k, 0.0) for k in ("encoder+triton", "search", "loadgen"))
    return 1000.0 * used / step.qps if step.qps > 0 else float("nan")


def _reading(r: LoadBench) -> str:
    """What the numbers say, computed from them (so a re-run rewrites it too)."""
    lines = []
    idle = [s for s in r.steps if s.phase == "idle" and s.mode == "closed"]
    ing = [s for s in r.steps if s.phase == "ingest" and s.mode == "closed"]
    in_process = r.text_runtime is not None
    hop = ("the query's text tower, run in the search service itself" if in_process
           else "the text encoder hop (search -> EncoderService -> Triton -> MiniLM on CPU)")
    if idle and "SearchByText" in idle[0].rpcs:
        first = idle[0].rpcs
        index_only = [first[n].p50_ms for n in ("SearchByStudy", "ZeroShot", "Get") if n in first] or [float("nan")]
        lines.append(f"- At one client the median SearchByText takes {first['SearchByText'].p50_ms:.1f} ms, the "
                     f"index-only calls {min(index_only):.1f}-{max(index_only):.1f} ms: the difference is {hop} "
                     "(the mix repeats its phrases, so most of its text queries hit the query cache; the step of "
                     "SearchByText alone above pays the tower on every query); the vector search itself is a few ms "
                     "even with the padded index.")
    open_idle = [s for s in r.steps if s.phase == "idle" and s.mode == "open" and "SearchByText" in s.rpcs]
    if open_idle:
        busiest = max(open_idle, key=lambda s: s.qps)
        text_qps = busiest.rpcs["SearchByText"].qps
        part = "search" if in_process else "encoder+triton"
        text_ms = 1000.0 * busiest.cpu_cores.get(part, 0.0) / text_qps if text_qps else float("nan")
        low = min(open_idle, key=lambda s: s.qps)
        lines.append(f"- At {low.offered_qps:g} queries/s, far from any saturation, SearchByText had p50 "
                     f"{low.rpcs['SearchByText'].p50_ms:.1f} ms and p99 {low.rpcs['SearchByText'].p99_ms:.1f} ms; "
                     f"the {'search service' if in_process else 'encoder + Triton'} spent about {text_ms:.0f} ms of "
                     f"CPU per text query of the mix (at {busiest.qps:.1f} QPS).")
    if idle:
        top = max(idle, key=lambda s: s.qps)
        per_q = cpu_ms_per_query(top)
        share = top.cpu_cores.get("encoder+triton", 0.0) / max(1e-9, sum(
            top.cpu_cores.get(k, 0.0) for k in ("encoder+triton", "search", "loadgen")))
        other = sum(s.cpu_cores.get("other", 0.0) for s in r.steps) / max(1, len(r.steps))
        lines.append(f"- Cost: at the busiest closed-loop step without ingestion ({top.qps:.1f} QPS) the serving path "
                     f"used {per_q:.1f} ms of CPU per query, {share:.0%} of it in the encoder + Triton. Other jobs on "
                     f"the machine used {other:.2f} of its 2 cores on average during the steps, much of it at normal "
                     f"priority while this run was niced {r.nice}, so latencies here are pessimistic. On 2 cores of its own the same "
                     f"cost would allow roughly {2000.0 / per_q:.0f} QPS of this mix at saturation (a projection "
                     "from CPU time, not a measurement; whether p99 stays under the limit there needs a machine of its own).")
    if idle and ing:
        a, b = max(s.qps for s in idle), max(s.qps for s in ing)
        rate = sum(s.ingest_per_min for s in ing) / len(ing)
        lines.append(f"- Ingestion: the closed-loop peak drops from {a:.1f} to {b:.1f} QPS ({b / a - 1:+.0%}) while "
                     f"the worker ingests {rate:.1f} studies/min on average (de-identification, parsing and "
                     "assembling exam tensors and segmenting are CPU work on the same cores, at the worker's "
                     "lower priority).")
    errs = {k: v for s in r.steps for k, v in s.rpcs[ALL].errors.items()}
    limited = " (no RESOURCE_EXHAUSTED: calls spread over the identities stay far below the per-identity rate " \
        "limit)" if r.rate_limit != "off" else ""
    lines.append("- Errors: " + (", ".join(f"{k} {v}" for k, v in errs.items()) if errs else
                                 f"none in any step{limited}."))
    return "\n".join(lines)


def _per_rpc(r: LoadBench) -> str:
    """Per RPC and phase: the highest total QPS at which that RPC's own p99 stayed under the limit."""
    rpcs = sorted({name for s in r.steps for name in s.rpcs if name != ALL})
    rows = []
    for name in rpcs:
        cells = []
        for phase in ("ingest", "idle"):
            b = best_step([s for s in r.steps if s.phase == phase], r.limit_ms, r.max_error_rate, rpc=name)
            cells.append("none" if b is None else f"{b.qps:.1f} ({label(b)}, p99 {b.rpcs[name].p99_ms:.1f} ms)")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return ("| RPC | highest QPS with its p99 under the limit, with ingestion | without ingestion |\n"
            "| --- | --- | --- |\n" + "\n".join(rows))


def to_markdown(r: LoadBench, png: str) -> str:
    cpu_head, cpu_rows = _cpu_rows(r.steps)
    mix = ", ".join(f"{name} {share:.0%}" for name, share in r.mix)
    tables = "\n\n".join(
        f"### {PHASES[phase][:1].upper() + PHASES[phase][1:]}\n\n| load | RPC | QPS | p50 ms | p95 ms | p99 ms | max ms | errors |\n"
        f"| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |\n{_step_rows([s for s in r.steps if s.phase == phase])}"
        for phase in PHASES if any(s.phase == phase for s in r.steps))
    return f"""# Load benchmark: sustained QPS with search p99 under {r.limit_ms:.0f} ms

`cmr bench load{' --quick' if r.quick else ''}`, {r.when}. Machine: {r.machine}; load average {r.load_avg_before}
before and {r.load_avg_after} after the run (1, 5, 15 min: {_quiet(r)}). Every process of the run ran at niceness
{r.nice}.

## Answer

Highest achieved QPS at which the p99 latency of every RPC of the mix (and of the mix pooled) stayed under
{r.limit_ms:.0f} ms with at most {r.max_error_rate:.0%} errors:

{_answer(r, 'ingest')}
{_answer(r, 'idle')}

{"Steps are discrete, so the real limit lies between the answer and the next step up. " if any(r.best.values()) else ""}Which RPC holds the
answer back (each RPC's own p99 judged alone; QPS is that of the whole mix):

{_per_rpc(r)}

## SearchByText alone at 10 queries/s (open loop)

{_text_section(r)}

## Configuration

- **Security: {r.security}.** {r.identities} simulated clinicians, each its own identity (a token with subject
  `user-<i>` and role clinician); calls are spread round robin over them, so no identity comes near the
  per-identity rate limit ({r.rate_limit}).
- Settings changed by the environment (every part inherits them): {", ".join(f"`{k}={v}`" for k, v in
  sorted(r.env_overrides.items())) or "none, the defaults of cmr/config.py"}.
- Parts, each its own process on the same {r.machine.split(',')[1].strip() if ',' in r.machine else ''}: Triton + EncoderService (dynamic batching), SearchService on
  Qdrant Edge (on disk, HNSW m=16, ef 64), the Tansu Kafka broker and one ingest worker; the load generator
  is this benchmark's own process.
- Index: {r.index.get('total')} exams: {r.index.get('real')} synthetic CMR studies ({r.index.get('source')})
  encoded by EncoderService and upserted through SearchService, padded with {r.index.get('padded')} noisy copies
  of their image and report vectors (cosine about 0.9 to a real one, so they crowd the same clusters) so that
  HNSW is not trivially small; the service was restarted after the bulk load so the graph covers them.
- Query mix: {mix}. SearchByText takes a sentence of a real-style impression ({text_path(r)},
  top 10); SearchByStudy (digital twins + nearest reports, top 10), ZeroShot (calibrated profile) and Get take an
  indexed study key.
- Two kinds of step, each {r.warmup_s:.0f} s warm-up (discarded) then {r.step_s:.0f} s measured, latencies
  client-side (TLS, token, serialisation included), percentiles nearest-rank:
  - closed loop at rising concurrency (N client threads, each waits for its answer, no think time): the
    capacity, and throughput vs concurrency;
  - open loop at rising arrival rates (Poisson, up to 64 calls in flight; latency from the scheduled arrival, so
    queueing counts - no coordinated omission), stopped once the stack falls behind: what users see at a
    sustained rate. A step passes only if it kept up with its rate (>= 80% of it served).
- Ingestion: the worker is kept busy with new demo-size studies (full 11-series exams, none of them in the index)
  throughout the phase "with ingestion" - a backlog is always queued, so it ingests as fast as the machine lets
  it: the heaviest ingestion these cores can carry, not a trickle.
- The load generator runs on the same cores: it used **{r.loadgen_cpu_share:.0%}** of the CPU the run's processes
  used (column `loadgen` below, in cores). It is not pinned or given a different niceness: pinning two cores
  between seven processes would only move the contention, and the latencies it reports include its own
  scheduling delay, as a client's would.

## Reading it

{_reading(r)}

![latency vs QPS]({png})

## Per step

{tables}

### CPU (cores used per part, averaged over the step) and ingestion

`other` is CPU used by none of the run's processes: other jobs on the shared machine.

{cpu_head}
{cpu_rows}

{r.note}
"""


def main() -> None:
    """python -m bench.load_report docs/benchmarks/load.json: re-render the markdown and the figure."""
    import sys

    path = Path(sys.argv[1])
    print(write(load_json(path), path.parent, path.stem))


if __name__ == "__main__":
    main()
