"""`GET /candles/{symbol}?format=csv|parquet`: a whole range as one file, read back with
pandas and compared with the exchange's candles (exact strings in CSV, exact decimals in
Parquet)."""

from __future__ import annotations

import io
from decimal import Decimal

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, dec_str
from cryptobot_core.query import MAX_EXPORT_SLOTS, iso, parse_time
from tests.api import seed
from tests.api.conftest import Filled
from tests.api.test_endpoints import DECIMALS, error_of


def _frame(content: bytes, fmt: str) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(content), dtype=str)
    return pd.read_parquet(io.BytesIO(content))


def _assert_equal(frame: pd.DataFrame, expected: list[Candle], fmt: str) -> None:
    assert len(frame) == len(expected) > 0
    for i, c in enumerate(expected):
        row = frame.iloc[i]
        assert int(pd.Timestamp(row["open_time"]).timestamp() * 1000) == c.open_ms
        assert int(pd.Timestamp(row["close_time"]).timestamp() * 1000) == c.close_ms
        assert int(row["trades"]) == c.trades
        for name in DECIMALS:
            if fmt == "csv":  # the exchange's own text, character for character
                assert row[name] == dec_str(getattr(c, name)), (name, i)
            else:  # a decimal column: the exact value, never a float
                assert isinstance(row[name], Decimal), (name, type(row[name]))
                assert row[name] == getattr(c, name), (name, i)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("interval", "start", "end"),
    [
        # More than one MAX_LIMIT page of 15m, so the file spans pages.
        ("15m", seed.HISTORY_START, seed.HISTORY_END),
        ("4h", seed.HISTORY_START, seed.HISTORY_END),
        ("1m", seed.STREAM_START, seed.STREAM_END),
    ],
)
def test_a_range_file_equals_the_exchange_candles(
    client: TestClient, filled: Filled, fmt: str, interval: str, start: int, end: int
) -> None:
    resp = client.get(
        "/candles/ETHUSDT" if interval != "1m" else "/candles/BTCUSDT",
        params={"interval": interval, "start": iso(start), "end": str(end), "format": fmt},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith(
        "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    )
    assert "attachment" in resp.headers["content-disposition"]
    assert resp.headers["x-window-start"] == iso(start)
    assert resp.headers["x-window-end"] == iso(end)
    symbol = "BTCUSDT" if interval == "1m" else "ETHUSDT"
    expected = seed.klines(filled.market, symbol, Interval(interval), start, end)
    if interval == "1m":  # minutes the stream never received are not in the store
        hole = range(*seed.STREAM_HOLE)
        expected = [c for c in expected if c.open_ms not in hole]
    _assert_equal(_frame(resp.content, fmt), expected, fmt)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_pages_join_without_loss_or_repeat(
    client: TestClient, filled: Filled, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("cryptobot_core.export.MAX_LIMIT", 97)  # 21 pages, one row group each
    resp = client.get(
        "/candles/BTCUSDT",
        params={"start": seed.HISTORY_START, "end": seed.HISTORY_END, "format": fmt},
    )
    assert resp.status_code == 200, resp.text
    expected = seed.klines(
        filled.market, "BTCUSDT", Interval.M15, seed.HISTORY_START, seed.HISTORY_END
    )
    _assert_equal(_frame(resp.content, fmt), expected, fmt)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_without_a_window_it_is_every_stored_candle(
    client: TestClient, filled: Filled, fmt: str
) -> None:
    resp = client.get("/candles/BTCUSDT", params={"format": fmt})
    assert resp.status_code == 200, resp.text
    expected = seed.klines(
        filled.market, "BTCUSDT", Interval.M15, seed.HISTORY_START, seed.HISTORY_END
    )
    _assert_equal(_frame(resp.content, fmt), expected, fmt)


def test_an_oversized_range_is_narrowed_to_end_at_the_newest_candle(client: TestClient) -> None:
    resp = client.get(
        "/candles/BTCUSDT",
        params={"interval": "1m", "start": "0", "end": "2999-01-01", "format": "csv"},
    )
    assert resp.status_code == 200, resp.text
    lo = parse_time(resp.headers["x-window-start"], "start")
    hi = parse_time(resp.headers["x-window-end"], "end")
    assert lo is not None and hi == seed.STREAM_END
    assert hi - lo == MAX_EXPORT_SLOTS * 60_000
    assert len(_frame(resp.content, "csv")) > 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_empty_range_is_a_file_with_no_rows(client: TestClient, fmt: str) -> None:
    resp = client.get(
        "/candles/BTCUSDT",
        params={"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z", "format": fmt},
    )
    assert resp.status_code == 200, resp.text
    frame = _frame(resp.content, fmt)
    assert len(frame) == 0 and "open_time" in frame.columns


def test_bad_input_is_the_json_error(client: TestClient) -> None:
    err = error_of(client.get("/candles/DOGEBTC", params={"format": "csv"}), 404, "unknown_symbol")
    assert "DOGEBTC" in str(err["message"])
    err = error_of(
        client.get("/candles/BTCUSDT", params={"format": "xlsx"}), 422, "invalid_parameter"
    )
    assert "csv" in str(err["message"]) and "parquet" in str(err["message"])
    error_of(
        client.get("/candles/BTCUSDT", params={"format": "csv", "interval": "7m"}),
        422,
        "invalid_parameter",
    )
