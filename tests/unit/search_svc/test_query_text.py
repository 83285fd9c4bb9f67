"""Query text embedded in the search service's process: SearchByText and ZeroShot never call the encoder while
a generation holds the in-process model's vectors, repeated queries come from the cache (counted in Stats),
and the encoder answers when no generation holds that model (an upgrade) or the model cannot be made."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cmr.v1 import common_pb2, search_pb2
from search_svc.query_text import QueryText

D = 6
VERSION = "tiny@1"


class FakeEmbedder:
    """An in-process model: every text's vector is the first unit axis; counts the texts it embeds."""

    runtime = "onnx-fp32"

    def __init__(self, version: str = VERSION) -> None:
        self.version = version
        self.texts: list[str] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.texts += texts
        return np.tile(np.eye(D, dtype=np.float32)[0], (len(texts), 1))


class FakeEncoder:
    """The encoder service: the second unit axis for every text, and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def encode_texts_versioned(self, texts: list[str]) -> tuple[np.ndarray, str]:
        self.calls += 1
        return np.tile(np.eye(D, dtype=np.float32)[1], (len(texts), 1)), VERSION

    def model_info(self) -> Any:
        self.calls += 1
        from cmr.v1 import encoder_pb2

        return encoder_pb2.GetModelInfoResponse(model=common_pb2.ModelInfo(name="tiny", version=VERSION, embed_dim=D))


class Router:
    def __init__(self, served: Any) -> None:
        self.served = served

    def active(self) -> Any:
        return self.served

    def for_version(self, version: str) -> Any:
        return self.served if version == self.served.generation.model_version else None


class Context:
    def code(self) -> None:
        return None

    def abort(self, code: object, message: str) -> None:
        raise AssertionError(f"{code}: {message}")


def servicer(text: QueryText | None, encoder: FakeEncoder) -> Any:
    from cmr.dicom import ExamSpec
    from cmr.model.runtime import ModelIdentity
    from search_svc.admin.generations import Generation
    from search_svc.admin.router import Served
    from search_svc.index import ExamEntry, ExamIndex
    from search_svc.service import SearchServicer
    from search_svc.store import open_store

    gen = Generation.new(VERSION, D)
    index = ExamIndex(open_store(backend="client-local"), D, "secret", exams=gen.exams, reports=gen.reports)
    eye = np.eye(D, dtype=np.float32)
    index.upsert([ExamEntry(study_instance_uid=f"1.2.3.{i}", image_embedding=eye[i], model_version=VERSION,
                            impression=f"report {i}") for i in range(3)])
    identity = ModelIdentity("tiny", VERSION, D, ExamSpec(), "cpu")
    return SearchServicer(Router(Served(gen, index)), encoder, identity, None,  # type: ignore[arg-type]
                          text=text)


def top_hit(s: Any, query: str) -> str:
    r = s.SearchByText(search_pb2.SearchByTextRequest(query=query, top_k=1), Context())
    assert r.model.version == VERSION
    return str(r.hits[0].exam.impression)


def test_queries_are_embedded_in_process_and_cached() -> None:
    model, encoder = FakeEmbedder(), FakeEncoder()
    s = servicer(QueryText(lambda: model, cache_size=16), encoder)
    assert top_hit(s, "dilated left ventricle") == "report 0"  # the in-process vector (axis 0), not the encoder's
    assert top_hit(s, "  dilated   left ventricle ") == "report 0"
    assert top_hit(s, "normal study") == "report 0"
    assert encoder.calls == 0 and model.texts == ["dilated left ventricle", "normal study"]
    stats = s.Stats(search_pb2.StatsRequest(), Context())
    c = stats.query_cache
    assert (c.runtime, c.hits, c.misses, c.size, c.capacity) == ("onnx-fp32", 1, 2, 2, 16)
    # zero-shot embeds its prompts in process too (once per model version), and asks the encoder nothing
    clf = s.classifier()
    assert encoder.calls == 0 and len(model.texts) > 2 and clf.keys


def test_the_encoder_answers_when_no_generation_holds_the_local_model() -> None:
    model, encoder = FakeEmbedder(version="tiny@2"), FakeEncoder()  # e.g. a new checkpoint not yet indexed
    s = servicer(QueryText(lambda: model, cache_size=16), encoder)
    assert top_hit(s, "dilated left ventricle") == "report 1"  # the encoder's vector (axis 1)
    assert encoder.calls == 1 and model.texts == []


def test_a_model_that_cannot_be_made_leaves_the_encoder_path() -> None:
    def broken() -> FakeEmbedder:
        raise RuntimeError("export failed")

    encoder = FakeEncoder()
    s = servicer(QueryText(broken, cache_size=16), encoder)
    assert top_hit(s, "dilated left ventricle") == "report 1" and encoder.calls == 1
    assert not s.Stats(search_pb2.StatsRequest(), Context()).HasField("query_cache")
    plain = servicer(None, FakeEncoder())
    assert top_hit(plain, "x") == "report 1"


def test_bad_text_is_invalid_argument() -> None:
    class Refusing(FakeEmbedder):
        def encode(self, texts: list[str]) -> np.ndarray:
            raise ValueError("texts must be non-empty and at most 10000 characters")

    s = servicer(QueryText(Refusing, cache_size=4), FakeEncoder())
    with pytest.raises(AssertionError, match="INVALID_ARGUMENT.*non-empty"):
        top_hit(s, "\u200b")  # not whitespace to str.strip, yet nothing a tokenizer keeps
