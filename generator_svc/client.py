"""Client of the GeneratorService: drafts as a stream of sentences.

    with GeneratorClient() as gen:
        for s in gen.generate(study_key="0f3c...", mode="target"):
            print(s.index, s.text, s.findings)
        stream = gen.stream("retrieval", path="/data/studies/s1")
        for s in stream:
            print(s.text)
        stream.grounding   # where the numbers came from, what grounding replaced / removed / added, per sentence
        stream.measurements  # the numbers the draft states (None: there were none)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cmr.config import Settings, get_settings
from cmr.quant.proto import from_proto, to_proto
from cmr.quant.volumes import Measurements
from cmr.rpc.client import open_channel, wait_for_health
from cmr.v1 import common_pb2, generator_pb2, generator_pb2_grpc
from search_svc.client import study_query

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
    kind: str = "draft"                       # draft | measurements (grounding's measurement sentence) | note
    changes: tuple[dict[str, str], ...] = ()  # numbers grounding replaced / removed / added in this sentence
    review: tuple[str, ...] = ()              # what the measurements contradict in this sentence


def _change(c: generator_pb2.NumberChange) -> dict[str, str]:
    return {"measure": c.measure, "action": c.action, "before": c.before, "after": c.after, "reason": c.reason}


def drafted_sentence(s: generator_pb2.ReportSentence) -> DraftedSentence:
    return DraftedSentence(s.index, s.text, tuple(s.findings), tuple(s.source_study_keys), s.last, s.model.version,
                           s.kind or "draft", tuple(_change(c) for c in s.grounding), tuple(s.review))


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
        measurements = to_proto(measurements)
    return generator_pb2.GenerateReportRequest(
        study=study, mode=MODES[mode], measurements=measurements,
        decoding=generator_pb2.DecodingOptions(strategy=STRATEGIES[strategy], beam_width=beam_width,
                                               temperature=temperature, max_sentences=max_sentences,
                                               max_tokens=max_tokens, seed=seed, neighbours=neighbours))


def measurements_of(sentences: Iterable[generator_pb2.ReportSentence]) -> Measurements | None:
    """The measurements a draft is grounded in (its first sentence's), None when there are none."""
    for s in sentences:
        return from_proto(s.measurements) if s.HasField("measurements") else None
    return None


def grounding_of(sentences: Iterable[generator_pb2.ReportSentence]) -> dict[str, Any] | None:
    """What grounding did to a draft, from its streamed sentences (None: no sentence, or a server that does not
    say): the measurements' source (request | index | measured | none), the reason when there are none, their
    quality, quality reasons, segmenter and values; per streamed sentence its index, text, kind, number
    `changes` (measure, action replaced / removed / added, before, after, reason) and `review`; and
    `dropped`, the numbers removed with whole sentences (complete once the last sentence has arrived)."""
    sentences = list(sentences)
    if not sentences or not sentences[0].measurements_source:
        return None
    first = sentences[0]
    m = measurements_of(sentences)
    return {
        "source": first.measurements_source, "reason": first.measurements_note,
        "quality": m.quality if m is not None else "", "segmenter": m.model if m is not None else "",
        "quality_reasons": list(m.quality_reasons) if m is not None else [],
        "measurements": m.values() if m is not None else None,
        "sentences": [{"index": s.index, "text": s.text, "kind": s.kind or "draft",
                       "changes": [_change(c) for c in s.grounding], "review": list(s.review)} for s in sentences],
        "dropped": [_change(c) for s in sentences if s.last for c in s.dropped],
    }


class DraftStream:
    """The sentences of one draft as they arrive; `grounding` (where the measurements came from, and what
    the service replaced, removed, added or flagged in each sentence) and `measurements` (the numbers the
    draft states) are read from the sentences' own fields: the source and the measurements with the first
    sentence, the numbers dropped with whole sentences with the last."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._received: list[generator_pb2.ReportSentence] = []

    def __iter__(self) -> Iterator[DraftedSentence]:
        for s in self._call:
            self._received.append(s)
            yield drafted_sentence(s)

    @property
    def grounding(self) -> dict[str, Any] | None:
        return grounding_of(self._received)

    @property
    def measurements(self) -> Measurements | None:
        return measurements_of(self._received)

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
            yield drafted_sentence(s)

    def stream(self, mode: str = "retrieval", **kwargs: object) -> DraftStream:
        """As `generate`, with what grounding did (`.grounding`) and the measurements (`.measurements`)."""
        request = generate_request(mode, **kwargs)  # type: ignore[arg-type]
        return DraftStream(self.stub.GenerateReport(request, timeout=self.timeout_s))

    def draft(self, mode: str = "retrieval", **kwargs: object) -> list[DraftedSentence]:
        return list(self.generate(mode, **kwargs))

    def draft_grounded(self, mode: str = "retrieval", **kwargs: object) -> tuple[list[DraftedSentence],
                                                                                  dict[str, Any] | None]:
        """The whole draft, and what grounding did to it (`DraftStream.grounding`)."""
        stream = self.stream(mode, **kwargs)
        sentences = list(stream)
        return sentences, stream.grounding

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> GeneratorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
