"""A 418 ban seen by one process is respected by every process: 0 requests until it ends.

Covered callers: any ``BinanceClient.from_settings`` (sensors, schedules, repair, symbols
refresh) and the producer's WebSocket handshake.

Real simulator over HTTP, real store. One client meets the ban (Retry-After 600 s); a
second process (a fresh interpreter, as a repair run or a sensor would be) then calls the
exchange through ``BinanceClient.from_settings`` and must refuse without sending anything.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from cryptobot_core.errors import IPBannedError
from cryptobot_core.exchange import KlineStream, StreamGap
from cryptobot_core.exchange.rest import BinanceClient, StoredBan
from cryptobot_core.intervals import Interval
from cryptobot_core.models import ms_to_dt
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimulatorServer
from cryptobot_core.store import HISTORICAL_15M, CandleStore
from tests.core.stream.conftest import subprocess_env

OTHER_PROCESS = """
from cryptobot_core.errors import IPBannedError
from cryptobot_core.exchange import KlineStream, StreamGap
from cryptobot_core.exchange.rest import BinanceClient, StoredBan
from cryptobot_core.settings import load_settings

with BinanceClient.from_settings(load_settings()) as client:
    for call in (client.server_time_ms, lambda: client.klines("BTCUSDT", "1m", 0, 60_000)):
        try:
            call()
            print("CALLED")
        except IPBannedError as exc:
            print("REFUSED", exc)
"""


def meet_a_ban(simulator: SimulatorServer, settings: Settings) -> Settings:
    """Ban the IP for 600 s; one REST caller meets it (and records it). The caller's settings."""
    cfg = settings.model_copy(update={"sim_port": simulator.port})
    simulator.faults.ban_ip(600)
    with BinanceClient.from_settings(cfg) as client, pytest.raises(IPBannedError):
        client.server_time_ms()
    return cfg


def test_a_ban_met_by_one_process_stops_every_process(
    simulator: SimulatorServer, settings: Settings, mongo_db: Any
) -> None:
    cfg = meet_a_ban(simulator, settings)
    record = mongo_db["exchange_bans"].find_one({})
    assert record is not None and "418" in record["reason"]

    before = simulator.stats.snapshot()["requests"]
    env = {**os.environ, **subprocess_env(cfg)}
    out = subprocess.run(  # from the test's own folder: no stray .env is read
        [sys.executable, "-c", OTHER_PROCESS], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("REFUSED") for line in lines), out.stdout
    assert "banned this IP until" in lines[0] and "every caller waits" in lines[0]
    assert simulator.stats.snapshot()["requests"] == before  # not one request during the ban


def test_the_websocket_handshake_waits_out_a_ban_another_process_met(
    simulator: SimulatorServer, settings: Settings, mongo_db: Any
) -> None:
    cfg = meet_a_ban(simulator, settings)
    before = simulator.stats.snapshot()

    async def run() -> Any:
        stream = KlineStream(
            cfg.ws_base_url,
            ["BTCUSDT"],
            "1m",
            reconnect_backoff=(0.1, 0.2),
            shared_ban=StoredBan(cfg),
        )
        first = asyncio.create_task(stream.__anext__())
        await asyncio.sleep(3.0)
        during = simulator.stats.snapshot()
        # The ban ends: lifted at the exchange, and its record runs out.
        simulator.faults.lift_bans()
        mongo_db["exchange_bans"].update_many({}, {"$set": {"until": datetime.now(UTC)}})
        item = await asyncio.wait_for(first, 20)
        await stream.close()
        return during, item

    during, item = asyncio.run(run())
    # Not one handshake during the ban: no refused one, no opened one.
    for counter in ("ws_handshakes_refused", "ws_connections_opened", "requests"):
        assert during[counter] == before[counter], counter
    assert isinstance(item, StreamGap) and item.missed_from_ms is None  # then it streams
    assert (
        simulator.stats.snapshot()["ws_connections_opened"] == before["ws_connections_opened"] + 1
    )


HISTORY_RUN = """
import sys
from datetime import timedelta
from cryptobot_core.exchange.rest import BinanceClient
from cryptobot_core.history import ensure_history_indexes, fetch_days, last_closed_day, write_batch
from cryptobot_core.settings import load_settings
from cryptobot_core.store import open_store

settings = load_settings()
symbols, days = sys.argv[1].split(","), int(sys.argv[2])
with BinanceClient.from_settings(settings) as client, open_store(settings) as store:
    now = client.server_time_ms()
    last = last_closed_day(now)
    # Every other day: each day is a request of its own (contiguous days share one).
    batch = fetch_days(client, [(s, last - timedelta(days=2 * i)) for s in symbols for i in range(days)], now)
    ensure_history_indexes(store)
    print("WROTE", write_batch(store, batch).inserted, client.stats.rate_limited)
"""
RUNS = [["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"],
        ["ADAUSDT", "DOGEUSDT", "TRXUSDT", "LTCUSDT", "LINKUSDT"],
        ["DOTUSDT", "AVAXUSDT", "ATOMUSDT", "UNIUSDT", "XLMUSDT"]]  # fmt: skip
DAYS = 10  # every other day: 10 requests per symbol


@pytest.mark.slow
def test_history_runs_under_a_429_stay_under_the_weight_limit_and_lose_nothing(
    make_simulator: Any, settings: Settings, mongo_db: Any
) -> None:
    """Three history processes at once need more weight than one window allows, and meet a
    429 with Retry-After: every candle arrives, and no window's weight exceeds the limit."""
    # Binance's window is a minute; 10 s (advertised in exchangeInfo) keeps the test short.
    limit = 300  # 3 runs x (exchangeInfo 20 + time 1 + 50 klines requests x 2) = 363
    simulator = make_simulator(clock=SimClock.real(), weight_limit=limit, weight_window_s=10)
    simulator.faults.retry_after_s = 2
    cfg = settings.model_copy(update={"sim_port": simulator.port})
    env = {**os.environ, **subprocess_env(cfg)}
    procs = [
        subprocess.Popen(  # from the test's own folder: no stray .env is read
            [sys.executable, "-c", HISTORY_RUN, ",".join(symbols), str(DAYS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for symbols in RUNS
    ]
    simulator.faults.throttle(3)  # a 429 with Retry-After for whoever calls in the next 3 s
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.startswith("WROTE"), out
    stats = simulator.stats
    assert stats.snapshot()["requests_during_throttle"] >= 1, "the 429 was met"
    assert stats.max_weight_per_minute <= limit, stats.snapshot()["weight_by_minute"]
    assert stats.count_418 == 0

    # The full stored set equals the exchange's: every 15m candle of every day, once, exact.
    store = CandleStore(mongo_db, HISTORICAL_15M)
    last = Interval.D1.floor(simulator.clock.now_ms()) - Interval.D1.ms
    for symbol in [s for run in RUNS for s in run]:
        for i in range(DAYS):
            start = last - 2 * i * Interval.D1.ms
            truth = simulator.market.klines(symbol, "15m", start, start + Interval.D1.ms - 1, 1000)
            stored = store.find(symbol, ms_to_dt(start), ms_to_dt(start + Interval.D1.ms))
            assert len(truth) == 96
            assert [c.to_rest_row() for c in stored] == [c.to_rest_row() for c in truth], symbol
