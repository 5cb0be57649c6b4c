"""The one candle type: validation, exchange payload round trips, times, and aggregation."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import (
    DECIMAL_FIELDS,
    VOLUME_FIELDS,
    Candle,
    CandleAccumulator,
    Source,
    aggregate,
    dec_str,
    dt_to_ms,
    ms_to_dt,
)
from cryptobot_core.store.codec import parts_add, parts_greater, parts_text, stored_parts

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
V = TypeVar("V")
prices = st.decimals(min_value=0, max_value=10**7, places=8, allow_nan=False)


def candle(open_ms: int = T0, **overrides: object) -> Candle:
    """A valid closed 1m candle; ``overrides`` replace fields before validation."""
    fields: dict[str, object] = {
        "symbol": "BTCUSDT",
        "interval": Interval.M1,
        "open_time": ms_to_dt(open_ms),
        "close_time": ms_to_dt(open_ms + 59_999),
        "open": "100.00000000",
        "high": "101.50000000",
        "low": "99.25000000",
        "close": "100.75000000",
        "volume": "12.34000000",
        "quote_volume": "1234.00000000",
        "taker_buy_base_volume": "6.00000000",
        "taker_buy_quote_volume": "600.00000000",
        "trades": 7,
    }
    fields.update(overrides)
    return Candle(**fields)  # type: ignore[arg-type]


@st.composite
def minutes(draw: st.DrawFn) -> list[Candle]:
    """Consecutive 1m candles of one 15-minute window, with any prices and volumes."""
    count = draw(st.integers(1, 15))
    out = []
    for i in range(count):
        low, high, o, c = sorted(draw(st.lists(prices, min_size=4, max_size=4)))
        volumes = draw(st.lists(prices, min_size=4, max_size=4))
        out.append(
            candle(
                T0 + i * 60_000,
                open=o,
                high=high,
                low=low,
                close=c,
                **dict(zip(VOLUME_FIELDS, volumes, strict=True)),
                trades=draw(st.integers(0, 10**6)),
                is_closed=draw(st.booleans()),
                source=Source.WS,
                event_time=ms_to_dt(T0 + i * 60_000 + 59_999),
            )
        )
    return out


def test_valid_candle_keeps_exact_decimals_and_utc_times() -> None:
    naive = datetime(2024, 1, 1)
    c = candle(open_time=naive, close_time=naive + timedelta(seconds=59, milliseconds=999))
    assert c.open_time.tzinfo is UTC and c.open_ms == T0 and c.close_ms == T0 + 59_999
    assert c.close == Decimal("100.75000000") and str(c.close) == "100.75000000"
    assert c.interval is Interval.M1 and c.source is Source.REST


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"symbol": "btcusdt"}, "symbol must be upper-case"),
        ({"symbol": "BTC-USDT"}, "symbol must be upper-case"),
        ({"close": 100.5}, "close must be a decimal string, not a float"),
        ({"volume": "lots"}, "volume must be a decimal string"),
        ({"high": "Infinity"}, "high must be finite"),
        ({"trades": -1}, "trades must be a non-negative integer"),
        ({"trades": True}, "trades must be a non-negative integer"),
        ({"interval": "7m"}, "invalid interval '7m'; allowed: 1s, 1m"),
        ({"close_time": ms_to_dt(T0)}, "close_time must be after open_time"),
    ],
)
def test_invalid_fields_are_refused_with_what_is_allowed(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        candle(**overrides)


def test_other_timezones_become_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    c = candle(
        open_time=datetime(2024, 1, 1, 2, tzinfo=plus2),
        close_time=datetime(2024, 1, 1, 2, 0, 59, 999000, tzinfo=plus2),
    )
    assert c.open_time == ms_to_dt(T0) and c.open_time.tzinfo is UTC


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 32_503_680_000_000))
def test_epoch_ms_round_trips_exactly(ms: int) -> None:
    assert dt_to_ms(ms_to_dt(ms)) == ms
    assert ms_to_dt(ms).tzinfo is UTC


@settings(max_examples=200, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_dec_str_is_plain_notation_of_the_same_value(value: Decimal) -> None:
    text = dec_str(value)
    assert "E" not in text.upper() and Decimal(text) == value


@settings(max_examples=100, deadline=None)
@given(minutes(), st.integers(0, 2_000_000_000_000))
def test_rest_row_and_ws_event_round_trip(window: list[Candle], now_ms: int) -> None:
    for c in window:
        row = Candle.from_rest_row(c.symbol, c.interval, c.to_rest_row())
        assert row == replace(c, source=Source.REST, event_time=None, is_closed=True)
        assert [dec_str(getattr(row, name)) for name in DECIMAL_FIELDS] == [
            dec_str(getattr(c, name)) for name in DECIMAL_FIELDS
        ]
        assert Candle.from_ws_event(c.to_ws_event()) == c
        # Against a clock, a row is closed exactly when its close time is in the past.
        judged = Candle.from_rest_row(c.symbol, c.interval, c.to_rest_row(), now_ms=now_ms)
        assert judged.is_closed == (c.close_ms < now_ms)


def test_ws_events_that_are_not_klines_are_refused() -> None:
    event = candle().to_ws_event()
    with pytest.raises(ValidationError, match="not a kline event"):
        Candle.from_ws_event({**event, "e": "trade"})
    with pytest.raises(ValidationError, match="malformed kline event"):
        Candle.from_ws_event({**event, "k": {"s": "BTCUSDT"}})


@settings(max_examples=150, deadline=None)
@given(minutes())
def test_aggregate_follows_the_exchange_rule(window: list[Candle]) -> None:
    got = aggregate(window, Interval.M15)
    assert (got.open_ms, got.close_ms) == (T0, T0 + 900_000 - 1)
    assert got.open == window[0].open and got.close == window[-1].close
    assert got.high == max(c.high for c in window) and got.low == min(c.low for c in window)
    for name in VOLUME_FIELDS:
        assert getattr(got, name) == sum((getattr(c, name) for c in window), Decimal(0))
    assert got.trades == sum(c.trades for c in window)
    assert got.is_closed == all(c.is_closed for c in window)
    assert got.event_time == window[-1].event_time and got.source is Source.WS


def feed(
    window: list[Candle],
    add: Callable[[V, V], V],
    greater: Callable[[V, V], bool],
    value: Callable[[Decimal], V],
) -> CandleAccumulator[Decimal, V]:
    """The accumulator over ``window`` with prices and volumes as ``value`` makes them."""
    first = window[0]
    acc = CandleAccumulator(
        add,
        greater,
        first.open,
        value(first.high),
        value(first.low),
        first.close,
        [value(getattr(first, n)) for n in VOLUME_FIELDS],
        first.trades,
        first.is_closed,
    )
    for c in window[1:]:
        volumes = [value(getattr(c, n)) for n in VOLUME_FIELDS]
        acc.push(value(c.high), value(c.low), c.close, volumes, c.trades, c.is_closed)
    return acc


@settings(max_examples=150, deadline=None)
@given(minutes())
def test_one_rule_gives_the_same_candle_on_decimals_and_on_exact_parts(
    window: list[Candle],
) -> None:
    """The accumulator on the store's (coefficient, exponent) parts equals it on Decimals."""
    exact = feed(window, operator.add, operator.gt, lambda d: d)
    parts = feed(window, parts_add, parts_greater, stored_parts)
    assert parts_text(parts.high) == dec_str(exact.high)
    assert parts_text(parts.low) == dec_str(exact.low)
    assert [Decimal(parts_text(v)) for v in parts.volumes] == exact.volumes
    assert (parts.open, parts.close, parts.trades, parts.closed) == (
        exact.open,
        exact.close,
        exact.trades,
        exact.closed,
    )


def test_aggregating_nothing_is_an_error() -> None:
    with pytest.raises(ValidationError, match="cannot aggregate zero candles"):
        aggregate([], Interval.M15)
