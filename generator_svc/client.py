"""Client of the GeneratorService: drafts as a stream of sentences.

    with GeneratorClient() as gen:
        for s in gen.generate(study_key="0f3c...", mode="target"):
            print(s.index, s.text, s.findings)
        stream = gen.stream("retrieval", path="/data/studies/s1")
        for s in stream:
            print(s.text)
        stream.grounding   # what the service replaced / removed / added (after the last sentence)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cmr.config import Settings, get_settings
from cmr.rpc.client import open_channel, wait_for_health
from cmr.quant.volumes import Measurements
from cmr.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from search_svc.client import study_query

GROUNDING_METADATA = "cmr-grounding-bin"  # as generator_svc.service (not imported: the client stays light)

MODES = {"retrieval": generator_pb2.DRAFT_MODE_RETRIEVAL, "consensus": generator_pb2.DRAFT_MODE_CONSENSUS,
         "target": generator_pb2.DRAFT_MODE_TARGET}
STRATEGIES = {"greedy": generator_pb2.DECODING_STRATEGY_GREEDY, "beam": generator_pb2.DECODING_STRATEGY_BEAM,
              "sample": generator_pb2.DECODING_STRATEGY_SAMPLE}


@dataclass(frozen=True)
class DraftedSentence:
    index: int
    text: str
    findings: tuple[str, ...]
    sources: tuple[str, ...]
    last: bool
    model_version: str


def generate_request(mode: str = "retrieval", *, strategy: str = "greedy", beam_width: int = 0,
                     temperature: float = 0.0, max_sentences: int = 0, max_tokens: int = 0, seed: int = 0,
                     neighbours: int = 0, study_key: str | None = None, embedding: np.ndarray | None = None,
                     path: str | os.PathLike[str] | None = None, uri: str | None = None,
                     measurements: Measurements | common_pb2.CardiacMeasurements | None = None
                     ) -> generator_pb2.GenerateReportRequest:
    """`measurements`: the study's, when the caller has them (the draft then states these)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    study = study_query(study_key=study_key, embedding=embedding,
                        path=None if path is None else os.fspath(path), uri=uri)
    if isinstance(measurements, Measurements):
        from cmr.quant.proto import to_proto

        measurements = to_proto(measurements)
    return generator_pb2.GenerateReportRequest(
        study=study, mode=MODES[mode], measurements=measurements,
        decoding=generator_pb2.DecodingOptions(strategy=STRATEGIES[strategy], beam_width=beam_width,
                                               temperature=temperature, max_sentences=max_sentences,
                                               max_tokens=max_tokens, seed=seed, neighbours=neighbours))


def grounding_of(metadata: Any) -> dict[str, Any] | None:
    """The service's grounding report from a call's trailing metadata (None when absent)."""
    for key, value in metadata or ():
        if key == GROUNDING_METADATA:
            return json.loads(value if isinstance(value, (bytes, str)) else bytes(value))  # type: ignore[no-any-return]
    return None


class DraftStream:
    """The sentences of one draft as they arrive; `grounding` (what the service replaced, removed, added,
    rewrote or flagged, and where the measurements came from) once the stream has ended."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self.grounding: dict[str, Any] | None = None

    def __iter__(self) -> Iterator[DraftedSentence]:
        for s in self._call:
            yield DraftedSentence(s.index, s.text, tuple(s.findings), tuple(s.source_study_keys), s.last,
                                  s.model.version)
        self.grounding = grounding_of(self._call.trailing_metadata())

    def cancel(self) -> None:
        self._call.cancel()


class GeneratorClient:
    def __init__(self, url: str | None = None, *, settings: Settings | None = None,
                 timeout_s: float | None = None) -> None:
        self.settings = settings or get_settings()
        self.url = url or self.settings.generator_url
        self.timeout_s = timeout_s or self.settings.request_timeout_s
        self.channel = open_channel(self.url, self.settings)
        self.stub = generator_pb2_grpc.GeneratorServiceStub(self.channel)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        wait_for_health(self.channel, "cmr.v1.GeneratorService", timeout_s)

    def generate(self, mode: str = "retrieval", **kwargs: object) -> Iterator[DraftedSentence]:
        """Sentences as the server sends them; keyword arguments as `generate_request` (a study_key, path,
        uri or embedding, and decoding options). gRPC errors surface as grpc.RpcError."""
        request = generate_request(mode, **kwargs)  # type: ignore[arg-type]
        for s in self.stub.GenerateReport(request, timeout=self.timeout_s):
            yield DraftedSentence(s.index, s.text, tuple(s.findings), tuple(s.source_study_keys), s.last,
                                  s.model.version)

    def stream(self, mode: str = "retrieval", **kwargs: object) -> DraftStream:
        """As `generate`, with the grounding report (`.grounding`) after the last sentence."""
        request = generate_request(mode, **kwargs)  # type: ignore[arg-type]
        return DraftStream(self.stub.GenerateReport(request, timeout=self.timeout_s))

    def draft(self, mode: str = "retrieval", **kwargs: object) -> list[DraftedSentence]:
        return list(self.generate(mode, **kwargs))

    def draft_grounded(self, mode: str = "retrieval", **kwargs: object) -> tuple[list[DraftedSentence],
                                                                                  dict[str, Any] | None]:
        stream = self.stream(mode, **kwargs)
        sentences = list(stream)
        return sentences, stream.grounding

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GeneratorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
