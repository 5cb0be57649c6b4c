"""A producer killed with kill -9 just before midnight: the restart records the gap from its
last acknowledged minute, repair fills it across the day boundary, and the stored window
equals the exchange's (simulator, accelerated clock; real Tansu and SecantusDB)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cryptobot_core.intervals import Interval
from cryptobot_core.models import DECIMAL_FIELDS, Candle, ms_to_dt
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimulatorServer, default_symbols
from cryptobot_core.store import STREAM_GAPS, STREAMING_1M, CandleStore
from cryptobot_core.stream.repair import repair
from tests.core.stream.conftest import ConsumerThread, subprocess_env, wait_until

M1 = Interval.M1
MIDNIGHT = 1_767_225_600_000  # 2026-01-01 00:00 UTC
START = MIDNIGHT - 7 * 60_000 + 20_000  # 23:53:20 simulated
SPEED = 60.0  # one simulated minute per real second
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
FIELDS = (*DECIMAL_FIELDS, "trades", "open_time", "close_time", "is_closed")


@pytest.fixture
def sim(make_simulator: Callable[..., SimulatorServer]) -> SimulatorServer:
    listings = [s for s in default_symbols() if s.symbol in SYMBOLS]
    return make_simulator(
        symbols=listings, clock=SimClock.accelerated(START, SPEED), ws_update_interval_s=0.25
    )


def assert_window_exact(
    store: CandleStore, sim: SimulatorServer, symbols: list[str], start_ms: int, end_ms: int
) -> None:
    """The stored closed 1m candles of [start, end) are the exchange's: none lost, none
    duplicated, every value equal."""
    for symbol in symbols:
        stored = store.find(symbol, ms_to_dt(start_ms), ms_to_dt(end_ms))
        opens = [c.open_ms for c in stored]
        expected = M1.opens_between(start_ms, end_ms)
        lost = sorted(set(expected) - set(opens))
        duplicated = sorted({t for t in opens if opens.count(t) > 1})
        assert not lost and not duplicated, f"{symbol}: lost {lost}, duplicated {duplicated}"
        for c in stored:
            exchange: Candle | None = sim.market.minute(symbol, c.open_ms)
            assert exchange is not None
            differ = [f for f in FIELDS if getattr(c, f) != getattr(exchange, f)]
            assert not differ, f"{symbol} {c.open_time}: {differ} differ from the exchange"


def test_kill_9_before_midnight_is_repaired_across_the_day_boundary(
    sim: SimulatorServer,
    stream_settings: Settings,
    mongo_db: Any,
    consumer_thread: Callable[..., ConsumerThread],
    tmp_path: Path,
) -> None:
    settings = stream_settings.model_copy(update={"sim_port": sim.port, "symbols": SYMBOLS})
    store = CandleStore(mongo_db, STREAMING_1M)
    env = {**os.environ, **subprocess_env(settings)}
    argv = [sys.executable, "-m", "cryptobot_core.stream", "produce"]
    ct = consumer_thread(settings)
    first = M1.floor(START) + M1.ms  # the first minute that opened while connected

    def newest() -> int:
        found = [c.open_ms for s in SYMBOLS for c in store.find(s) if c.is_closed]
        return max(found) if found else 0

    with open(tmp_path / "producer1.log", "wb") as log1:
        proc = subprocess.Popen(argv, env=env, stdout=log1, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: newest() >= first + M1.ms, 90, "two streamed minutes")
        proc.send_signal(signal.SIGKILL)  # records still in its queues die with it
        proc.wait(10)
        wait_until(lambda: sim.clock.now_ms() > MIDNIGHT + 3 * M1.ms, 60, "00:03 to pass")
        with open(tmp_path / "producer2.log", "wb") as log2:
            proc = subprocess.Popen(argv, env=env, stdout=log2, stderr=subprocess.STDOUT)
        wait_until(
            lambda: mongo_db[STREAM_GAPS].count_documents({"reason": {"$regex": "restart"}}) >= 1,
            90,
            "the restarted producer to record the gap since its last acknowledged minute",
        )
        wait_until(lambda: newest() >= MIDNIGHT + 5 * M1.ms, 90, "streaming after the restart")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    ct.stop()
    end = newest() + M1.ms
    gap = mongo_db[STREAM_GAPS].find_one({"reason": {"$regex": "restart"}})
    assert gap["missed_from"] < ms_to_dt(MIDNIGHT) < gap["missed_to"]

    report = repair(settings, now_ms=end)
    assert report.start_ms < MIDNIGHT  # from the watermark, not just "today"
    assert report.total_repaired > 0 and report.gaps_short == 0
    assert_window_exact(store, sim, SYMBOLS, first, end)
    assert mongo_db[STREAM_GAPS].count_documents({"repaired": False}) == 0
