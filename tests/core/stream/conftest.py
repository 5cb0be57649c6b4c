"""Stream test helpers: per-test topics and groups on the session broker, real services."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, ms_to_dt
from cryptobot_core.settings import Settings
from cryptobot_core.stream.consumer import StreamConsumer

T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, a day start


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.2
) -> None:
    """Poll until ``predicate`` holds; fail naming ``what`` (a bound, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def make_candle(
    symbol: str,
    minute_ms: int,
    *,
    closed: bool = True,
    event_ms: int | None = None,
    price: str = "100.10",
    trades: int = 7,
) -> Candle:
    """A 1m WebSocket candle with distinctive values."""
    p = Decimal(price)
    return Candle(
        symbol=symbol,
        interval=Interval.M1,
        open_time=ms_to_dt(minute_ms),
        close_time=ms_to_dt(minute_ms + 59_999),
        open=p,
        high=p + Decimal("1.50"),
        low=p - Decimal("0.25"),
        close=p + Decimal("0.5"),
        volume=Decimal("12.34000000"),
        quote_volume=Decimal("1234.00000000"),
        taker_buy_base_volume=Decimal("6.00000000"),
        taker_buy_quote_volume=Decimal("600.00000000"),
        trades=trades,
        is_closed=closed,
        source="ws",
        event_time=ms_to_dt(event_ms if event_ms is not None else minute_ms + 59_999),
    )


@pytest.fixture
def stream_settings(settings: Settings, kafka_bootstrap: str) -> Settings:
    """Settings with a per-test topic, dead-letter topic and consumer group."""
    tag = uuid.uuid4().hex[:8]
    return settings.model_copy(
        update={
            "kafka_bootstrap_servers": kafka_bootstrap,
            "kafka_topic": f"t-{tag}",
            "kafka_dead_letter_topic": f"t-{tag}.dl",
            "kafka_consumer_group": f"g-{tag}",
            "kafka_partitions": 2,
        }
    )


def send_raw(settings: Settings, records: list[tuple[bytes | None, bytes]]) -> None:
    """Produce raw (key, value) records to the stream topic and wait for acks."""
    from cryptobot_core.stream import kafka as kafka_util

    kafka_util.ensure_topics(settings)
    producer = KafkaProducer(
        bootstrap_servers=settings.effective_kafka_bootstrap,
        acks="all",
        max_request_size=4 * 1024 * 1024,
    )
    try:
        for key, value in records:
            producer.send(settings.kafka_topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()


def committed(settings: Settings) -> dict[int, int]:
    """Committed offsets of the test group per partition of the stream topic."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.effective_kafka_bootstrap,
        group_id=settings.kafka_consumer_group,
        enable_auto_commit=False,
    )
    try:
        out = {}
        for p in range(settings.kafka_partitions):
            off = consumer.committed(TopicPartition(settings.kafka_topic, p))
            out[p] = off or 0
        return out
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str, expect: int, timeout: float = 30) -> list[Any]:
    """Read ``expect`` records of ``topic`` from the beginning (manual assignment)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.effective_kafka_bootstrap, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.kafka_partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            for recs in consumer.poll(timeout_ms=500).values():
                out.extend(json.loads(r.value) for r in recs)
        return out
    finally:
        consumer.close()


class ConsumerThread:
    """A StreamConsumer running on a thread, stopped (and joined) by ``stop()``."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.consumer = StreamConsumer(settings, **kwargs)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.consumer.run(self.stop_event)
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    def start(self) -> ConsumerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)
        assert not self.thread.is_alive(), "consumer did not stop"
        if self.error:
            raise self.error


@pytest.fixture
def consumer_thread(stream_settings: Settings) -> Iterator[Callable[..., ConsumerThread]]:
    """Factory of consumer threads that are always stopped at teardown."""
    started: list[ConsumerThread] = []

    def make(settings: Settings | None = None, **kwargs: Any) -> ConsumerThread:
        ct = ConsumerThread(settings or stream_settings, **kwargs).start()
        started.append(ct)
        return ct

    yield make
    for ct in started:
        if ct.thread.is_alive():
            ct.stop_event.set()
            ct.thread.join(60)


def subprocess_env(settings: Settings) -> dict[str, str]:
    """CRYPTOBOT_* variables that recreate ``settings`` in a child process."""
    return {
        "CRYPTOBOT_MONGO_URI": settings.effective_mongo_uri,
        "CRYPTOBOT_MONGO_DB": settings.mongo_db,
        "CRYPTOBOT_EXCHANGE": settings.exchange,
        "CRYPTOBOT_KAFKA_BOOTSTRAP_SERVERS": settings.effective_kafka_bootstrap,
        "CRYPTOBOT_KAFKA_TOPIC": settings.kafka_topic,
        "CRYPTOBOT_KAFKA_DEAD_LETTER_TOPIC": settings.kafka_dead_letter_topic,
        "CRYPTOBOT_KAFKA_CONSUMER_GROUP": settings.kafka_consumer_group,
        "CRYPTOBOT_KAFKA_PARTITIONS": str(settings.kafka_partitions),
        "CRYPTOBOT_SYMBOLS": ",".join(settings.symbols),
        "CRYPTOBOT_SIM_HOST": settings.sim_host,
        "CRYPTOBOT_SIM_PORT": str(settings.sim_port),
        "CRYPTOBOT_DATA_DIR": str(Path(settings.data_dir).resolve()),
        "CRYPTOBOT_LOG_LEVEL": "INFO",
    }
