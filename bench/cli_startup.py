"""How long `cmr` takes before it does anything: wall time of `cmr --help` and of client commands' `--help`,
and optionally a `cmr search` round trip against a running stack; optionally the same commands from an older
checkout side by side (the "before").

    .venv/bin/python -m bench.cli_startup [--before DIR] [--search "query"] [--repeats 7] [--out docs/benchmarks/cli.md]

--before DIR: a tree holding an older `orchestration/` and `cmr/` (e.g. `git archive <commit> orchestration cmr |
tar -x -C DIR`), run with this environment's packages. --search: also time `cmr search QUERY --top 5` against
the services the environment names (CMR_SEARCH_URL, TLS and token variables: e.g. data/security/client.env).
Each figure is the median of the repeats (and the fastest), every run a fresh process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from cmr.machine import describe_machine

REPO = Path(__file__).resolve().parent.parent
HELP_COMMANDS = (["--help"], ["search", "--help"], ["serve", "--help"], ["bench", "--help"])
TARGET_HELP_S = 0.5
TARGET_SEARCH_S = 1.0


def wall_times(args: list[str], repeats: int, tree: Path | None = None) -> list[float]:
    """Wall seconds of `python -m orchestration.cli.main ARGS` per run (from `tree` when given)."""
    env = dict(os.environ)
    cwd = REPO
    if tree is not None:
        env["PYTHONPATH"] = str(tree)  # ahead of the editable install of this checkout
        cwd = tree
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "orchestration.cli.main", *args], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=120)
        out.append(time.perf_counter() - t0)
        if run.returncode != 0:
            raise RuntimeError(f"cmr {' '.join(args)} failed ({run.returncode}): {run.stderr.strip()[-500:]}")
    return out


def _cell(times: list[float]) -> str:
    return f"{statistics.median(times):.2f} s (fastest {min(times):.2f})"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, help="tree with an older orchestration/ and cmr/ to compare with")
    ap.add_argument("--before-label", default="before", help="what the older tree is (e.g. a commit)")
    ap.add_argument("--search", help="also time `cmr search QUERY --top 5` against the running services")
    ap.add_argument("--search-note", default="", help="what the stack was (security, index size), for the report")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks" / "cli.md")
    a = ap.parse_args(argv)
    load = [round(x, 2) for x in os.getloadavg()]
    rows = []
    for args in HELP_COMMANDS:
        now = wall_times(args, a.repeats)
        before = wall_times(args, a.repeats, a.before) if a.before else None
        rows.append((f"`cmr {' '.join(args)}`", _cell(before) if before else "-", _cell(now),
                     "met" if statistics.median(now) <= TARGET_HELP_S else "not met"))
        print(rows[-1], file=sys.stderr)
    if a.search:
        now = wall_times(["search", a.search, "--top", "5"], a.repeats)
        before = wall_times(["search", a.search, "--top", "5"], a.repeats, a.before) if a.before else None
        rows.append((f"`cmr search \"{a.search}\" --top 5` (round trip)", _cell(before) if before else "-",
                     _cell(now), "met" if statistics.median(now) <= TARGET_SEARCH_S else "not met"))
        print(rows[-1], file=sys.stderr)
    table = "\n".join(f"| {c} | {b} | {n} | {m} |" for c, b, n, m in rows)
    if a.search and a.search_note:
        table += f"\n\nThe round trip: {a.search_note}"
    if not a.search:
        table += ("\n\nNo `cmr search` round trip in this run: it needs the encoder (Triton) and search services "
                  "running (`cmr up`, or `cmr serve encoder` and `cmr serve search`); then `--search \"QUERY\"`.")
    before_note = f'"{a.before_label}" is the same commands from that older tree.' if a.before else ""
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(f"""# CLI start-up (`python -m bench.cli_startup`)

Run {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC} on {describe_machine()}; load average before the run {load}
(other jobs were running on the shared machine: read these as upper bounds). Wall time of a fresh process each
run, median of {a.repeats} (fastest in brackets). Targets: `--help` <= {TARGET_HELP_S} s, a `cmr search` round trip
<= {TARGET_SEARCH_S} s on an idle stack. {before_note}

| command | {a.before_label if a.before else 'before'} | now | target |
| --- | --- | --- | --- |
{table}

Why it was slow: `orchestration/cli/main.py` imports every `*_cmd` module to build the command tree, and their top
levels imported torch (through `cmr.generator`/`cmr.model` for the config names in `--help`), the DICOM stack
(pydicom, scipy), numpy and pydantic. Now those imports happen inside the command that needs them, and
`cmr.dicom` imports its loader on first use, so a client that only maps StudyLoadError to a status code (cmr.rpc,
`cmr search`) no longer loads pydicom and scipy;
`tests/unit/cli/test_cli_startup.py` prints every command's `--help` in a fresh interpreter and fails if torch,
transformers, Triton's clients, grpc, numpy, pydicom, scipy or a service package got imported. `python -X importtime
-c "import orchestration.cli.main"` shows what is left (typer and rich).
""")
    print(f"results: {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
