"""Where the one-machine stack keeps its files: everything under one data folder, so a second `cmr up` with
the same folder finds the index, the demo studies and the previews again. In the core because the UI finds
its cine previews here too, not only the stack that writes them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cmr.config import Settings


@dataclass(frozen=True)
class StackLayout:
    data_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StackLayout:
        return cls(Path(settings.data_dir).resolve())

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "stack"

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def supervisor_conf(self) -> Path:
        return self.run_dir / "supervisord.conf"

    @property
    def supervisor_socket(self) -> Path:
        return self.run_dir / "supervisor.sock"

    @property
    def supervisor_pidfile(self) -> Path:
        return self.run_dir / "supervisord.pid"

    def log_of(self, part: str) -> Path:
        return self.logs_dir / f"{part}.log"

    def demo_dir(self, settings: Settings) -> Path:
        return Path(settings.up_demo_dir).resolve() if settings.up_demo_dir else self.data_dir / "demo"

    def thumb_dir(self, settings: Settings) -> Path:
        return Path(settings.ui_thumb_dir).resolve() if settings.ui_thumb_dir else self.data_dir / "thumbs"

    def index_dir(self, settings: Settings) -> Path:
        return Path(settings.index_dir).resolve() if settings.index_dir else self.data_dir / "index"

    def make(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
