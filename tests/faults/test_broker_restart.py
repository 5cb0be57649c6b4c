"""A broker restart loses records it had acknowledged but nobody had consumed yet.

Tansu keeps topics in memory only, so records acked by the broker and not yet read by the
consumer are gone after a restart; the producer cannot know (they were acked). The consumer
notices on its first candle per symbol that the topic resumes beyond the newest stored
minute, records the gap, and repair fills it from the exchange's REST klines. The stored
window must then equal the exchange's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptobot_core import services
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle
from cryptobot_core.settings import Settings
from cryptobot_core.store import STREAM_GAPS, STREAMING_1M, CandleStore
from cryptobot_core.stream.producer import StreamProducer
from cryptobot_core.stream.repair import repair
from tests.core.stream.conftest import T0, ConsumerThread, make_candle, wait_until
from tests.core.stream.test_resilience import QueueStream, own_broker

__all__ = ["own_broker"]

M1 = Interval.M1
MINUTES = 30


class Exchange:
    """The REST side of the exchange these candles came from."""

    def __init__(self, candles: list[Candle]) -> None:
        self.candles = candles

    def server_time_ms(self) -> int:
        return T0 + MINUTES * M1.ms + 5_000

    def klines(self, symbol: str, interval: Any, start_ms: int, end_ms: int) -> list[Candle]:
        return [c for c in self.candles if c.symbol == symbol and start_ms <= c.open_ms < end_ms]

    def close(self) -> None:
        pass


def test_records_acked_but_not_consumed_when_the_broker_restarts_are_repaired(
    stream_settings: Settings,
    own_broker: tuple[services.ManagedProcess, int],
    mongo_db: Any,
    consumer_thread: Callable[..., ConsumerThread],
    tmp_path: Path,
) -> None:
    proc, port = own_broker
    cfg = stream_settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{port}", "symbols": ["ETHUSDT"]}
    )
    candles = [make_candle("ETHUSDT", T0 + m * M1.ms, price=f"4{m}.75") for m in range(MINUTES)]
    fake = QueueStream()
    producer = StreamProducer(cfg, stream_factory=lambda: fake, spool_path=tmp_path / "spool.jsonl")
    stop = threading.Event()
    pt = threading.Thread(target=producer.run, args=(stop,), daemon=True)
    pt.start()
    store = CandleStore(mongo_db, STREAMING_1M)
    try:
        ct = consumer_thread(cfg)
        for c in candles[:10]:
            fake.items.put(c)
        wait_until(lambda: len(store.find("ETHUSDT")) == 10, 60, "10 minutes stored")
        ct.stop()  # the consumer is away ...
        for c in candles[10:20]:
            fake.items.put(c)
        wait_until(lambda: producer.stats.acked >= 20, 60, "10 more minutes acked by the broker")
        proc.stop()  # ... when the broker restarts and forgets them
        proc.start()
        for c in candles[20:]:
            fake.items.put(c)
        ct2 = consumer_thread(cfg)
        wait_until(
            lambda: any(c.open_ms == candles[-1].open_ms for c in store.find("ETHUSDT")),
            120,
            "the minutes after the restart stored",
        )
        ct2.stop()
    finally:
        stop.set()
        pt.join(60)
    assert len(store.find("ETHUSDT")) == 20  # the 10 acked minutes are gone from the topic
    gap = mongo_db[STREAM_GAPS].find_one({"repaired": False})
    assert gap is not None and gap["symbols"] == ["ETHUSDT"]

    report = repair(cfg, client=Exchange(candles))
    assert report.total_repaired == 10 and report.gaps_resolved == 1
    stored = store.find("ETHUSDT")
    assert [c.with_source(candles[0].source) for c in stored] == candles
