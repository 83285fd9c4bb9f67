"""What the command modules need when `cmr` builds its command tree, without importing the heavy packages
behind it: every *_cmd module is imported for `cmr --help`, so their top level must stay light (torch,
transformers, the services and even pydantic are imported where a command runs; tests/unit/cli checks it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cmr.config import Settings


def get_settings() -> Settings:
    """The process's settings (cmr.config.get_settings), pydantic imported on the first call."""
    from cmr.config import get_settings as settings

    return settings()


def shipped_configs(package: str) -> str:
    """Comma-separated names of the JSON configs in `package`/configs (e.g. "base, small" for cmr.model);
    find_spec locates the folder without running the package's __init__ (cmr.model's loads torch)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return ""
    folder = Path(next(iter(spec.submodule_search_locations))) / "configs"
    return ", ".join(sorted(p.stem for p in folder.glob("*.json")))
