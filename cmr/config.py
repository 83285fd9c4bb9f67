"""All runtime configuration in one typed place: environment variables (prefix CMR_) with defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CMR_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root for generated studies, caches and indexes")
    synth_workers: int = Field(0, ge=0, description="Worker processes for `cmr synth`; 0 means one per core")
    # The study loader refuses inputs bigger than these, so one huge upload cannot exhaust memory.
    max_study_files: int = Field(5000, gt=0)
    max_study_bytes: int = Field(2 * 1024**3, gt=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
