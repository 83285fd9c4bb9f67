"""Every search, cohort, export, draft and delete is in the audit log with who, when, what and how many
results; refusals too; the log verifies; entries also reach the Kafka audit topic."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cmr.config import Settings
from cmr.security.audit import AuditEntry, AuditLog, query, verify
from cmr.security.roles import Role
from cmr.v1 import search_pb2
from generator_svc.client import GeneratorClient
from generator_svc.server import GeneratorServer
from search_svc.client import SearchClient
from search_svc.server import SearchServer


def test_audited_actions(secure_search: SearchServer, secure_generator: GeneratorServer,
                         as_user: Callable[..., Settings], indexed_keys: list[str], audit_folder: Path,
                         upserts: list[search_pb2.ExamUpsert]) -> None:
    clinician, researcher = as_user("dr-audit", Role.CLINICIAN), as_user("res-audit", Role.RESEARCHER)
    with SearchClient(secure_search.address, settings=clinician) as client:
        hits = client.search_text("dilated left ventricle", top_k=4)
    with SearchClient(secure_search.address, settings=researcher) as client:
        members = client.cohort(all_of=["dilated left ventricle"], threshold=0.01).members
        _, exported = client.export_cohort(all_of=["dilated left ventricle"], threshold=0.01)
        try:
            client.delete([indexed_keys[0]])
        except Exception:  # noqa: BLE001 - refused: researchers may not delete
            pass
    with GeneratorClient(secure_generator.address, settings=clinician) as gen:
        sentences = list(gen.generate(study_key=indexed_keys[1], mode="retrieval"))
    admin = as_user("admin-audit", Role.ADMIN)
    with SearchClient(secure_search.address, settings=admin) as client:
        deleted = client.delete([indexed_keys[-1]])
        client.upsert([upserts[-1]])  # put it back for the other tests

    def one(**kw: str) -> AuditEntry:
        found = query(audit_folder, **kw)
        assert len(found) == 1, (kw, found)
        return found[0]

    search = one(subject="dr-audit", action="search")
    assert search.results == len(hits) and search.what["query"] == "dilated left ventricle"
    assert search.service == "search" and search.roles == ["clinician"] and search.ts
    assert one(subject="res-audit", action="cohort").results == len(members)
    assert one(subject="res-audit", action="export").results == len(exported)
    refused = one(subject="res-audit", action="delete")
    assert refused.status == "PERMISSION_DENIED" and "allowed" in refused.detail
    assert one(subject="admin-audit", action="delete").results == deleted == 1
    draft = one(subject="dr-audit", action="draft")
    assert draft.service == "generator" and draft.results == len(sentences) and draft.what["mode"] == 1
    # the generator asked the search service for neighbours with the clinician's own (forwarded) token
    similar = one(subject="dr-audit", action="similar")
    assert similar.what["study_key"] == indexed_keys[1]
    assert all(r.ok for r in verify(audit_folder))
    assert not any("/" in json.dumps(e.what) for e in query(audit_folder))  # no paths in what was recorded


def test_audit_entries_reach_the_kafka_topic(tmp_path: Path) -> None:
    from kafka import KafkaConsumer

    from ingest_svc.broker import TansuBroker

    with TansuBroker() as broker:
        settings = Settings(kafka_bootstrap=broker.bootstrap, audit_kafka=True, audit_dir=tmp_path,
                            kafka_topic_audit="cmr.audit.test")
        log = AuditLog.from_settings(settings, "search")
        written = [log.append(AuditEntry(service="", action="search", method="/m", subject=f"u{i}", roles=[],
                                         status="OK", results=i)) for i in range(5)]
        log.close()
        consumer = KafkaConsumer("cmr.audit.test", bootstrap_servers=broker.bootstrap,
                                 auto_offset_reset="earliest", consumer_timeout_ms=10_000, group_id=None)
        received = [json.loads(m.value) for m in consumer]
        consumer.close()
    assert sorted(r["hash"] for r in received) == sorted(e.hash for e in written)
