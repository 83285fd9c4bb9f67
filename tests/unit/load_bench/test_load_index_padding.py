"""The load benchmark pads its index with noisy copies of real exams: a copy's embedding parts still sum to its
(new) vector, so the search service accepts them and a padded point stores what a real one does."""

from __future__ import annotations

import numpy as np

from bench.load_index import padding
from cmr.rpc.messages import from_vector, to_vector
from cmr.v1 import common_pb2, search_pb2
from search_svc.why import stored_parts


def test_padded_copies_keep_parts_that_sum_to_their_vector() -> None:
    rng = np.random.default_rng(0)
    parts = rng.normal(size=(3, 32)).astype(np.float32)
    parts /= np.linalg.norm(parts.sum(axis=0))
    real = search_pb2.ExamUpsert(
        study_instance_uid="1.2.3", image_embedding=to_vector(parts.sum(axis=0)),
        report_embedding=to_vector(rng.normal(size=32)), model_version="m@1",
        parts=[common_pb2.EmbeddingPart(name=n, kind=k, vector=to_vector(p))
               for n, k, p in zip(("cine_sax", "lvef_pct", "exam"), ("view", "measurement", "exam"), parts)])
    for copy in padding([real], 4, seed=1):
        image = from_vector(copy.image_embedding)
        assert not np.allclose(image, from_vector(real.image_embedding))  # a new vector
        assert [p.name for p in copy.parts] == ["cine_sax", "lvef_pct", "exam"]
        assert stored_parts(copy.parts, image) is not None  # the search service's check: they sum to it
    plain = search_pb2.ExamUpsert(study_instance_uid="1.2.4", image_embedding=real.image_embedding,
                                  report_embedding=real.report_embedding, model_version="m@1")
    assert all(len(c.parts) == 0 for c in padding([plain], 2))  # a CLS model's exams stay without parts
