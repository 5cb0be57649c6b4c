"""Kafka plumbing with kafka-python: client configs, topic creation, offsets.

Broker quirks found on Tansu 0.6 (see docs/stream.md):

- storage is in memory: a broker restart loses topics and committed offsets, so every loop
  calls ``ensure_topics`` when it (re)connects;
- ``end_offsets()`` was seen below offsets already consumed; lag is therefore cross-checked
  against the highest offset the consumer actually read (see ``lag``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from cryptobot_core.errors import BrokerUnavailable
from cryptobot_core.settings import Settings

log = logging.getLogger(__name__)

# Tansu needs short session timeouts or a group join takes 8-40 s.
SESSION_TIMEOUT_MS = 10_000
HEARTBEAT_INTERVAL_MS = 1_000
REQUEST_TIMEOUT_MS = 15_000
# kafka-python 3 waits 30 s by default to bootstrap; during an outage fail fast and back off.
BOOTSTRAP_TIMEOUT_MS = 5_000
# Records handed to the producer but not yet acknowledged, at most.
MAX_IN_FLIGHT = 20_000


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """kafka-python producer settings: acks=all, idempotent, bounded buffer."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": settings.effective_kafka_bootstrap.split(","),
        "client_id": "cryptobot-stream-producer",
        "acks": "all",
        "enable_idempotence": True,
        "retries": 5,
        "max_in_flight_requests_per_connection": 5,
        "linger_ms": 5,
        # kafka-python 3 has no buffer_memory: the producer loop bounds the records in
        # flight itself (MAX_IN_FLIGHT) and spools the overflow to disk.
        # send() blocks at most this long when metadata is missing (broker down).
        "max_block_ms": 2_000,
        "delivery_timeout_ms": 30_000,
        "request_timeout_ms": REQUEST_TIMEOUT_MS,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "reconnect_backoff_max_ms": 2_000,
        # Topics are created by ensure_topics with the configured partition count only.
        "allow_auto_create_topics": False,
    }
    cfg.update(overrides)
    return cfg


def consumer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """kafka-python consumer settings: manual commits, short sessions for Tansu."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": settings.effective_kafka_bootstrap.split(","),
        "client_id": "cryptobot-stream-consumer",
        "group_id": settings.kafka_consumer_group,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
        "request_timeout_ms": REQUEST_TIMEOUT_MS + 1_000,
        "max_poll_records": 2_000,
        # Tansu seems to hold a fetch for its full max wait even when data arrives: keep
        # it short so latency stays low (idle fetches are cheap).
        "fetch_max_wait_ms": 100,
        # A store outage can hold a batch for minutes; stay in the group meanwhile.
        "max_poll_interval_ms": 600_000,
        "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS,
        "reconnect_backoff_max_ms": 2_000,
        "allow_auto_create_topics": False,
    }
    cfg.update(overrides)
    return cfg


def admin(settings: Settings) -> KafkaAdminClient:
    """An admin client, or BrokerUnavailable naming the bootstrap servers."""
    try:
        return KafkaAdminClient(
            bootstrap_servers=settings.effective_kafka_bootstrap.split(","),
            client_id="cryptobot-stream-admin",
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        )
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(
            f"Kafka broker {settings.effective_kafka_bootstrap} unreachable: {exc}"
        ) from exc


def ensure_topics(settings: Settings, topics: Iterable[str] | None = None) -> list[str]:
    """Create the stream and dead-letter topics if missing; returns those created."""
    wanted = list(topics or (settings.kafka_topic, settings.kafka_dead_letter_topic))
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        new = [t for t in wanted if t not in existing]
        if new:
            # Another process may win the race; the topic is there either way.
            with contextlib.suppress(TopicAlreadyExistsError):
                client.create_topics(
                    [NewTopic(t, settings.kafka_partitions, 1) for t in new], timeout_ms=10_000
                )
            log.info("created Kafka topics %s", new)
        return new
    except KafkaError as exc:
        raise BrokerUnavailable(f"could not create topics {wanted}: {exc}") from exc
    finally:
        client.close()


def delete_topics(settings: Settings, topics: Iterable[str]) -> None:
    """Delete topics that exist (used by tests and benchmarks for a clean slate)."""
    client = admin(settings)
    try:
        present = set(client.list_topics())
        doomed = [t for t in topics if t in present]
        if doomed:
            client.delete_topics(doomed, timeout_ms=10_000)
    finally:
        client.close()


def new_producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """A KafkaProducer, or BrokerUnavailable."""
    try:
        return KafkaProducer(**producer_config(settings, **overrides))
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(
            f"Kafka broker {settings.effective_kafka_bootstrap} unreachable: {exc}"
        ) from exc


def new_consumer(settings: Settings, **overrides: Any) -> KafkaConsumer:
    """A KafkaConsumer in the stream's group (not yet subscribed), or BrokerUnavailable."""
    try:
        return KafkaConsumer(**consumer_config(settings, **overrides))
    except (KafkaError, OSError) as exc:
        raise BrokerUnavailable(
            f"Kafka broker {settings.effective_kafka_bootstrap} unreachable: {exc}"
        ) from exc


def topic_id(consumer: KafkaConsumer, topic: str) -> Any:
    """The broker's id of ``topic`` from the consumer's cached metadata (None if unknown).

    A new id for the same name means the topic was recreated (on Tansu: the broker
    restarted), so old offsets are meaningless. kafka-python keeps it on its cluster object.
    """
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    return cluster.topic_id(topic) if cluster is not None else None


def lag(
    end_offsets: Mapping[TopicPartition, int | None],
    positions: Mapping[TopicPartition, int],
    read_up_to: Mapping[TopicPartition, int],
) -> tuple[int, bool]:
    """Messages not yet consumed, and whether the broker's end offsets were implausible.

    ``read_up_to`` is 1 + the highest offset this consumer actually received per partition.
    An end offset below it cannot be right (seen on Tansu); the read offset is used instead
    and the flag is set so the figure is reported as corrected.
    """
    total = 0
    corrected = False
    for tp, position in positions.items():
        end = end_offsets.get(tp)
        seen = read_up_to.get(tp, 0)
        if end is None or end < seen:
            corrected = True
            end = max(seen, position)
        total += max(0, end - position)
    return total, corrected
