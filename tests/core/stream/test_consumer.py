"""The consumer against real Tansu and SecantusDB: collapse, guard, commits, dead letters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptobot_core.models import Candle, ms_to_dt
from cryptobot_core.settings import Settings
from cryptobot_core.store import DEAD_LETTERS, STREAMING_1M, CandleStore
from cryptobot_core.stream.messages import encode_candle, encode_event
from tests.core.stream.conftest import (
    T0,
    ConsumerThread,
    committed,
    make_candle,
    read_topic,
    send_raw,
    subprocess_env,
    wait_until,
)


def _record(c: Candle) -> tuple[bytes, bytes]:
    return c.symbol.encode(), encode_candle(c)


def test_consumer_stores_newest_version_and_commits_after_write(
    stream_settings: Settings, mongo_db: Any, consumer_thread: Callable[..., ConsumerThread]
) -> None:
    final = make_candle("BTCUSDT", T0, closed=True, event_ms=T0 + 60_000, price="101.00")
    records = [
        _record(make_candle("BTCUSDT", T0, closed=False, event_ms=T0 + 2_000, price="100.00")),
        _record(final),
        # A late, open update of the same minute must not overwrite the closed one.
        _record(make_candle("BTCUSDT", T0, closed=False, event_ms=T0 + 70_000, price="99.00")),
        _record(make_candle("ETHUSDT", T0, closed=False, event_ms=T0 + 4_000, price="5.00")),
        _record(make_candle("ETHUSDT", T0, closed=False, event_ms=T0 + 6_000, price="6.00")),
    ]
    send_raw(stream_settings, records)
    ct = consumer_thread()
    store = CandleStore(mongo_db, STREAMING_1M)
    wait_until(
        lambda: sum(committed(stream_settings).values()) == len(records),
        60,
        "offsets of all records committed",
    )
    ct.stop()
    btc = store.find("BTCUSDT")
    eth = store.find("ETHUSDT")
    assert btc == [final]
    assert len(eth) == 1 and eth[0].open == Decimal("6.00") and not eth[0].is_closed
    assert ct.consumer.stats.messages == len(records)
    assert ct.consumer.stats.dead_letters == 0

    # A replay (e.g. after a crash before commit) changes nothing.
    send_raw(stream_settings, records[:2])
    ct2 = consumer_thread()
    wait_until(
        lambda: sum(committed(stream_settings).values()) == len(records) + 2,
        60,
        "replayed records committed",
    )
    ct2.stop()
    assert store.find("BTCUSDT") == [final]
    assert mongo_db[STREAMING_1M].count_documents({}) == 2


def test_malformed_messages_become_dead_letters_and_consumer_keeps_going(
    stream_settings: Settings, mongo_db: Any, consumer_thread: Callable[..., ConsumerThread]
) -> None:
    good = make_candle("BTCUSDT", T0 + 60_000)
    bad_decimal = good.to_ws_event()
    bad_decimal["k"]["o"] = "12,5"
    records: list[tuple[bytes | None, bytes]] = [
        (b"BTCUSDT", b"\xff\xfenot json"),
        (b"BTCUSDT", b'{"v": 99, "event": {}}'),
        (b"BTCUSDT", encode_event(bad_decimal)),
        (
            None,
            b'{"v": 1, "raw": "{\\"e\\": \\"kli", "reason": "truncated frame", "received_at": 1}',
        ),
        (b"BTCUSDT", encode_candle(good)),
    ]
    send_raw(stream_settings, records)
    ct = consumer_thread()
    wait_until(
        lambda: (
            mongo_db[STREAMING_1M].count_documents({}) == 1
            and mongo_db[DEAD_LETTERS].count_documents({}) == 4
        ),
        60,
        "good candle and 4 dead letters",
    )
    ct.stop()
    letters = list(mongo_db[DEAD_LETTERS].find({}))
    reasons = " | ".join(sorted(d["reason"] for d in letters))
    assert "not UTF-8 JSON" in reasons
    assert "unsupported envelope version 99" in reasons
    assert "open must be a decimal string" in reasons
    assert "truncated frame" in reasons
    assert {d["topic"] for d in letters} == {stream_settings.kafka_topic}
    assert all({"reason", "raw", "topic", "partition", "offset", "at"} <= d.keys() for d in letters)
    assert CandleStore(mongo_db, STREAMING_1M).find("BTCUSDT") == [good]
    on_topic = read_topic(stream_settings, stream_settings.kafka_dead_letter_topic, 4)
    assert sorted(m["reason"] for m in on_topic) == sorted(d["reason"] for d in letters)


def test_kill_9_mid_batch_then_restart_loses_nothing_and_duplicates_nothing(
    stream_settings: Settings, mongo_db: Any, tmp_path: Path
) -> None:
    symbols = [f"S{i:02d}USDT" for i in range(40)]
    stream_settings = stream_settings.model_copy(update={"symbols": symbols})
    minutes = 60
    expected = {
        (s, T0 + m * 60_000): make_candle(s, T0 + m * 60_000, price=f"{i + 1}.{m:02d}")
        for i, s in enumerate(symbols)
        for m in range(minutes)
    }
    # An open update before each final one so batches really collapse.
    records = []
    for (s, t), c in expected.items():
        records.append(_record(make_candle(s, t, closed=False, event_ms=t + 30_000, price="7.77")))
        records.append(_record(c))
    send_raw(stream_settings, records)
    env = {**os.environ, **subprocess_env(stream_settings)}
    # Small batches so the kill lands between write and commit of some batch.
    argv = [sys.executable, "-m", "cryptobot_core.stream", "consume", "--max-records", "200"]
    log = open(tmp_path / "consumer1.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    coll = mongo_db[STREAMING_1M]
    try:
        wait_until(
            lambda: coll.count_documents({}) >= len(expected) // 4,
            120,
            "the first consumer to write a quarter of the candles",
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        written_before = coll.count_documents({})
        assert written_before < len(expected), "killed too late to test a restart"
        log2 = open(tmp_path / "consumer2.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(argv, env=env, stdout=log2, stderr=subprocess.STDOUT)
        wait_until(
            lambda: sum(committed(stream_settings).values()) == len(records),
            120,
            "the restarted consumer to commit every record",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, (tmp_path / "consumer2.log").read_text()[-2000:]
    store = CandleStore(mongo_db, STREAMING_1M)
    stored = {(c.symbol, c.open_ms): c for s in symbols for c in store.find(s)}
    assert coll.count_documents({}) == len(expected)
    assert stored == expected
    # Every candle is the final one (closed), with the exchange's exact values.
    assert all(c.is_closed for c in stored.values())
    assert ms_to_dt(T0) == min(c.open_time for c in stored.values())


def test_the_consumer_reports_where_the_time_goes(
    stream_settings: Settings, consumer_thread: Callable[..., ConsumerThread]
) -> None:
    import time

    from cryptobot_core.stream.consumer import STAGES

    now = int(time.time() * 1000)
    # Each event happened 250 ms before the producer took it (encode stamps received_at).
    records = [
        _record(make_candle("BTCUSDT", T0 + i * 60_000, event_ms=now - 250)) for i in range(20)
    ]
    send_raw(stream_settings, records)
    ct = consumer_thread()
    wait_until(
        lambda: sum(committed(stream_settings).values()) == len(records), 60, "all committed"
    )
    # The stages are reported with the next heartbeat.
    wait_until(lambda: set(ct.consumer.stats.stages_ms) == set(STAGES), 30, "stages reported")
    ct.stop()
    stages = ct.consumer.stats.stages_ms
    exchange_p50 = stages["exchange_to_producer"][0]
    assert 250 <= exchange_p50 < 250 + 5_000
    assert all(p50 >= 0 and p99 >= p50 for p50, p99 in stages.values()), stages
