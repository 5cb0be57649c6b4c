"""Fill a store with simulator candles through the core's own writers (shared by API tests)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, ms_to_dt
from cryptobot_core.query import iso  # noqa: F401 - re-exported for the tests
from cryptobot_core.simulator.config import SimConfig
from cryptobot_core.simulator.market import Market
from cryptobot_core.store import (
    FEATURES_15M,
    HEARTBEATS,
    HISTORICAL_15M,
    STREAMING_1M,
    CandleStore,
    candle_document,
)


def ms(text: str) -> int:
    """Epoch ms of an ISO time (UTC)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


# Three full weeks of 15m history; 2024-01-01 is a Monday, so 1w buckets align.
HISTORY_START = ms("2024-01-01T00:00:00")
HISTORY_END = ms("2024-01-22T00:00:00")
# ETHUSDT has an exchange-side outage: the exchange itself has no candles here.
OUTAGE = (ms("2024-01-10T03:05:00"), ms("2024-01-10T04:20:00"))
# Two hours of the 1m stream for BTCUSDT, with five minutes never received.
STREAM_START = ms("2024-01-21T22:00:00")
STREAM_END = ms("2024-01-22T00:00:00")
STREAM_HOLE = (ms("2024-01-21T23:10:00"), ms("2024-01-21T23:15:00"))
SYMBOLS = ("BTCUSDT", "ETHUSDT")
FEATURE_ROWS = 8


def market() -> Market:
    """The simulator every test compares with."""
    return Market(SimConfig(seed=42, outages=[(*OUTAGE, "ETHUSDT")]))


def klines(mkt: Market, symbol: str, interval: Interval, start: int, end: int) -> list[Candle]:
    """Every closed candle of ``interval`` with open in [start, end), paging like a client."""
    out: list[Candle] = []
    t = start
    while t < end:
        page = mkt.klines(symbol, interval, t, end - 1, 1000, now_ms=end + interval.ms)
        if not page:
            break
        out.extend(page)
        t = page[-1].open_ms + interval.ms
    return [c for c in out if c.open_ms < end]


def seed(db: Database[dict[str, Any]], mkt: Market) -> None:
    """History, stream, features and a heartbeat, written with CandleStore.upsert."""
    history = CandleStore(db, HISTORICAL_15M)
    history.ensure_indexes()
    for symbol in SYMBOLS:
        history.insert_missing(klines(mkt, symbol, Interval.M15, HISTORY_START, HISTORY_END))
    stream = CandleStore(db, STREAMING_1M)
    stream.ensure_indexes()
    minutes = [
        c
        for c in klines(mkt, "BTCUSDT", Interval.M1, STREAM_START, STREAM_END)
        if not STREAM_HOLE[0] <= c.open_ms < STREAM_HOLE[1]
    ]
    stream.upsert(minutes)
    # The live minute: still open.
    live = mkt.klines("BTCUSDT", Interval.M1, STREAM_END, STREAM_END, 1, now_ms=STREAM_END + 30_000)
    stream.upsert(live)
    db[FEATURES_15M].create_index([("symbol", 1), ("open_time", 1)], unique=True)
    rows = []
    for i in range(FEATURE_ROWS):
        t = HISTORY_END - (FEATURE_ROWS - i) * Interval.M15.ms
        rows.append(
            {
                "symbol": "BTCUSDT",
                "open_time": ms_to_dt(t),
                "close_time": ms_to_dt(t + 899_999),
                "close": candle_document(history.find("BTCUSDT", ms_to_dt(t), ms_to_dt(t + 1))[0])[
                    "close"
                ],
                "log_return": math.nan if i == 0 else 0.001 * i,
                "volatility_1h": None if i < 4 else 0.01,
                "volatility_24h": None,
                "vwap": 42000.5 + i,
                "hl_range": 0.002,
                "volume_zscore": -0.5 + i,
                "computed_at": datetime.now(UTC),
            }
        )
    db[FEATURES_15M].insert_many(rows)
    db[HEARTBEATS].replace_one(
        {"_id": "producer"},
        {"_id": "producer", "updated_at": datetime.now(UTC), "pid": 1},
        upsert=True,
    )
