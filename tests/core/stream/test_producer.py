"""The producer's sender: with no broker, records are counted and spooled, then delivered."""

from __future__ import annotations

import json
from pathlib import Path

from cryptobot_core import services
from cryptobot_core.settings import Settings
from cryptobot_core.stream.messages import decode, encode_candle
from cryptobot_core.stream.producer import KafkaSender, ProducerStats, Spool
from tests.core.stream.conftest import T0, make_candle, read_topic, wait_until


def test_spool_round_trip(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s" / "spool.jsonl")
    records = [(b"BTCUSDT", b'{"v":1}'), (None, b'{"v":1,"raw":"x"}')]
    spool.append(records)
    assert len(spool) == 2
    assert spool.take() == records
    assert len(spool) == 0 and spool.take() == []


def test_sender_spools_while_the_broker_is_down_and_delivers_when_it_is_back(
    stream_settings: Settings, tmp_path: Path
) -> None:
    port = services.free_port()  # nothing listens here yet
    cfg = stream_settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{port}"})
    stats = ProducerStats()
    sender = KafkaSender(cfg, stats, Spool(tmp_path / "spool.jsonl")).start()
    candles = [make_candle("BTCUSDT", T0 + i * 60_000) for i in range(5)]
    broker = None
    try:
        for c in candles:
            sender.offer(c.symbol.encode(), encode_candle(c))
        wait_until(lambda: stats.spooled >= 5, 60, "records to be spooled while the broker is down")
        assert stats.acked == 0 and stats.broker_errors >= 1
        broker = services.tansu(port, tmp_path / "tansu.log").start()
        wait_until(lambda: stats.acked >= 5, 90, "spooled records to be delivered")
    finally:
        sender.stop()
        if broker:
            got = read_topic(cfg, cfg.kafka_topic, 5)
            broker.stop()
    assert sorted(decode(json.dumps(m).encode()).candle.open_ms for m in got) == [
        c.open_ms for c in candles
    ]
    assert len(sender.spool) == 0
