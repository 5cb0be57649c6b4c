"""The API over more history intervals (CRYPTOBOT_HISTORY_INTERVALS=1m,15m,1h): each served
as stored, the others resampled from the coarsest that divides them, and listed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pymongo import MongoClient

from cryptobot_api.main import create_app
from cryptobot_core.intervals import Interval
from cryptobot_core.store import CandleStore, history_collection
from tests.api import seed
from tests.api.conftest import make_settings
from tests.api.test_endpoints import as_json

START = seed.ms("2024-03-04T00:00:00")
END = seed.ms("2024-03-07T00:00:00")  # three finished days
KEPT = (Interval.M1, Interval.M15, Interval.H1)


@pytest.fixture(scope="module")
def kept(mongo_uri: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three days of BTCUSDT history at 1m, 15m and 1h, as the klines assets store it."""
    settings = make_settings(
        mongo_uri,
        f"kept_{uuid.uuid4().hex[:10]}",
        tmp_path_factory.mktemp("k"),
        history_intervals="1m,15m,1h",
    )
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    db = client[settings.database]
    mkt = seed.market()
    for interval in KEPT:
        store = CandleStore(db, history_collection(interval))
        store.ensure_indexes()
        store.insert_missing(seed.klines(mkt, "BTCUSDT", interval, START, END))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield {"client": test_client, "market": mkt}
    client.drop_database(settings.database)
    client.close()


@pytest.mark.parametrize(
    ("interval", "source"),
    [
        ("1h", "historical_data_1h"),  # as stored
        ("1m", "historical_data_1m"),  # as stored, not the (empty) stream
        ("4h", "historical_data_1h"),  # the coarsest kept interval that divides it
        ("1d", "historical_data_1h"),
        ("30m", "historical_data_15m"),
        ("5m", "historical_data_1m"),
    ],
)
def test_each_interval_comes_from_the_coarsest_kept_one_and_equals_the_exchange(
    kept: dict[str, Any], interval: str, source: str
) -> None:
    resp = kept["client"].get(
        "/candles/BTCUSDT",
        params={"interval": interval, "start": START, "end": END, "limit": 5000},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["source_dataset"] == source
    want = seed.klines(kept["market"], "BTCUSDT", Interval(interval), START, END)
    assert len(body["candles"]) == len(want) > 0
    assert body["candles"] == [as_json(c) for c in want]


def test_latest_gaps_and_symbols_know_the_kept_intervals(kept: dict[str, Any]) -> None:
    client = kept["client"]
    latest = client.get("/candles/BTCUSDT/latest", params={"interval": "1h"})
    assert latest.status_code == 200, latest.text
    assert latest.json()["candle"]["open_time"] == seed.iso(END - Interval.H1.ms)
    refused = client.get("/candles/BTCUSDT/latest", params={"interval": "4h"})
    assert refused.status_code == 422
    assert "allowed: 1m, 15m, 1h" in refused.text
    gaps = client.get("/gaps/BTCUSDT", params={"dataset": "1h", "start": START, "end": END})
    assert gaps.status_code == 200, gaps.text
    assert gaps.json()["gaps"] == []
    symbols = client.get("/symbols").json()
    btc = next(s for s in symbols["symbols"] if s["symbol"] == "BTCUSDT")
    assert btc["datasets"]["1h"]["count"] == 72
    assert btc["datasets"]["historical_data_1m"]["count"] == 3 * 1440


def test_the_schema_lists_what_this_deployment_serves(kept: dict[str, Any]) -> None:
    schema = kept["client"].get("/openapi.json").json()

    def enum(path: str, name: str) -> list[str]:
        params = schema["paths"][path]["get"]["parameters"]
        return next(p["schema"]["enum"] for p in params if p["name"] == name)

    assert enum("/candles/{symbol}", "interval") == [i.value for i in Interval if i.value != "1s"]
    assert enum("/candles/{symbol}/latest", "interval") == ["1m", "15m", "1h"]
    assert enum("/gaps/{symbol}", "dataset") == ["1m", "historical_data_1m", "15m", "1h"]
