"""Unit tests of the pagination math and input validation (pure logic)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_core.errors import ValidationError
from cryptobot_core.exchange import ExchangeInfo, normalize_symbol, windows
from cryptobot_core.exchange.rest import BinanceClient
from cryptobot_core.intervals import Interval

FIXED = [i for i in Interval if not i.is_calendar]


@settings(max_examples=200, deadline=None)
@given(
    interval=st.sampled_from(FIXED),
    start=st.integers(0, 2_000_000_000_000),
    span=st.integers(1, 5_000_000_000),
    size=st.integers(1, 1000),
)
def test_windows_cover_the_range_exactly_with_at_most_one_page_each(
    interval: Interval, start: int, span: int, size: int
) -> None:
    end = start + span
    ws = windows(interval, start, end, size)
    assert ws[0][0] == start and ws[-1][1] == end
    for (_, hi), (lo, _) in zip(ws, ws[1:], strict=False):
        assert hi == lo
    opens = [o for lo, hi in ws for o in interval.opens_between(lo, hi)] if span < 10**9 else None
    if opens is not None:
        assert opens == interval.opens_between(start, end)
    for lo, hi in ws[:3]:
        assert len(interval.opens_between(lo, hi)) <= size


def test_symbol_normalisation() -> None:
    assert normalize_symbol(" btcusdt ") == "BTCUSDT"
    with pytest.raises(ValidationError, match="BTC-USDT"):
        normalize_symbol("BTC-USDT")


def test_bad_interval_fails_before_any_request() -> None:
    # Port 9 (discard) is never contacted: validation happens first.
    with (
        BinanceClient("http://127.0.0.1:9") as client,
        pytest.raises(ValidationError, match="allowed: 1s, 1m"),
    ):
        client.klines("BTCUSDT", "7m", 0, 60_000)


@pytest.mark.parametrize(("start", "end"), [(10, 10), (20, 10), (-1, 10)])
def test_bad_range_fails_before_any_request(start: int, end: int) -> None:
    with (
        BinanceClient("http://127.0.0.1:9") as client,
        pytest.raises(ValidationError, match="start_ms|end_ms"),
    ):
        client.klines("BTCUSDT", "1m", start, end)


def test_exchange_info_parsing() -> None:
    info = ExchangeInfo.from_json(
        {
            "timezone": "UTC",
            "serverTime": 1_700_000_000_000,
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": 6000,
                },
                {
                    "rateLimitType": "RAW_REQUESTS",
                    "interval": "MINUTE",
                    "intervalNum": 5,
                    "limit": 300000,
                },
            ],
            "symbols": [
                {
                    "symbol": "BTCUSDT",
                    "status": "TRADING",
                    "baseAsset": "BTC",
                    "quoteAsset": "USDT",
                },
                {"symbol": "OLDUSDT", "status": "BREAK", "baseAsset": "OLD", "quoteAsset": "USDT"},
            ],
        }
    )
    assert info.request_weight is not None
    assert info.request_weight.limit == 6000 and info.request_weight.window_s == 60
    assert info.problem("BTCUSDT") is None
    assert "BREAK" in (info.problem("OLDUSDT") or "")
    assert "unknown" in (info.problem("NOPEUSDT") or "")
