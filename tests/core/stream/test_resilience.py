"""Outages with our own service processes: the store down for 30 s, a broker restart."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from cryptobot_core import services
from cryptobot_core.models import Candle
from cryptobot_core.settings import Settings
from cryptobot_core.store import STREAMING_1M, CandleStore
from cryptobot_core.stream.messages import encode_candle
from cryptobot_core.stream.producer import StreamProducer
from tests.core.stream.conftest import (
    T0,
    ConsumerThread,
    committed,
    make_candle,
    send_raw,
    wait_until,
)

pytestmark = pytest.mark.slow


class QueueStream:
    """Stands in for the WebSocket client only: yields what the test puts in."""

    def __init__(self) -> None:
        self.items: queue.Queue[Any] = queue.Queue()
        self.closed = False

    def __aiter__(self) -> QueueStream:
        return self

    async def __anext__(self) -> Any:
        while not self.closed:
            try:
                return self.items.get_nowait()
            except queue.Empty:
                await asyncio.sleep(0.01)
        raise StopAsyncIteration

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[tuple[services.ManagedProcess, str]]:
    """A SecantusDB on disk that the test may stop and restart."""
    port = services.free_port()
    proc = services.secantus(port, tmp_path / "db", tmp_path / "secantus.log").start()
    try:
        yield proc, f"mongodb://127.0.0.1:{port}/?directConnection=true"
    finally:
        proc.stop()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[services.ManagedProcess, int]]:
    """A Tansu broker that the test may stop and restart on the same port."""
    port = services.free_port()
    proc = services.tansu(port, tmp_path / "tansu.log").start()
    try:
        yield proc, port
    finally:
        proc.stop()


def test_store_down_for_30s_pauses_without_committing_and_loses_nothing(
    stream_settings: Settings,
    own_store: tuple[services.ManagedProcess, str],
    consumer_thread: Callable[..., ConsumerThread],
) -> None:
    proc, uri = own_store
    cfg = stream_settings.model_copy(update={"mongo_uri": uri, "mongo_timeout_ms": 1000})
    first = [make_candle("BTCUSDT", T0 + m * 60_000, price=f"1{m}.5") for m in range(10)]
    second = [make_candle("BTCUSDT", T0 + m * 60_000, price=f"2{m}.5") for m in range(10, 30)]
    send_raw(cfg, [(c.symbol.encode(), encode_candle(c)) for c in first])
    ct = consumer_thread(cfg)
    wait_until(lambda: sum(committed(cfg).values()) == len(first), 60, "first batch committed")

    proc.stop()
    outage_start = time.monotonic()
    send_raw(cfg, [(c.symbol.encode(), encode_candle(c)) for c in second])
    wait_until(lambda: ct.consumer.stats.store_retries >= 2, 60, "the consumer to retry writes")
    time.sleep(max(0.0, 30 - (time.monotonic() - outage_start)))  # the outage lasts 30 s
    assert sum(committed(cfg).values()) == len(first), "offsets committed while the store was down"
    assert ct.thread.is_alive()

    proc.start()
    wait_until(
        lambda: sum(committed(cfg).values()) == len(first) + len(second),
        90,
        "second batch committed after the store came back",
    )
    ct.stop()
    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    try:
        stored = CandleStore(client[cfg.database], STREAMING_1M).find("BTCUSDT")
    finally:
        client.close()
    assert stored == first + second


def test_broker_restart_loses_nothing(
    stream_settings: Settings,
    own_broker: tuple[services.ManagedProcess, int],
    mongo_db: Any,
    consumer_thread: Callable[..., ConsumerThread],
    tmp_path: Path,
) -> None:
    proc, port = own_broker
    cfg = stream_settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{port}"})
    fake = QueueStream()
    producer = StreamProducer(cfg, stream_factory=lambda: fake, spool_path=tmp_path / "spool.jsonl")
    stop = threading.Event()
    pt = threading.Thread(target=producer.run, args=(stop,), daemon=True)
    pt.start()
    ct = consumer_thread(cfg)
    candles: list[Candle] = [
        make_candle("ETHUSDT", T0 + m * 60_000, price=f"3{m}.25") for m in range(40)
    ]
    store = CandleStore(mongo_db, STREAMING_1M)
    try:
        for c in candles[:20]:
            fake.items.put(c)
        wait_until(lambda: len(store.find("ETHUSDT")) == 20, 60, "candles before the restart")

        proc.stop()
        for c in candles[20:30]:
            fake.items.put(c)
        wait_until(lambda: producer.stats.messages == 30, 30, "producer to take the outage records")
        proc.start()  # Tansu keeps nothing: topics and committed offsets are gone
        for c in candles[30:]:
            fake.items.put(c)
        wait_until(lambda: len(store.find("ETHUSDT")) == 40, 120, "every candle after the restart")
    finally:
        stop.set()
        pt.join(60)
        ct.stop()
    assert store.find("ETHUSDT") == candles
    assert producer.stats.messages == 40
