"""End to end with the simulator (accelerated clock), real Tansu and SecantusDB."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cryptobot_core.intervals import Interval
from cryptobot_core.models import DECIMAL_FIELDS, Candle, Source, ms_to_dt
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import Faults, SimClock, SimulatorServer, default_symbols
from cryptobot_core.store import DEAD_LETTERS, STREAM_GAPS, STREAMING_1M, CandleStore
from cryptobot_core.stream.producer import StreamProducer
from cryptobot_core.stream.repair import missing_minutes, repair
from tests.core.stream.conftest import ConsumerThread, subprocess_env, wait_until

M1 = Interval.M1
DAY0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
START = DAY0 + 10 * 60_000 + 20_000  # 00:10:20 simulated; the first 10 minutes predate the stream
SPEED = 60.0  # one simulated minute per real second
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def same_values(stored: Candle, exchange: Candle) -> bool:
    """True when the stored candle carries the exchange's exact values."""
    return (
        all(getattr(stored, f) == getattr(exchange, f) for f in (*DECIMAL_FIELDS, "trades"))
        and stored.open_time == exchange.open_time
        and stored.close_time == exchange.close_time
    )


@pytest.fixture
def sim(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    listings = [s for s in default_symbols() if s.symbol in SYMBOLS]
    return make_simulator(
        symbols=listings,
        clock=SimClock.accelerated(START, SPEED),
        ws_update_interval_s=0.25,
        faults=Faults(malformed_frame_rate=0.05, seed=7),
    )


@pytest.fixture
def sim_settings(stream_settings: Settings, sim: SimulatorServer) -> Settings:
    return stream_settings.model_copy(update={"sim_port": sim.port, "symbols": SYMBOLS})


class ProducerThread:
    def __init__(self, settings: Settings) -> None:
        self.producer = StreamProducer(settings)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=self.producer.run, args=(self.stop_event,), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.fixture
def running(
    sim_settings: Settings, consumer_thread: Callable[..., ConsumerThread]
) -> Iterator[tuple[ProducerThread, ConsumerThread]]:
    pt = ProducerThread(sim_settings)
    ct = consumer_thread(sim_settings)
    yield pt, ct
    if pt.thread.is_alive():
        pt.stop()


def closed_minutes(store: CandleStore, symbol: str) -> list[Candle]:
    return [c for c in store.find(symbol) if c.is_closed]


def test_every_closed_minute_lands_once_with_the_exchange_values(
    sim: SimulatorServer,
    sim_settings: Settings,
    mongo_db: Any,
    running: tuple[ProducerThread, ConsumerThread],
) -> None:
    pt, ct = running
    store = CandleStore(mongo_db, STREAMING_1M)
    first = M1.floor(START) + M1.ms  # the first minute that opened while connected
    n = 8
    wait_until(
        lambda: all(
            sum(1 for c in closed_minutes(store, s) if c.open_ms >= first) >= n for s in SYMBOLS
        ),
        90,
        f"{n} closed minutes per symbol",
    )
    pt.stop()
    wait_until(
        lambda: ct.consumer.stats.messages >= pt.producer.stats.acked,
        30,
        "the consumer to read everything the producer delivered",
    )
    ct.stop()
    for symbol in SYMBOLS:
        candles = [c for c in closed_minutes(store, symbol) if c.open_ms >= first]
        opens = [c.open_ms for c in candles]
        assert opens == M1.opens_between(first, opens[-1] + 1), (
            f"{symbol}: a closed minute is missing"
        )
        assert len(set(opens)) == len(opens)
        assert mongo_db[STREAMING_1M].count_documents(
            {"symbol": symbol, "open_time": {"$gte": ms_to_dt(first)}}
        ) >= len(candles)
        for c in candles:
            exchange = sim.market.minute(symbol, c.open_ms)
            assert exchange is not None and same_values(c, exchange), f"{symbol} {c.open_time}"
            assert c.source is Source.WS and c.event_time is not None
    # Malformed frames were injected; each one became a dead letter and nothing stopped.
    assert pt.producer.stats.malformed > 0
    assert mongo_db[DEAD_LETTERS].count_documents({}) == pt.producer.stats.malformed
    assert pt.producer.stats.spool_pending == 0 and pt.producer.stats.failed == 0


@pytest.mark.slow
def test_killed_producer_and_dropped_websocket_gaps_are_repaired(
    sim: SimulatorServer,
    sim_settings: Settings,
    mongo_db: Any,
    consumer_thread: Callable[..., ConsumerThread],
    tmp_path: Path,
) -> None:
    store = CandleStore(mongo_db, STREAMING_1M)
    env = {**os.environ, **subprocess_env(sim_settings)}
    argv = [sys.executable, "-m", "cryptobot_core.stream", "produce"]
    ct = consumer_thread(sim_settings)

    def newest() -> int:
        found = [c.open_ms for s in SYMBOLS for c in closed_minutes(store, s)]
        return max(found) if found else 0

    with open(tmp_path / "producer1.log", "wb") as log1:
        proc = subprocess.Popen(argv, env=env, stdout=log1, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: newest() >= M1.floor(START) + 3 * M1.ms, 90, "three streamed minutes")
        sim.faults.drop_connections()  # the client reconnects and reports a StreamGap
        wait_until(lambda: mongo_db[STREAM_GAPS].count_documents({}) >= 1, 60, "a recorded gap")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        killed_at = newest()
        # Stay down for a few simulated minutes, then restart.
        wait_until(lambda: sim.clock.now_ms() > killed_at + 5 * M1.ms, 30, "time to pass")
        with open(tmp_path / "producer2.log", "wb") as log2:
            proc = subprocess.Popen(argv, env=env, stdout=log2, stderr=subprocess.STDOUT)
        wait_until(lambda: newest() >= killed_at + 8 * M1.ms, 90, "streaming after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    ct.stop()
    end = newest() + M1.ms
    holes = {s: missing_minutes(store, s, DAY0, end) for s in SYMBOLS}
    assert all(holes.values()), f"expected gaps before repair, got {holes}"

    report = repair(sim_settings, now_ms=end)
    assert report.start_ms == DAY0  # the whole day, including before the stream started
    assert report.total_repaired == sum(len(h) for h in holes.values())
    for symbol in SYMBOLS:
        assert missing_minutes(store, symbol, DAY0, end) == []
        candles = store.find(symbol, ms_to_dt(DAY0), ms_to_dt(end))
        assert [c.open_ms for c in candles] == M1.opens_between(DAY0, end)
        repaired = {c.open_ms for c in candles if c.source is Source.REPAIR}
        assert repaired == set(holes[symbol])
        for c in candles:
            exchange = sim.market.minute(symbol, c.open_ms)
            assert exchange is not None and same_values(c, exchange)
    assert mongo_db[STREAM_GAPS].count_documents({"repaired": False}) == 0
    # A second pass finds nothing: repair is idempotent.
    assert repair(sim_settings, now_ms=end).total_missing == 0
