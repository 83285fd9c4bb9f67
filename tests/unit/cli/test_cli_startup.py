"""`cmr` starts at once: building the command tree and printing any command's `--help` imports none of the
heavy packages (torch, transformers, Triton's clients, the services). Structural, not timed: a top-level import
of one of them in any orchestration/cli/*_cmd.py fails here, naming the module to import inside the command.
The timings are in docs/benchmarks/cli.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# What a `--help` must not load: seconds of import (torch, transformers), or a service's whole stack.
HEAVY = ("torch", "transformers", "tritonclient", "pytriton", "numpy", "grpc", "pydicom", "scipy",
         "encoder_svc", "search_svc", "generator_svc", "ingest_svc", "ui", "bench")

# Runs in a fresh interpreter: every command path's `--help` in turn, then the loaded top-level packages.
PROBE = """
import json, sys
import typer.main
from orchestration.cli.main import app

def paths(cmd, prefix):
    yield prefix
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from paths(sub, [*prefix, name])

root = typer.main.get_command(app)
helped = []
for path in paths(root, []):
    try:
        root.main([*path, "--help"], prog_name="cmr", standalone_mode=False)
    except SystemExit:
        pass
    helped.append(" ".join(path))
print(json.dumps({"helped": helped, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


@pytest.fixture(scope="module")
def probe() -> dict[str, list[str]]:
    run = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_help_stays_light(probe: dict[str, list[str]]) -> None:
    loaded = sorted(set(HEAVY) & set(probe["modules"]))
    assert not loaded, (f"`cmr ... --help` imported {loaded}: import them inside the command function, not at the "
                        "top of an orchestration/cli/*_cmd.py (python -X importtime shows which one)")


def test_probe_walked_the_client_and_server_commands(probe: dict[str, list[str]]) -> None:
    # the structural check above means something only if the tree walk reached these
    for path in ("", "search", "similar", "cohort", "status", "serve encoder", "serve search", "serve generator",
                 "bench ingest", "train", "embed text"):
        assert path in probe["helped"]


def test_console_script_answers_help() -> None:
    cmr = Path(sys.executable).parent / "cmr"
    run = subprocess.run([str(cmr), "search", "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "--top" in run.stdout


def test_search_client_does_not_load_the_dicom_stack_or_torch() -> None:
    # what `cmr search|similar|cohort` import to make their call: the round trip's start-up
    code = "import sys, search_svc.client; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    loaded = set(run.stdout.split()) & {"torch", "transformers", "tritonclient", "pydicom", "scipy"}
    assert not loaded, f"search_svc.client imported {sorted(loaded)}"
