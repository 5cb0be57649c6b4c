"""Poison messages on the live topic: each becomes a dead letter, the stream stays exact.

Real Tansu and SecantusDB. Valid minutes are interleaved with every poison value; after the
consumer has committed everything, the stored set must equal the valid minutes exactly
(nothing lost, nothing extra, values equal), every poison value must be a dead letter with
its reason, and the consumer must still be running and storing what comes next.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptobot_core.settings import Settings
from cryptobot_core.store import DEAD_LETTERS, STREAMING_1M, CandleStore
from cryptobot_core.stream.messages import encode_candle
from tests.core.stream.conftest import (
    T0,
    ConsumerThread,
    committed,
    make_candle,
    send_raw,
    wait_until,
)
from tests.faults.poison import POISON


def test_every_poison_value_is_a_dead_letter_and_the_stream_stays_exact(
    stream_settings: Settings, mongo_db: Any, consumer_thread: Callable[..., ConsumerThread]
) -> None:
    settings = stream_settings.model_copy(update={"kafka_partitions": 1})
    good = [
        make_candle(symbol, T0 + i * 60_000, price=f"{100 + i}.{i}0")
        for i in range(len(POISON) + 1)
        for symbol in ("BTCUSDT", "ETHUSDT")
    ]
    records: list[tuple[bytes | None, bytes]] = []
    for i, (key, value, _) in enumerate(POISON):
        records += [(c.symbol.encode(), encode_candle(c)) for c in good[2 * i : 2 * i + 2]]
        records.append((key, value))
    records += [(c.symbol.encode(), encode_candle(c)) for c in good[-2:]]
    send_raw(settings, records)

    ct = consumer_thread(settings)
    wait_until(lambda: committed(settings)[0] == len(records), 90, "every record committed")
    store = CandleStore(mongo_db, STREAMING_1M)
    stored = store.find("BTCUSDT") + store.find("ETHUSDT")
    expected = sorted(good, key=lambda c: (c.symbol, c.open_time))
    assert sorted(stored, key=lambda c: (c.symbol, c.open_time)) == expected
    assert mongo_db[STREAMING_1M].count_documents({}) == len(good)

    letters = {d["offset"]: d for d in mongo_db[DEAD_LETTERS].find({})}
    poison_offsets = [3 * i + 2 for i in range(len(POISON))]
    assert sorted(letters) == poison_offsets
    for offset, (_, value, reason) in zip(poison_offsets, POISON, strict=True):
        assert reason in letters[offset]["reason"], (reason, letters[offset]["reason"])
        assert len(letters[offset]["raw"]) <= 20_000 or len(value) <= 20_000

    # Still alive and storing: one more minute arrives after all the poison.
    later = make_candle("BTCUSDT", T0 + 30 * 60_000)
    send_raw(settings, [(b"BTCUSDT", encode_candle(later))])
    wait_until(lambda: later in store.find("BTCUSDT"), 60, "a minute sent after the poison")
    assert ct.thread.is_alive()
    ct.stop()
    assert ct.consumer.stats.dead_letters == len(POISON)
