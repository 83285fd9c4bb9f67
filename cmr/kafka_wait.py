"""Waiting for Kafka: one backoff policy for every client of the platform that must ride out a broker that is
down at its start or restarts under it (the ingest worker, the Orthanc bridge, the audit trail's publisher).

Every KafkaError is retried with exponential backoff (CMR_INGEST_BACKOFF_S doubling up to
CMR_INGEST_BACKOFF_MAX_S) until the call succeeds or the caller's `sleep` raises (a stop was requested), except
the errors no retry can fix (PERMANENT_KAFKA_ERRORS: the record or the set-up is wrong). A client retrying a
publish should make a new producer for each attempt: after a broker restart the old one's idempotence state
(producer id, sequence numbers) is unknown to the broker and it never recovers (UnknownProducerId, then a
fatal InitProducerId). In the core (not in ingest_svc) so that cmr.security.audit can use it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kafka import errors as kafka_errors
from kafka.errors import KafkaError
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from cmr.config import Settings

# Kafka errors no retry can fix: the record or the set-up is wrong (anything else is retried).
PERMANENT_KAFKA_ERRORS: tuple[type[KafkaError], ...] = (
    kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordListTooLargeError, kafka_errors.InvalidRecordError,
    kafka_errors.InvalidTopicError, kafka_errors.AuthorizationError, kafka_errors.SaslAuthenticationFailedError,
    kafka_errors.UnsupportedVersionError, kafka_errors.KafkaConfigurationError, kafka_errors.IllegalArgumentError)

# One attempt to reach the broker: kafka-python's own bootstrap wait is 30 s, too long between a waiting
# client's log lines and for a stop to be honoured promptly.
BROKER_ATTEMPT_S = 3.0


def retryable_kafka_error(exc: BaseException) -> bool:
    return isinstance(exc, KafkaError) and not isinstance(exc, PERMANENT_KAFKA_ERRORS)


def kafka_retrying(settings: Settings, before_retry: Callable[[RetryCallState], None],
                   sleep: Callable[[float], None]) -> Retrying:
    """The backoff for a Kafka call (reaching the broker, publishing): `for attempt in kafka_retrying(...):
    with attempt: ...`. before_retry(state) runs before each wait (log, count, report readiness); sleep(s)
    waits and raises to give up (a stop was requested). The last error is re-raised when it is permanent."""
    return Retrying(
        wait=wait_exponential(multiplier=settings.ingest_backoff_s, max=settings.ingest_backoff_max_s),
        retry=retry_if_exception(retryable_kafka_error), sleep=sleep, before_sleep=before_retry, reraise=True)


def retry_outline(state: RetryCallState) -> tuple[BaseException | None, float]:
    """(the error of the attempt that failed, the seconds until the next one) for a before_retry callback."""
    exc = state.outcome.exception() if state.outcome else None
    return exc, state.next_action.sleep if state.next_action else 0.0


@contextmanager
def kafka_connection_logs_quiet() -> Iterator[None]:
    """While a client waits for the broker, kafka-python logs several errors per failed connection
    (ECONNREFUSED, bootstrap failed, backoff): the client's own line per attempt says it once."""
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        kafka_log.setLevel(level)


__all__ = ["BROKER_ATTEMPT_S", "PERMANENT_KAFKA_ERRORS", "kafka_connection_logs_quiet", "kafka_retrying",
           "retry_outline", "retryable_kafka_error"]
