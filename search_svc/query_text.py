"""Query text embedded in the search service's own process (cmr.model.text_runtime, settings.text_runtime)
behind the LRU query cache, instead of a round trip to the encoder service and Triton for every query.

The in-process model is the checkpoint this service is configured with. The servicer uses it only while an
index generation holds that model's vectors; otherwise (the encoder rolled to a model this service does not
load, during an upgrade) queries go to the encoder service as before."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from cmr.config import Settings
from cmr.model.query_cache import CacheCounts, QueryEmbeddingCache
from cmr.model.text_runtime import TextEmbedder, text_embedder

log = logging.getLogger(__name__)


class QueryText:
    """The in-process text embedder, made on first use (or by `warm_up`), and the query cache in front of it.
    A model that cannot be made (a broken export, say) is logged once and the encoder service answers."""

    def __init__(self, make: Callable[[], TextEmbedder], cache_size: int) -> None:
        self._make = make
        self._embedder: TextEmbedder | None = None
        self._failed = False
        self._lock = threading.Lock()
        self.cache = QueryEmbeddingCache(cache_size)

    @classmethod
    def from_settings(cls, settings: Settings) -> QueryText:
        return cls(lambda: text_embedder(settings.text_runtime, settings), settings.query_cache_size)

    def embedder(self) -> TextEmbedder | None:
        if self._embedder is None and not self._failed:
            with self._lock:
                if self._embedder is None and not self._failed:
                    try:
                        self._embedder = self._make()
                        log.info("query text embedded in process: %s, %s", self._embedder.runtime,
                                 self._embedder.version)
                    except Exception:  # noqa: BLE001 - any failure to build it leaves the encoder path working
                        self._failed = True
                        log.exception("cannot embed query text in process; the encoder service embeds it")
        return self._embedder

    def warm_up(self) -> threading.Thread:
        """Make the embedder in the background (the ONNX export takes seconds once per model version)."""
        t = threading.Thread(target=self.embedder, name="query-text-warm-up", daemon=True)
        t.start()
        return t

    def encode(self, embedder: TextEmbedder, texts: list[str]) -> NDArray[np.float32]:
        return self.cache.encode(embedder.version, embedder.runtime, texts, embedder.encode)

    def counts(self) -> CacheCounts:
        return self.cache.counts()
