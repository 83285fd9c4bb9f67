"""All runtime configuration in one typed place: environment variables (prefix CMR_) with defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_realdata_dir() -> Path:
    """`<repo>/../shared/realdata`, from where this package lies (not the working directory)."""
    return Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


class ConfigError(ValueError):
    """A setting is missing or unusable; the message names the CMR_* variable and what to do (the CLI prints
    it as one line, exit code 2)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CMR_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root for generated studies, caches and indexes")
    realdata_dir: Path = Field(default_factory=default_realdata_dir, description="Real CMR kept outside the "
                               "repository (acdc/, sunnybrook/): `cmr eval-real` reads acdc/ here; default "
                               "<repo>/../shared/realdata")
    synth_workers: int = Field(0, ge=0, description="Worker processes for `cmr synth`; 0 means one per core")
    # The study loader refuses inputs bigger than these, so one huge upload cannot exhaust memory.
    max_study_files: int = Field(5000, gt=0)
    max_study_bytes: int = Field(2 * 1024**3, gt=0)

    # --- model -------------------------------------------------------------------------------------------
    checkpoint: Path | None = Field(None, description="CMR-CLIP checkpoint the services load; None = the shipped one")
    device: str = Field("auto", description="'auto' (cuda when present, else cpu), 'cpu' or 'cuda[:N]'")
    torch_threads: int = Field(0, ge=0, le=256, description="intra-op threads of the served model; 0 = torch's "
                               "default (one per core)")
    measure: bool = Field(True, description="measure LVEF, volumes and mass (cmr.quant: the segmented short-axis "
                          "cine) on EncodeStudy and in ingestion; false = no measurements")
    segmenter_checkpoint: Path | None = Field(None, description="segmentation checkpoint the encoder and ingest "
                                              "worker load to measure; None = the shipped cmr-seg-small")

    # --- query text (in process: cmr.model.text_runtime) ------------------------------------------------------
    text_runtime: str = Field("onnx-fp32", pattern="^(torch|onnx-fp32|onnx-int8)$", description="what embeds "
                              "query text in the search service: the torch tower, or its ONNX export in ONNX "
                              "Runtime: fp32 (equal to torch, ~2.5x faster) or block-wise int8 (~3.5x faster, but "
                              "moves zero-shot AUROCs by up to ~0.03: docs/benchmarks/text_path.md)")
    search_embeds_text: bool = Field(True, description="the search service embeds queries itself (text_runtime, "
                                     "its own checkpoint); false = through the encoder service (queries then follow "
                                     "the encoder's model during a rolling upgrade)")
    text_threads: int = Field(1, ge=0, le=256, description="intra-op threads of one in-process text encoding "
                              "(queries are short: one thread each, the gRPC threads run several at once)")
    onnx_cache_dir: Path | None = Field(None, description="where text-tower ONNX exports are kept, per model "
                                        "version; None = $XDG_CACHE_HOME/cmr/onnx (~/.cache/cmr/onnx)")
    query_cache_size: int = Field(4096, ge=0, description="query embeddings kept (LRU, per model version and "
                                  "runtime); 0 = no cache")

    # --- Triton (image and text encoders) -----------------------------------------------------------------
    triton_url: str | None = Field(None, description="host:port of an external Triton gRPC endpoint; None = "
                                   "`cmr serve encoder` starts Triton itself")
    triton_grpc_port: int = Field(8001, ge=1, le=65535)
    triton_http_port: int = Field(8000, ge=1, le=65535)
    triton_metrics_port: int = Field(8002, ge=1, le=65535)
    triton_max_batch_size: int = Field(8, ge=1, le=256, description="dynamic batching: largest batch formed")
    triton_queue_delay_us: int = Field(2000, ge=0, description="dynamic batching: longest wait to fill a batch")
    triton_dynamic_batching: bool = Field(True, description="False: each request runs alone (the benchmark baseline)")
    triton_instances: int = Field(1, ge=1, le=16, description="model instances (threads) per Triton model")
    triton_exit_timeout_s: int = Field(5, ge=0, description="how long Triton waits for in-flight work on stop")
    triton_timeout_s: float = Field(30.0, gt=0, description="deadline of one call to Triton")

    # --- gRPC services --------------------------------------------------------------------------------------
    grpc_host: str = Field("127.0.0.1", description="interface the services bind; 0.0.0.0 in containers")
    encoder_port: int = Field(50051, ge=1, le=65535)
    search_port: int = Field(50052, ge=1, le=65535)
    generator_port: int = Field(50053, ge=1, le=65535)
    encoder_url: str = Field("127.0.0.1:50051", description="where clients (search, ingest, UI) reach the encoder")
    search_url: str = Field("127.0.0.1:50052")
    generator_url: str = Field("127.0.0.1:50053")
    grpc_workers: int = Field(16, ge=1, le=256, description="handler threads per service")
    gc_freeze: bool = Field(True, description="a service process moves the objects it made while starting (modules, "
                            "models, ~350k in the search service) out of the cyclic garbage collector's scans once "
                            "it serves: a full collection over them held the GIL 0.1-0.2 s, stalling every request")
    grpc_max_message_bytes: int = Field(8 * 1024**2, gt=0, description="largest single gRPC message (a chunk)")
    max_upload_bytes: int = Field(512 * 1024**2, gt=0, description="largest study streamed to EncodeStudy")
    max_texts_per_request: int = Field(256, gt=0)
    max_concurrent_studies: int = Field(2, ge=1, description="studies decoded at once (each is ~1 s of CPU)")
    study_roots: list[Path] = Field(default_factory=lambda: [Path("data")],
                                    description="folders a server-side StudyRef path may point into")
    request_timeout_s: float = Field(60.0, gt=0, description="default client deadline for one RPC")

    # --- search store (Qdrant) --------------------------------------------------------------------------------
    qdrant_url: str | None = Field(None, description="Qdrant server/cluster URL; None = embedded Qdrant Edge on disk")
    qdrant_api_key: str | None = Field(None)
    index_dir: Path | None = Field(None, description="embedded store folder; None = <data_dir>/index")
    index_min_free_mb: float = Field(256.0, ge=0, description="the search service refuses index writes "
                                     "(RESOURCE_EXHAUSTED) while the index disk has less free space than this, "
                                     "instead of dying on a full disk; 0 = no check")
    index_flush_interval_s: float = Field(5.0, ge=0, description="the search service fsyncs the embedded "
                                          "index's write-ahead log this often when written to, without stalling "
                                          "searches (search_svc/flusher.py): a power cut loses at most this many "
                                          "seconds of acknowledged writes (a killed process loses none); "
                                          "0 = never")
    study_key_secret: str = Field("cmr-dev-only-change-me", description="HMAC key that turns a "
                                  "StudyInstanceUID into the stored study key; set a real secret in production")
    backup_dir: Path | None = Field(None, description="where the search service writes index backups (the admin "
                                    "Backup RPC, `cmr index backup`); None = <data_dir>/backups")
    store_embedding_parts: bool = Field(True, description="store each exam vector's parts (attention-pooling "
                                        "models: one per view and measurement) with it, so text and indexed-study "
                                        "searches say why an exam matched; ~10 KB per exam (float16 [G, D]: "
                                        "docs/services/search.md); false = none stored, why stays empty there")
    hnsw_m: int = Field(16, ge=4, le=128)
    hnsw_ef_construct: int = Field(100, ge=8, le=1024)
    hnsw_ef_search: int = Field(64, ge=8, le=4096)
    live_index_max_unindexed: int = Field(2000, ge=0, description="Edge: build a collection's HNSW graph in a "
                                          "child process when this many points are searched without one "
                                          "(search_svc/store/live_index.py); 0 = only at service start")

    # --- report drafting (generator service) -----------------------------------------------------------------
    generator_checkpoint: Path | None = Field(None, description="CMR-TARGET checkpoint; None = the shipped one "
                                              "(it must have been trained on the CMR-CLIP checkpoint served)")
    draft_neighbours: int = Field(5, ge=1, le=50, description="k nearest studies of the consensus draft")
    max_concurrent_drafts: int = Field(2, ge=1, le=64, description="CMR-TARGET drafts run at once (the rest "
                                       "wait; each takes a core)")

    # --- Kafka ingestion ----------------------------------------------------------------------------------------
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port "
                                 "(IPv4 127.0.0.1 rather than localhost: the Tansu test broker listens on IPv4)")
    kafka_topic_new: str = Field("cmr.exams.new", description="NewExam messages: studies to ingest")
    kafka_topic_embedded: str = Field("cmr.exams.embedded", description="EmbeddingCreated events")
    kafka_topic_dead_letter: str = Field("cmr.exams.dead-letter", description="DeadLetter: what could not be ingested")
    kafka_partitions: int = Field(4, ge=1, le=1024, description="partitions of topics the worker creates (the most "
                                  "workers of one group that get work)")
    kafka_group_id: str = Field("cmr-ingest", description="consumer group of the ingest workers")
    # Tansu's JoinGroup waits up to the rebalance timeout, which kafka-python takes from max_poll_interval_ms: a
    # low value makes joins fast; one study (with its retries) must still finish well within it.
    kafka_max_poll_interval_ms: int = Field(60_000, ge=1000, description="longest pause between polls before the "
                                            "group evicts a worker (also the rebalance timeout)")
    kafka_session_timeout_ms: int = Field(10_000, ge=1000, description="a silent worker leaves the group after this")
    kafka_request_timeout_ms: int = Field(15_000, ge=1000)
    ingest_max_attempts: int = Field(5, ge=1, le=100, description="tries of a study on transient failures "
                                     "(services unavailable, DICOMweb errors) before it is dead-lettered")
    ingest_backoff_s: float = Field(0.5, gt=0, description="first retry delay; doubles per try up to ingest_backoff_max_s")
    ingest_backoff_max_s: float = Field(8.0, gt=0)
    ingest_keep_dates: bool = Field(True, description="DICOM PS3.15 'Retain Longitudinal Temporal Information with "
                                    "Full Dates' option: keep study/series dates (the index filters on them); "
                                    "false = dates shifted per study")
    archive_keep_dates: bool = Field(False, description="`cmr dataset import`: keep study dates in the imported DICOM "
                                     "(PS3.15 full-dates option); false = shifted per study (a training set needs none)")
    archive_keep_series: str = Field("exam", pattern="^(exam|all)$", description="`cmr dataset import`: write only "
                                     "the series the exam tensor needs (exam: `cmr train` reads nothing else) or every "
                                     "series (all: archive everything)")
    archive_impression_fallback: str = Field("findings", pattern="^(findings|last-paragraph|none)$", description=
                                             "`cmr dataset import`, a report without an impression section: use its "
                                             "findings, its last paragraph, or exclude it (none)")
    # `cmr dataset import --dicomweb URL`: QIDO-RS lists, WADO-RS fetches (cmr.archive.dicomweb).
    archive_dicomweb_timeout_s: float = Field(60.0, gt=0, description="deadline of one DICOMweb request of the "
                                              "import (to connect, and between bytes of the answer)")
    archive_dicomweb_attempts: int = Field(4, ge=1, le=20, description="tries of one DICOMweb request on "
                                           "connection errors, timeouts and HTTP 5xx/408/429")
    archive_dicomweb_backoff_s: float = Field(1.0, gt=0, description="first retry delay; doubles per try")
    archive_dicomweb_backoff_max_s: float = Field(16.0, gt=0, description="longest retry delay")
    archive_dicomweb_token: SecretStr | None = Field(None, description="bearer token sent to the DICOMweb server")
    archive_dicomweb_username: str | None = Field(None, description="HTTP basic auth user (with _PASSWORD)")
    archive_dicomweb_password: SecretStr | None = Field(None, description="HTTP basic auth password")
    archive_dicomweb_ca: Path | None = Field(None, description="PEM CA bundle the DICOMweb server's certificate "
                                             "must chain to (None = the system's CAs)")
    ingest_nice: int = Field(10, ge=0, le=19, description="niceness the ingest worker runs at (raised, never "
                             "lowered): its decoding and segmentation take whole cores, and searches must not wait "
                             "behind them (docs/benchmarks/load.md); 0 = the niceness it was started with")
    ingest_metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus /metrics of `cmr serve ingest`; "
                                     "0 = no HTTP endpoint")
    dicomweb_timeout_s: float = Field(60.0, gt=0, description="deadline of one DICOMweb request of the worker")
    orthanc_url: str = Field("http://127.0.0.1:8042", description="Orthanc REST API the PACS bridge polls")
    orthanc_dicomweb_url: str | None = Field(None, description="DICOMweb root published in NewExam messages; "
                                             "None = <orthanc_url>/dicom-web")
    orthanc_poll_s: float = Field(2.0, gt=0, description="how often the bridge asks Orthanc for stable studies")

    # --- security: TLS, identity, audit, abuse limits --------------------------------------------------------
    # TLS: this process's certificate/key serve its gRPC port and are its client certificate under mTLS; tls_ca
    # is the trust root for both directions. `cmr security init-dev` makes a local CA and certificates.
    tls: bool = Field(False, description="TLS on every gRPC service, client and the UI (needs tls_cert, tls_key, "
                      "tls_ca)")
    tls_cert: Path | None = Field(None, description="PEM certificate chain of this process")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    tls_ca: Path | None = Field(None, description="PEM CA bundle that peers' certificates must chain to")
    tls_mutual: bool = Field(False, description="mutual TLS: servers require a client certificate from tls_ca, "
                             "clients present tls_cert")
    tls_server_name: str | None = Field(None, description="name clients check in the server certificate; None = "
                                        "the host of the URL")
    # Identity: signed JWT bearer tokens checked on every RPC (an OIDC issuer's JWKS in production, a local
    # signing key on one machine). 'off' trusts every caller as admin: only for a closed test machine.
    auth_mode: str = Field("jwt", pattern="^(jwt|off)$", description="'jwt' (every RPC needs a valid bearer "
                           "token) or 'off'")
    auth_public_key: Path | None = Field(None, description="PEM public key that verifies local tokens")
    auth_signing_key: Path | None = Field(None, description="PEM private key that signs local tokens (`cmr auth "
                                          "token`, the one-machine stack); never needed by a verifying service")
    auth_jwks_url: str | None = Field(None, description="OIDC issuer's JWKS URL (production); keys are cached")
    auth_issuer: str = Field("cmr-local", description="required 'iss' claim")
    auth_audience: str = Field("cmr", description="required 'aud' claim")
    auth_algorithms: list[str] = Field(default_factory=lambda: ["ES256", "RS256"],
                                       description="accepted signature algorithms (never 'none' or HMAC)")
    auth_roles_claim: str = Field("roles", description="claim holding the roles; dotted for nested claims "
                                  "(Keycloak: realm_access.roles)")
    auth_leeway_s: int = Field(30, ge=0, le=600, description="clock skew allowed on exp/nbf")
    auth_token: str | None = Field(None, description="bearer token this process's clients send (a service "
                                   "identity); a caller's own token is forwarded instead inside an RPC")
    auth_token_file: Path | None = Field(None, description="file holding auth_token (re-read when it changes)")
    auth_token_ttl_s: int = Field(8 * 3600, ge=60, le=30 * 86400, description="lifetime of tokens `cmr auth "
                                  "token` and the UI login issue")
    auth_users_file: Path | None = Field(None, description="UI login accounts (JSON: user -> password hash, "
                                         "roles); made by `cmr security init-dev`, `cmr auth add-user`")
    # Abuse limits per identity (token subject): a token bucket per subject; over it -> RESOURCE_EXHAUSTED.
    rate_limit_per_s: float = Field(20.0, gt=0, description="sustained requests per second per identity")
    rate_limit_burst: int = Field(40, ge=1, description="requests an identity may make at once above the rate")
    rate_limit_exempt_roles: list[str] = Field(default_factory=lambda: ["ingest"], description="roles without a "
                                               "rate limit (the ingest worker's own pace is the limit)")
    # Audit: append-only, hash-chained JSON lines per service, also published to Kafka when audit_kafka.
    audit_dir: Path | None = Field(None, description="audit log folder; None = <data_dir>/audit")
    audit_kafka: bool = Field(False, description="also publish every audit entry to kafka_topic_audit")
    audit_kafka_queue: int = Field(10_000, ge=1, description="audit entries held for Kafka while it is away; "
                                   "beyond that they are counted as not published (the audit file has them)")
    audit_reserve_mb: float = Field(4.0, ge=0, description="space each audit log keeps allocated for itself "
                                    "(<file>.reserve), released when the disk fills so entries go on being written "
                                    "(~10,000 of them); 0 = none")
    audit_fsync: bool = Field(True, description="an RPC answers only once its audit entry is on disk (group "
                              "commit: one fdatasync covers every entry written while it waited); false = "
                              "the OS writes entries back when it likes (a power cut loses the last seconds)")
    audit_sync_delay_ms: float = Field(0.0, ge=0, le=10_000, description="with audit_fsync: 0 = an RPC answers "
                                       "once its entry is on disk; N > 0 = it answers once the entry is written to "
                                       "the file (a crashed process loses nothing) and a background sync puts it on "
                                       "disk within N ms (a power cut loses at most the last N ms of entries)")
    kafka_topic_audit: str = Field("cmr.audit", description="audit entries (AuditEntry JSON)")

    # --- UI and local stack ---------------------------------------------------------------------------------
    ui_host: str = Field("127.0.0.1", description="interface the Streamlit UI binds; 0.0.0.0 in containers")
    ui_port: int = Field(8501, ge=1, le=65535)
    ui_public_url: str | None = Field(None, description="URL users open (printed by `cmr up`, shown by "
                                      "`cmr status`); None = http://<ui_host>:<ui_port>")
    ui_thumb_dir: Path | None = Field(None, description="cache of cine loop previews; None = <data_dir>/thumbs")
    ui_stack_status: bool = Field(False, description="the UI's sidebar also shows the broker (CMR_KAFKA_BOOTSTRAP) "
                                  "and the ingest worker (/ready on 127.0.0.1:CMR_INGEST_METRICS_PORT); `cmr up` sets it")
    ui_cine: bool = Field(True, description="show cine loops: the UI reads studies under CMR_STUDY_ROOTS "
                          "(true on one machine; in production mount the study store read-only or turn off)")
    up_demo_dir: Path | None = Field(None, description="demo studies `cmr up` indexes; None = <data_dir>/demo")
    up_demo_studies: int = Field(200, ge=0, le=100_000, description="how many demo studies `cmr up` generates "
                                 "(if absent) and indexes in the background; 0 = none")
    up_demo_seed: int = Field(7, description="seed of the generated demo studies")
    up_seed_via: str = Field("auto", pattern="^(auto|kafka|direct)$", description="how `cmr up` indexes the demo: "
                             "kafka (through the ingest worker), direct (SearchService upserts: the fallback "
                             "while no ingest worker exists), auto = kafka when the ingest worker is available")
    up_start_timeout_s: float = Field(300.0, gt=0, description="how long `cmr up` waits for every part to be healthy")
    up_secure: bool = Field(True, description="`cmr up` makes a development CA, keys and accounts in "
                            "<data_dir>/security (`cmr security init-dev`) and runs every part with TLS and tokens; "
                            "false = plaintext and auth off (a closed test machine only)")
    up_broker_port: int = Field(9092, ge=1, le=65535, description="Kafka port of the broker `cmr up` starts")
    up_seed_stall_s: float = Field(120.0, gt=0, description="the demo seeder re-publishes the studies the index "
                                   "does not hold after this long without one newly indexed (a broker restart lost them)")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
