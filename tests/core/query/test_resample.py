"""Resampling and window statistics: the exchange's aggregation rule on stored candles."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_core.intervals import Interval
from cryptobot_core.models import aggregate, dec_str
from cryptobot_core.query.resample import resample, window_stats
from cryptobot_core.query.rows import CandleRow, iso
from cryptobot_core.simulator.config import SimConfig
from cryptobot_core.simulator.market import Market
from cryptobot_core.store import candle_document

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
MARKET = Market(SimConfig(seed=7))


def docs_of(candles: list[Any]) -> list[dict[str, Any]]:
    return [candle_document(c) for c in candles]


@pytest.mark.parametrize("interval", [Interval.M15, Interval.H1, Interval.H4, Interval.D1])
def test_resampling_minutes_gives_the_exchange_candle(interval: Interval) -> None:
    minutes = MARKET.klines(
        "BTCUSDT", Interval.M1, T0, T0 + 86_400_000 - 1, 1000, now_ms=T0 + 2 * 86_400_000
    )
    minutes += MARKET.klines(
        "BTCUSDT",
        Interval.M1,
        T0 + 1000 * 60_000,
        T0 + 86_400_000 - 1,
        1000,
        now_ms=T0 + 2 * 86_400_000,
    )
    assert len(minutes) == 1440
    got = resample(docs_of(minutes), interval, horizon_ms=T0 + 86_400_000)
    expected = MARKET.klines(
        "BTCUSDT", interval, T0, T0 + 86_400_000 - 1, 1000, now_ms=T0 + 2 * 86_400_000
    )
    assert [
        (
            g.open_time,
            g.open,
            g.high,
            g.low,
            g.close,
            g.volume,
            g.quote_volume,
            g.trades,
        )
        for g in got
    ] == [
        (
            iso(e.open_ms),
            dec_str(e.open),
            dec_str(e.high),
            dec_str(e.low),
            dec_str(e.close),
            dec_str(e.volume),
            dec_str(e.quote_volume),
            e.trades,
        )
        for e in expected
    ]
    assert all(g.is_closed for g in got)


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 95), min_size=1))
def test_resampling_with_gaps_aggregates_what_exists(keep: set[int]) -> None:
    quarters = MARKET.klines(
        "ETHUSDT", Interval.M15, T0, T0 + 86_400_000 - 1, 1000, now_ms=T0 + 2 * 86_400_000
    )
    present = [q for i, q in enumerate(quarters) if i in keep]
    got = resample(docs_of(present), Interval.H4, horizon_ms=T0 + 12 * 3_600_000)
    buckets: dict[int, list[Any]] = {}
    for q in present:
        buckets.setdefault(Interval.H4.floor(q.open_ms), []).append(q)
    assert [g.open_time for g in got] == [iso(b) for b in sorted(buckets)]
    for g, b in zip(got, sorted(buckets), strict=True):
        agg = aggregate(buckets[b], Interval.H4)
        assert g.high == dec_str(agg.high) and g.low == dec_str(agg.low)
        assert Decimal(g.volume) == agg.volume and g.trades == agg.trades
        # Complete only when the source is final up to the bucket's end.
        assert g.is_closed == (b + Interval.H4.ms <= T0 + 12 * 3_600_000)


def row(close: str) -> CandleRow:
    """A served candle with the fields window statistics read."""
    return CandleRow(
        open_time=iso(T0),
        close_time=iso(T0 + 899_999),
        open="100",
        high="130",
        low="90",
        close=close,
        volume="1.5",
        quote_volume="150",
        taker_buy_base_volume="0.5",
        taker_buy_quote_volume="50",
        trades=3,
        is_closed=True,
    )


def test_window_stats() -> None:
    rows = [row(close=c) for c in ("110", "121", "108.9")]
    stats = window_stats(rows)
    assert stats.count == 3 and stats.open == "100" and stats.close == "108.9"
    assert stats.return_ == pytest.approx(0.089)
    logs = [math.log(1.1), math.log(0.9)]
    mean = sum(logs) / 2
    assert stats.volatility == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in logs)))
    assert stats.volume == "4.5" and stats.high == "130" and stats.low == "90"
    assert window_stats([]).count == 0
    assert window_stats(rows[:2]).volatility is None  # one return has no spread
