"""Fresh to the minute: 15m and coarser series, and /stats, include the hours after the daily
history, built from the 1m stream and marked provisional until that day's history lands."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo import MongoClient

from cryptobot_api.main import create_app
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle
from cryptobot_core.store import HISTORICAL_15M, STREAMING_1M, CandleStore
from tests.api import seed
from tests.api.conftest import make_settings
from tests.api.test_endpoints import as_json

DAY = 86_400_000
HISTORY_START = seed.ms("2024-03-03T00:00:00")
HISTORY_END = seed.ms("2024-03-05T00:00:00")  # two finished days of 15m history
LIVE = seed.ms("2024-03-05T03:37:00")  # the stream's open minute; every one before is closed
NOW = LIVE + 30_000


def provisional(c: Candle) -> dict[str, object]:
    return {**as_json(c), "provisional": True}


@pytest.fixture(scope="module")
def fresh(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """History to the end of yesterday, the stream from midnight to 03:37 today."""
    settings = make_settings(
        mongo_uri, f"fresh_{uuid.uuid4().hex[:10]}", tmp_path_factory.mktemp("f")
    )
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    db = client[settings.database]
    mkt = seed.market()
    history = CandleStore(db, HISTORICAL_15M)
    history.ensure_indexes()
    history.insert_missing(seed.klines(mkt, "BTCUSDT", Interval.M15, HISTORY_START, HISTORY_END))
    stream = CandleStore(db, STREAMING_1M)
    stream.ensure_indexes()
    stream.upsert(seed.klines(mkt, "BTCUSDT", Interval.M1, HISTORY_END - 3_600_000, LIVE))
    stream.upsert(mkt.klines("BTCUSDT", Interval.M1, LIVE, LIVE, 1, now_ms=NOW))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield {"client": test_client, "market": mkt, "history": history}
    client.drop_database(settings.database)
    client.close()


def test_15m_goes_on_from_the_stream_marked_provisional(fresh: dict[str, Any]) -> None:
    client, mkt = fresh["client"], fresh["market"]
    body = client.get(
        "/candles/BTCUSDT",
        params={"interval": "15m", "start": HISTORY_START, "end": HISTORY_END + DAY, "limit": 1000},
    ).json()
    final = seed.klines(mkt, "BTCUSDT", Interval.M15, HISTORY_START, HISTORY_END)
    # 00:00 to 03:30 today: fourteen buckets whose every minute has closed.
    today = seed.klines(mkt, "BTCUSDT", Interval.M15, HISTORY_END, seed.ms("2024-03-05T03:30:00"))
    assert len(final) == 192 and len(today) == 14
    assert body["candles"] == [as_json(c) for c in final] + [provisional(c) for c in today]


def test_the_newest_page_ends_at_the_last_complete_bucket(fresh: dict[str, Any]) -> None:
    body = fresh["client"].get("/candles/BTCUSDT", params={"interval": "15m", "limit": 3}).json()
    assert [c["open_time"] for c in body["candles"]] == [
        "2024-03-05T02:45:00.000Z",
        "2024-03-05T03:00:00.000Z",
        "2024-03-05T03:15:00.000Z",
    ]
    assert all(c["provisional"] and c["is_closed"] for c in body["candles"])
    body = (
        fresh["client"]
        .get("/candles/BTCUSDT", params={"interval": "15m", "limit": 1, "include_open": "true"})
        .json()
    )
    (bucket,) = body["candles"]
    assert bucket["open_time"] == "2024-03-05T03:30:00.000Z"
    assert bucket["provisional"] and not bucket["is_closed"]


@pytest.mark.parametrize("interval", ["1h", "4h"])
def test_coarser_intervals_stitch_history_and_stream(fresh: dict[str, Any], interval: str) -> None:
    client, mkt = fresh["client"], fresh["market"]
    iv = Interval(interval)
    body = client.get(
        "/candles/BTCUSDT",
        params={"interval": interval, "start": HISTORY_START, "end": HISTORY_END + DAY},
    ).json()
    want_final = seed.klines(mkt, "BTCUSDT", iv, HISTORY_START, HISTORY_END)
    # Only buckets that ended by 03:37 are closed: 1h until 03:00, 4h none.
    closed_end = iv.floor(LIVE)
    want_today = seed.klines(mkt, "BTCUSDT", iv, HISTORY_END, closed_end)
    assert body["candles"] == [as_json(c) for c in want_final] + [
        provisional(c) for c in want_today
    ]


def test_stats_include_today_and_say_so(fresh: dict[str, Any]) -> None:
    client, mkt = fresh["client"], fresh["market"]
    body = client.get(
        "/stats/BTCUSDT",
        params={"interval": "15m", "start": HISTORY_END, "end": HISTORY_END + DAY},
    ).json()
    today = seed.klines(mkt, "BTCUSDT", Interval.M15, HISTORY_END, seed.ms("2024-03-05T03:30:00"))
    assert body["count"] == 14 and body["provisional"] is True
    assert (
        body["open"] == as_json(today[0])["open"] and body["close"] == as_json(today[-1])["close"]
    )
    # A window inside history is final.
    body = client.get(
        "/stats/BTCUSDT",
        params={"interval": "1h", "start": HISTORY_START, "end": HISTORY_END},
    ).json()
    assert body["count"] == 48 and body["provisional"] is False


def test_files_hold_only_final_candles(fresh: dict[str, Any]) -> None:
    text = (
        fresh["client"]
        .get(
            "/candles/BTCUSDT",
            params={"start": HISTORY_END - 3_600_000, "end": HISTORY_END + DAY, "format": "csv"},
        )
        .text
    )
    assert len(text.splitlines()) == 1 + 4  # the header, then 23:00..23:45 of yesterday


def test_when_the_days_history_lands_the_same_candles_are_final(fresh: dict[str, Any]) -> None:
    client, mkt, history = fresh["client"], fresh["market"], fresh["history"]
    params = {"interval": "15m", "start": HISTORY_END, "end": seed.ms("2024-03-05T03:30:00")}
    before = client.get("/candles/BTCUSDT", params=params).json()["candles"]
    history.insert_missing(
        seed.klines(mkt, "BTCUSDT", Interval.M15, HISTORY_END, HISTORY_END + DAY)
    )
    after = client.get("/candles/BTCUSDT", params=params).json()["candles"]
    assert len(after) == len(before) == 14
    assert after == [{**c, "provisional": False} for c in before]
    history.delete_all()
    history.insert_missing(seed.klines(mkt, "BTCUSDT", Interval.M15, HISTORY_START, HISTORY_END))
