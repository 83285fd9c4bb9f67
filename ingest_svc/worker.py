"""The ingest worker: a member of consumer group CMR_KAFKA_GROUP_ID on the NewExam topic (scale out by starting
more workers, up to the partition count).

For each record, in partition order:
    decode -> StudyPipeline (fetch, parse, de-identify, tensor, measure, encode, upsert, score)
           -> publish EmbeddingCreated (awaited) -> commit the record's offset
Delivery: at least once. A crash anywhere before the commit repeats the study; the upsert is idempotent (point
id from the study key) and the event id is deterministic, so the index holds one entry per study and
subscribers that de-duplicate on event_id see one event.

Failures: transient ones (a service or the PACS unavailable) are retried with exponential backoff
(CMR_INGEST_MAX_ATTEMPTS); bad input, or a transient failure that outlived its retries, goes to the dead-letter
topic with the stage and reason, and the offset is committed - one bad study never stops the partition. While
Kafka is unreachable or restarting, publishing the event or the dead letter is retried with backoff, with a
new producer each time, until the broker takes it (the topics are re-created: a broker with memory storage
comes back without them), and the consumer rejoins the group on its own: the worker rides out a broker
restart without dying. A worker started while the broker is down or unreachable does not exit either: it
waits with the same backoff, one log line per attempt, /ready answering 503 "waiting for Kafka at ..." (the
metrics port, ingest_svc/health.py), and starts consuming when the broker answers. If Kafka refuses the record for good (PERMANENT_PUBLISH_ERRORS: too large, not
authorised...), nothing is committed and the worker stops with an error (its supervisor restarts it; the
record is read again).

SIGTERM / Ctrl-C: the study in flight is finished and committed, then the worker leaves the group cleanly.
Logs name studies by study key, event id and partition/offset only: never paths, names or IDs.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from cmr.config import Settings, get_settings
from cmr.kafka_io import ensure_topics, make_consumer, make_producer
from cmr.kafka_wait import (
    BROKER_ATTEMPT_S,
    PERMANENT_KAFKA_ERRORS,
    kafka_connection_logs_quiet,
    kafka_retrying,
)
from cmr.priority import lower_priority
from encoder_svc.client import EncoderClient
from ingest_svc.messages import (
    IngestFailure,
    SourceRecord,
    Stage,
    dead_letter,
    decode_new_exam,
    failure_from,
    ref_digest,
)
from ingest_svc.metrics import IngestMetrics
from ingest_svc.pipeline import Outcome, StudyPipeline
from search_svc.client import SearchClient

log = logging.getLogger(__name__)


# Publishing errors no retry can fix (the shared list of cmr/kafka_wait.py; the name the worker's docs use).
PERMANENT_PUBLISH_ERRORS = PERMANENT_KAFKA_ERRORS


class WorkerStopping(Exception):
    """Raised inside a retry wait when a stop was requested: the record is left uncommitted."""


class PublishError(Exception):
    """Kafka did not take the event or the dead letter: the worker must not commit and stops."""


@dataclass
class WorkerStats:
    indexed: int = 0
    duplicates: int = 0
    dead_letters: int = 0

    @property
    def handled(self) -> int:
        return self.indexed + self.duplicates + self.dead_letters


class IngestWorker:
    def __init__(self, settings: Settings | None = None, *, metrics: IngestMetrics | None = None,
                 pipeline: StudyPipeline | None = None) -> None:
        self.settings = settings or get_settings()
        self.metrics = metrics or IngestMetrics()
        self.stop_event = threading.Event()
        self.stats = WorkerStats()
        self._pipeline = pipeline
        self._clients: list[Any] = []
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------------
    def _open(self) -> None:
        s = self.settings
        if self._pipeline is None:
            encoder = EncoderClient(s.encoder_url, settings=s)
            search = SearchClient(s.search_url, settings=s)
            self._clients = [encoder, search]
            for client in (encoder, search):
                self._wait_ready(client, 180)
            self._pipeline = StudyPipeline(s, encoder, search)
            if s.measure:  # fail fast on a missing or foreign segmentation checkpoint, as on the encoder
                try:
                    log.info("measuring with %s", self._pipeline.segmenter_version())
                except (OSError, ValueError, RuntimeError) as exc:
                    raise RuntimeError(f"the segmenter for measurements cannot be loaded: {exc}; fix "
                                       "CMR_SEGMENTER_CHECKPOINT, or set CMR_MEASURE=false") from exc
        self._pipeline.context()  # fail fast (and once) if the encoder cannot describe its model
        self._connect_broker()

    def _connect_broker(self) -> None:
        """Create the topics, the producer and the consumer, retrying with backoff for as long as the broker
        cannot be reached: a worker started before its broker (or while it restarts) waits for it instead of
        dying into a restart loop. One warning per failed attempt says what it waits for; /ready answers 503
        meanwhile; SIGTERM is honoured between attempts (WorkerStopping)."""
        s = self.settings
        what = f"Kafka at {s.kafka_bootstrap}"
        self.metrics.readiness.waiting(f"connecting to {what}")

        def before_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            pause = state.next_action.sleep if state.next_action else 0.0
            self.metrics.retries.labels("broker").inc()
            self.metrics.readiness.waiting(f"waiting for {what} (attempt {state.attempt_number}: "
                                           f"{type(exc).__name__})")
            log.warning("waiting for %s: attempt %d failed (%s: %s); next attempt in %.1f s", what,
                        state.attempt_number, type(exc).__name__, exc, pause)

        retrying = kafka_retrying(s, before_retry, self._sleep)
        with kafka_connection_logs_quiet():
            for attempt in retrying:
                with attempt:
                    ensure_topics(s, timeout_s=BROKER_ATTEMPT_S)
                    producer = make_producer(s)
                    try:
                        consumer = make_consumer(s)
                    except BaseException:
                        producer.close(timeout=0)
                        raise
        if retrying.statistics.get("attempt_number", 1) > 1:
            log.info("%s answers", what)
        self._producer, self._consumer = producer, consumer

    def _wait_ready(self, client: Any, timeout_s: float) -> None:
        """Wait for a service in short steps, so SIGTERM during start-up is honoured at once."""
        self.metrics.readiness.waiting(f"waiting for the service at {client.url}")
        deadline = time.monotonic() + timeout_s
        while not self.stop_event.is_set():
            try:
                client.wait_ready(2)
                return
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{client.url} not serving after {timeout_s:.0f} s") from None
        raise WorkerStopping()

    def _close(self) -> None:
        self.metrics.readiness.waiting("stopped")
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)  # leaves the group: partitions move on at once
            except Exception:  # noqa: BLE001 - closing must not mask the reason we stop
                log.warning("closing the consumer failed", exc_info=True)
            self._consumer = None
        if self._producer is not None:
            try:
                self._producer.close(timeout=10)
            except Exception:  # noqa: BLE001
                log.warning("closing the producer failed", exc_info=True)
            self._producer = None
        for c in self._clients:
            c.close()
        self._clients = []

    @property
    def _consuming(self) -> str:
        return f"consuming {self.settings.kafka_topic_new} from Kafka at {self.settings.kafka_bootstrap}"

    def request_stop(self) -> None:
        self.stop_event.set()

    def run(self, *, max_messages: int | None = None, idle_exit_s: float | None = None) -> WorkerStats:
        """Consume until stopped (or `max_messages` handled, or idle for `idle_exit_s`: benchmarks, tests)."""
        try:
            self._open()
        except WorkerStopping:
            self._close()
            return self.stats
        assert self._consumer is not None
        log.info("ingest worker consuming %s as group %s", self.settings.kafka_topic_new, self.settings.kafka_group_id)
        self.metrics.readiness.consuming(self._consuming)
        last_work = time.monotonic()
        try:
            while not self.stop_event.is_set():
                batch = self._consumer.poll(timeout_ms=500)
                self._update_lag()
                if not batch:
                    if idle_exit_s is not None and time.monotonic() - last_work > idle_exit_s:
                        break
                    continue
                for tp, records in batch.items():
                    for record in records:
                        self.handle(record)
                        self._commit(tp, record.offset + 1)
                        last_work = time.monotonic()
                if max_messages is not None and self.stats.handled >= max_messages:
                    break
        except WorkerStopping:
            log.info("stop requested during a retry wait; the study in flight will be read again")
        finally:
            self._close()
        log.info("ingest worker stopped: %d indexed, %d duplicates, %d dead letters", self.stats.indexed,
                 self.stats.duplicates, self.stats.dead_letters)
        return self.stats

    # --- one record ---------------------------------------------------------------------------------------------
    def handle(self, record: Any) -> None:
        """Process one consumed record to its end: an event, or a dead letter. Raises only WorkerStopping or
        PublishError (then the record must not be committed)."""
        t0 = time.perf_counter()
        src = SourceRecord(record.topic, record.partition, record.offset, record.key, record.value)
        where = f"{src.topic}[{src.partition}]@{src.offset}"
        try:
            msg = decode_new_exam(record.value)
        except IngestFailure as failure:
            self._dead(src, failure, 1, where)
            return
        attempts = 0

        def count_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            stage = exc.stage.value if isinstance(exc, IngestFailure) else "unknown"
            self.metrics.retries.labels(stage).inc()
            log.warning("event %s (%s): transient failure at %s, retry %d: %s", msg.event_id, where, stage,
                        state.attempt_number, exc)

        s = self.settings
        retrying = Retrying(
            stop=stop_after_attempt(s.ingest_max_attempts),
            wait=wait_exponential(multiplier=s.ingest_backoff_s, max=s.ingest_backoff_max_s),
            retry=retry_if_exception(lambda e: isinstance(e, IngestFailure) and e.transient),
            sleep=self._sleep, before_sleep=count_retry, reraise=True)
        assert self._pipeline is not None
        try:
            outcome: Outcome | None = None
            for attempt in retrying:
                with attempt:
                    attempts += 1
                    outcome = self._process(msg)
            assert outcome is not None
        except IngestFailure as failure:
            if failure.transient:
                failure = IngestFailure(failure.stage, f"still failing after {attempts} attempts: {failure.reason}",
                                        transient=True, error_type=failure.error_type)
            self._dead(src, failure, attempts, where, event_id=msg.event_id)
            return
        for stage, seconds in outcome.seconds.items():
            self.metrics.stage_seconds.labels(stage).observe(seconds)
        t_pub = time.perf_counter()
        self._send(s.kafka_topic_embedded, outcome.study_key.encode(), outcome.event.SerializeToString())
        self.metrics.stage_seconds.labels("publish").observe(time.perf_counter() - t_pub)
        if outcome.duplicate:
            notice = IngestFailure(Stage.DEDUPE, "duplicate: the study is already indexed by this model with the same "
                                   "report and labels; not indexed again (its embedding event was re-published)",
                                   error_type="Duplicate")
            self._dead(src, notice, attempts, where, event_id=msg.event_id, key=outcome.study_key.encode())
            self.stats.dead_letters -= 1  # counted as a duplicate below, not as a failure
            self.stats.duplicates += 1
            self.metrics.messages.labels("duplicate").inc()
        else:
            self.stats.indexed += 1
            self.metrics.messages.labels("indexed").inc()
        self.metrics.study_seconds.observe(time.perf_counter() - t0)
        log.info("event %s (%s, ref %s): study %s %s in %.2f s", msg.event_id, where, ref_digest(msg.study),
                 outcome.study_key, "duplicate" if outcome.duplicate else ("indexed" if outcome.created else "updated"),
                 time.perf_counter() - t0)

    def _process(self, msg: Any) -> Outcome:
        assert self._pipeline is not None
        try:
            return self._pipeline.process(msg)
        except IngestFailure:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug hit by one study dead-letters it; the worker goes on
            # The type only: an exception's text can quote header values. The traceback is for debugging.
            log.error("event %s: unexpected %s; the study is dead-lettered", msg.event_id, type(exc).__name__)
            log.debug("traceback", exc_info=True)
            raise failure_from(exc, Stage.LOAD) from exc

    def _dead(self, src: SourceRecord, failure: IngestFailure, attempts: int, where: str, *, event_id: str = "",
              key: bytes | None = None) -> None:
        letter = dead_letter(src, failure, attempts)
        self._send(self.settings.kafka_topic_dead_letter, key if key is not None else src.key,
                   letter.SerializeToString())
        self.stats.dead_letters += 1
        if failure.stage is not Stage.DEDUPE:
            self.metrics.messages.labels("dead_letter").inc()
            log.warning("event %s (%s): dead-lettered at %s after %d attempt(s): %s (%s)", event_id or "?", where,
                        failure.stage.value, attempts, failure.reason, failure.error_type)
        self.metrics.dead_letters.labels(failure.stage.value).inc()

    def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        """Publish and wait for the broker's ack. A failure is retried with backoff until the broker takes the
        record or a stop is requested (dying here would only make the supervisor restart the worker into the
        same outage), each retry with a new producer: after a broker restart the old one's idempotence state
        (producer id, sequence numbers) is unknown to the broker and it never recovers (UnknownProducerId,
        then a fatal InitProducerId). PublishError for what no retry can fix (PERMANENT_PUBLISH_ERRORS)."""
        s = self.settings

        def before_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            self.metrics.retries.labels("publish").inc()
            self.metrics.readiness.waiting(f"waiting for Kafka at {s.kafka_bootstrap} to take a record")
            log.warning("publishing to %s failed (%s: %s); retry %d with a new producer", topic,
                        type(exc).__name__, exc, state.attempt_number)
            try:  # a broker with memory storage restarts without topics; re-create them (quick, best effort)
                ensure_topics(s, timeout_s=2.0)
            except KafkaError:
                pass

        retrying = kafka_retrying(s, before_retry, self._sleep)
        try:
            for attempt in retrying:
                with attempt:
                    if self._producer is None:
                        self._producer = make_producer(s)
                    try:
                        self._producer.send(topic, key=key, value=value).get(timeout=s.kafka_request_timeout_ms / 1000)
                    except KafkaError:
                        self._drop_producer()
                        raise
        except KafkaError as exc:
            raise PublishError(f"could not publish to {topic}: {type(exc).__name__}: {exc}") from exc
        if retrying.statistics.get("attempt_number", 1) > 1:
            self.metrics.readiness.consuming(self._consuming)

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception:  # noqa: BLE001 - a broken producer may fail to close; it is dropped either way
                log.debug("closing a failed producer failed", exc_info=True)

    def _sleep(self, seconds: float) -> None:
        if self.stop_event.wait(seconds):
            raise WorkerStopping()

    def _commit(self, tp: TopicPartition, offset: int) -> None:
        assert self._consumer is not None
        try:
            self._consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
            self.metrics.last_commit.set(time.time())
        except CommitFailedError:
            # The group rebalanced while this study was processed: another member will read it again, and the
            # idempotent upsert keeps that harmless.
            log.warning("commit of %s@%d refused after a rebalance; the record will be processed again", tp, offset)
        except KafkaError as exc:
            log.warning("commit of %s@%d failed (%s); the record may be processed again", tp, offset, exc)

    def _update_lag(self) -> None:
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            high = self._consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = self._consumer.position(tp, timeout_ms=200)
            except Exception:  # noqa: BLE001 - lag is best effort; never stop on it
                continue
            if position is not None:
                self.metrics.lag.labels(str(tp.partition)).set(max(0, high - position))


def serve(settings: Settings | None = None, *, metrics_port: int | None = None) -> int:
    """Run one worker in the foreground until SIGTERM/SIGINT (`cmr serve ingest`, `python -m ingest_svc`)."""
    settings = settings or get_settings()
    # Before any thread starts (they inherit it): decoding and segmentation yield the cores to searches.
    nice = lower_priority(settings.ingest_nice)
    # kafka-python at DEBUG logs raw record bytes (report text and paths of the input): never below INFO here.
    kafka_log = logging.getLogger("kafka")
    kafka_log.setLevel(max(kafka_log.getEffectiveLevel(), logging.INFO))
    worker = IngestWorker(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.request_stop())
    port = settings.ingest_metrics_port if metrics_port is None else metrics_port
    if port:
        port = worker.metrics.serve(port, addr=settings.grpc_host)
        log.info("Prometheus metrics on http://%s:%d/metrics, readiness on /ready", settings.grpc_host, port)
    log.info("running at nice %d (CMR_INGEST_NICE)", nice)
    try:
        worker.run()
    except PublishError as exc:
        log.error("%s; stopping without committing (the record will be read again)", exc)
        return 2
    except (TimeoutError, KafkaError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


__all__ = ["IngestWorker", "PERMANENT_PUBLISH_ERRORS", "PublishError", "WorkerStats", "serve"]
