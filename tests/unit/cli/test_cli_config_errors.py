"""A configuration error is one line naming the setting, exit code 2, never a traceback: the services started
without their security settings (the fresh-clone default CMR_AUTH_MODE=jwt with no key), TLS without its files,
and CMR_* values pydantic rejects."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.cli.errors import EXIT_CONFIG, config_error_line

CMR = str(Path(sys.executable).parent / "cmr")


def _cmr(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`cmr ARGS` as on a fresh clone: no CMR_* variable but these (tests/conftest.py sets CMR_AUTH_MODE=off)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CMR_")}
    clean.update({"CMR_DATA_DIR": str(tmp_path), **env})
    return subprocess.run([CMR, *args], capture_output=True, text=True, timeout=120, env=clean)


def _one_error_line(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == EXIT_CONFIG, run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize("service", ["encoder", "search", "generator"])
def test_service_without_security_settings_is_one_line(service: str, tmp_path: Path) -> None:
    line = _one_error_line(_cmr(["serve", service], tmp_path))
    assert "CMR_AUTH_PUBLIC_KEY" in line
    assert "cmr security init-dev" in line and f"{tmp_path}/security/client.env" in line  # what to do next


def test_tls_without_its_files_names_the_variable(tmp_path: Path) -> None:
    line = _one_error_line(_cmr(["serve", "search"], tmp_path, CMR_TLS="true", CMR_AUTH_MODE="off"))
    assert "CMR_TLS_KEY" in line


def test_client_with_tls_but_no_ca_names_the_variable(tmp_path: Path) -> None:
    line = _one_error_line(_cmr(["search", "dilated left ventricle"], tmp_path, CMR_TLS="true"))
    assert "CMR_TLS_CA" in line


def test_invalid_value_names_each_variable(tmp_path: Path) -> None:
    line = _one_error_line(_cmr(["search", "x"], tmp_path, CMR_AUTH_MODE="bogus", CMR_SEARCH_PORT="fifty"))
    assert "CMR_AUTH_MODE='bogus'" in line and "CMR_SEARCH_PORT='fifty'" in line


def test_other_errors_are_not_taken_for_configuration() -> None:
    assert config_error_line(RuntimeError("CMR_TLS is mentioned but this is a bug")) is None
    assert config_error_line(ValueError("bad input")) is None
