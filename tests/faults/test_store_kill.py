"""The store killed with kill -9 (not a clean stop) while the stream runs.

SecantusDB keeps its data in a directory; it is killed right after the consumer's writes
were acknowledged and their offsets committed, and restarted on the same port and
directory. A second consumer joins while the store is down, forcing a rebalance. The stored
window must equal everything sent: an acknowledged (journaled) write survives, and no
polled record is dropped while the store is away.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from cryptobot_core import services
from cryptobot_core.models import Candle
from cryptobot_core.settings import Settings
from cryptobot_core.store import STREAMING_1M, CandleStore
from cryptobot_core.stream.messages import encode_candle
from tests.core.stream.conftest import (
    T0,
    ConsumerThread,
    committed,
    make_candle,
    send_raw,
    wait_until,
)

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def _batch(first_minute: int, minutes: int) -> list[Candle]:
    return [
        make_candle(s, T0 + m * 60_000, price=f"{m + 3}.{i}")
        for m in range(first_minute, first_minute + minutes)
        for i, s in enumerate(SYMBOLS)
    ]


def test_store_kill_9_after_acknowledged_writes_and_a_rebalance_while_down(
    stream_settings: Settings, consumer_thread: Callable[..., ConsumerThread], tmp_path: Path
) -> None:
    port = services.free_port()
    data = tmp_path / "store"
    store_proc = services.secantus(port, data, tmp_path / "store1.log").start()
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    settings = stream_settings.model_copy(
        update={
            "mongo_uri": uri,
            "symbols": SYMBOLS,
            "kafka_partitions": 2,
            "mongo_timeout_ms": 1500,
        }
    )
    client: MongoClient[dict[str, Any]] = MongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=20_000
    )
    try:
        sent: list[Candle] = []

        def send(candles: list[Candle]) -> None:
            send_raw(settings, [(c.symbol.encode(), encode_candle(c)) for c in candles])
            sent.extend(candles)

        send(_batch(0, 30))
        consumer_thread(settings, backoff_max_s=1.0)
        wait_until(lambda: sum(committed(settings).values()) == len(sent), 90, "batch 1 committed")

        store_proc.proc.send_signal(signal.SIGKILL)  # acknowledged and committed: must survive
        store_proc.proc.wait(10)
        send(_batch(30, 30))  # polled while the store is down
        consumer_thread(settings, backoff_max_s=1.0)  # joins: the group rebalances
        send(_batch(60, 30))
        store_proc = services.secantus(port, data, tmp_path / "store2.log").start()
        wait_until(
            lambda: sum(committed(settings).values()) == len(sent), 120, "everything committed"
        )
        store = CandleStore(client[settings.database], STREAMING_1M)
        stored = sorted(
            (c for s in SYMBOLS for c in store.find(s)), key=lambda c: (c.symbol, c.open_ms)
        )
        assert stored == sorted(sent, key=lambda c: (c.symbol, c.open_ms))
        assert client[settings.database][STREAMING_1M].count_documents({}) == len(sent)
    finally:
        client.close()
        store_proc.stop()
