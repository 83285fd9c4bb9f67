"""`cmr up`'s pieces without starting anything: the parts and their availability, the supervisord config they
become, the settings handed to every part, and the container probe."""

from __future__ import annotations

import configparser
import json
from pathlib import Path

import pytest

from cmr.config import Settings
from cmr.layout import StackLayout
from cmr.rpc.probe import main as probe
from orchestration.cli.up_cmd import resolve_settings, stack_env
from orchestration.stack import parts as parts_mod
from orchestration.stack.parts import Part, stack_parts
from orchestration.stack.supervise import render_config


def test_resolved_settings_agree_on_urls_folders_and_roots(tmp_path: Path) -> None:
    s = resolve_settings({"data_dir": tmp_path / "d", "encoder_port": 6001, "search_port": 6002, "ui_port": None})
    assert s.encoder_url == "127.0.0.1:6001" and s.search_url == "127.0.0.1:6002"
    assert s.up_demo_dir == (tmp_path / "d" / "demo").resolve()
    assert s.up_demo_dir in s.study_roots  # the encoder reads the demo by server-side ref
    assert s.index_dir == (tmp_path / "d" / "index").resolve()
    env = stack_env(s)
    assert json.loads(env["CMR_STUDY_ROOTS"])[-1] == str(s.up_demo_dir)
    assert env["CMR_ENCODER_URL"] == "127.0.0.1:6001" and env["CMR_DATA_DIR"] == str(s.data_dir)
    assert env["CMR_KAFKA_BOOTSTRAP"] == f"127.0.0.1:{s.up_broker_port}"
    # every part reading these variables gets the same settings back
    back = Settings(**{k.removeprefix("CMR_").lower(): v for k, v in env.items()
                       if k.startswith("CMR_") and k.removeprefix("CMR_").lower() in Settings.model_fields
                       and k != "CMR_STUDY_ROOTS"}, study_roots=json.loads(env["CMR_STUDY_ROOTS"]))
    assert back.search_url == s.search_url and back.ui_port == s.ui_port


def test_parts_missing_modules_are_unavailable_and_the_stack_still_has_its_core(monkeypatch: pytest.MonkeyPatch,
                                                                               tmp_path: Path) -> None:
    monkeypatch.setattr(parts_mod, "_module", lambda name: not name.startswith(("ingest_svc", "generator_svc")))
    s = Settings(data_dir=tmp_path, up_demo_studies=5)
    ps = {p.name: p for p in stack_parts(s, StackLayout(tmp_path))}
    assert [n for n, p in ps.items() if p.available] == ["encoder", "search", "ui", "seed"]
    assert all(ps[n].reason for n in ("broker", "generator", "ingest"))
    assert "--via" in ps["seed"].command and ps["seed"].command[-1] == "direct"  # the fallback without ingest
    assert ps["ui"].command[ps["ui"].command.index("--client.showErrorDetails") + 1] == "none"


def test_no_seed_part_without_demo_studies(tmp_path: Path) -> None:
    names = [p.name for p in stack_parts(Settings(data_dir=tmp_path, up_demo_studies=0), StackLayout(tmp_path))]
    assert "seed" not in names


def test_supervisord_config_has_each_available_part(tmp_path: Path) -> None:
    layout = StackLayout(tmp_path)
    ps = [Part("encoder", "e", ["python", "-m", "x", "--flag=50%"], 10, env={"A": "1"}),
          Part("seed", "s", ["python", "seed"], 60, oneshot=True, startsecs=0),
          Part("ingest", "i", ["nope"], 40, available=False, reason="missing")]
    cfg = configparser.RawConfigParser()
    cfg.read_string(render_config(ps, layout))
    assert cfg.get("program:encoder", "command") == "python -m x --flag=50%%"  # supervisord %-interpolates
    assert cfg.get("program:encoder", "stopasgroup") == "true" and cfg.get("program:encoder", "autorestart") == "true"
    assert cfg.get("program:seed", "autorestart") == "false"
    assert not cfg.has_section("program:ingest")
    assert cfg.get("unix_http_server", "file") == str(layout.supervisor_socket)
    assert cfg.get("program:encoder", "environment") == 'A="1"'


def test_probe_exit_codes() -> None:
    assert probe(["grpc", "127.0.0.1:1", "cmr.v1.SearchService"]) == 1
    assert probe(["http", "http://127.0.0.1:1/health"]) == 1
    assert probe(["bogus"]) == 2
