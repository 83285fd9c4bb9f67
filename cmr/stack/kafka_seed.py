"""Demo seeding through Kafka: studies are published with `cmr ingest` (the ingest worker's producer) in
small batches, and the ingest worker indexes them (de-identify, encode, upsert, event)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from cmr.config import Settings
from cmr.stack.parts import cmr_command

BATCH = 16


class KafkaPublisher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pending: list[Path] = []

    def add(self, folder: Path, record: dict[str, Any]) -> None:
        self.pending.append(folder)
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            subprocess.run(cmr_command("ingest", *map(str, self.pending)), check=True)
            self.pending = []

    def close(self) -> None:
        self.flush()
