"""Header quirks: what pydicom complains about while a study is read (UIDs with leading zeros, values that break
their VR, ...), gathered into one summary per study with counts instead of one log line per file.

Real archives are noisy: one real Sunnybrook study makes pydicom log ~550 "Invalid value for VR UI" warnings.
While `collect()` is active in a thread, pydicom's warning records from that thread are counted (grouped by the
message with its quoted values blanked) and not logged; other threads log as usual.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_PYDICOM_LOGGER = "pydicom"
_local = threading.local()
_install_lock = threading.Lock()
_VALUE = re.compile(r"'[^']*'|\"[^\"]*\"")
_SEE_ALSO = re.compile(r"\s*Please see <[^>]*>.*$")


@dataclass(frozen=True)
class HeaderQuirk:
    """One kind of header problem of a study: the message (values blanked), how often, in how many files,
    and the first full message."""

    message: str
    count: int
    files: int
    example: str

    def __str__(self) -> str:
        where = f" in {self.files} file{'s' if self.files != 1 else ''}" if self.files else ""
        return f"{self.message} ({self.count}x{where}; e.g. {self.example})"

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "count": self.count, "files": self.files, "example": self.example}


@dataclass
class QuirkLog:
    """The quirks seen while one study is read; `at(name)` says which file is being read."""

    current: str = ""
    _count: dict[str, int] = field(default_factory=dict)
    _files: dict[str, set[str]] = field(default_factory=dict)
    _example: dict[str, str] = field(default_factory=dict)

    def at(self, name: str) -> None:
        self.current = name

    def add(self, message: str) -> None:
        text = _SEE_ALSO.sub("", " ".join(message.split())).rstrip(". ")
        key = _VALUE.sub("'...'", text)
        self._count[key] = self._count.get(key, 0) + 1
        self._example.setdefault(key, text)
        if self.current:
            self._files.setdefault(key, set()).add(self.current)

    def summary(self) -> list[HeaderQuirk]:
        """Most frequent first."""
        return [HeaderQuirk(k, n, len(self._files.get(k, ())), self._example[k])
                for k, n in sorted(self._count.items(), key=lambda kv: (-kv[1], kv[0]))]


class _Capture(logging.Filter):
    """On pydicom's logger: hands warnings to the collecting thread's QuirkLog instead of logging them."""

    def filter(self, record: logging.LogRecord) -> bool:
        log: QuirkLog | None = getattr(_local, "log", None)
        if log is None or record.levelno < logging.WARNING:
            return True
        log.add(record.getMessage())
        return False


def _install() -> None:
    logger = logging.getLogger(_PYDICOM_LOGGER)
    with _install_lock:
        if not any(isinstance(f, _Capture) for f in logger.filters):
            logger.addFilter(_Capture())


@contextmanager
def collect() -> Iterator[QuirkLog]:
    """Count pydicom's warnings in this thread (not logging them) until the block ends."""
    _install()
    outer = getattr(_local, "log", None)
    log = QuirkLog()
    _local.log = log
    try:
        yield log
    finally:
        _local.log = outer


__all__ = ["HeaderQuirk", "QuirkLog", "collect"]
