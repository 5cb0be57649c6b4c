"""Pure display logic and figure builders (no Streamlit, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard import charts
from dashboard.display import (
    INTERVALS,
    MAX_POINTS,
    base_asset,
    choose_interval,
    freshness,
    human_age,
    points,
    quote_asset,
)
from tests.dashboard.standin import candle


@pytest.mark.parametrize(
    ("requested", "days", "expected"),
    [
        ("15m", 14, "15m"),
        ("15m", 30, "30m"),
        ("15m", 182, "4h"),
        ("1m", 1, "1m"),
        ("1m", 2, "15m"),
        ("1d", 182, "1d"),
        ("1h", 3650, "1w"),
    ],
)
def test_choose_interval_examples(requested: str, days: int, expected: str) -> None:
    assert choose_interval(requested, timedelta(days=days)) == expected


@given(st.sampled_from(list(INTERVALS)), st.integers(min_value=1, max_value=3650))
def test_choose_interval_never_finer_and_readable(requested: str, days: int) -> None:
    span = timedelta(days=days)
    chosen = choose_interval(requested, span)
    names = list(INTERVALS)
    assert names.index(chosen) >= names.index(requested)
    if chosen != "1w":  # the coarsest interval is the floor
        assert points(chosen, span) <= MAX_POINTS
    if chosen != requested:  # the finest readable one, not any coarser one
        finer = names[names.index(chosen) - 1]
        assert points(finer, span) > MAX_POINTS


def test_choose_interval_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="allowed: 1m, 15m"):
        choose_interval("7m", timedelta(days=1))


def test_assets_and_ages() -> None:
    assert (quote_asset("BTCUSDT"), base_asset("BTCUSDT")) == ("USDT", "BTC")
    assert (quote_asset("ETHBTC"), base_asset("ETHBTC")) == ("BTC", "ETH")
    assert quote_asset("XYZ") == "quote"
    assert [human_age(x) for x in (None, 42, 600, 9000, 200_000)] == [
        "—",
        "42 s",
        "10 min",
        "2.5 h",
        "2.3 d",
    ]
    assert freshness("streaming_data_1m", 30) == "fresh"
    assert freshness("streaming_data_1m", 3600) == "stale"
    assert freshness("historical_data_15m", None) == "no data"


def _rows(n: int, step_s: int) -> list[dict[str, object]]:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    return [candle(t0 + timedelta(seconds=step_s * i), step_s) for i in range(n)]


def test_candlestick_figure_has_volume_underneath_and_units() -> None:
    df = charts.candles_frame(_rows(50, 900))
    fig = charts.candlestick_figure(df, "BTCUSDT", "15m")
    assert [t.type for t in fig.data] == ["candlestick", "bar"]
    assert fig.data[0].yaxis == "y" and fig.data[1].yaxis == "y2"
    assert fig.layout.yaxis.title.text == "Price (USDT)"
    assert fig.layout.yaxis2.title.text == "Volume (BTC)"
    assert fig.layout.title.text == "BTCUSDT price and volume (15m candles)"
    assert len(fig.data[0].x) == 50
    assert float(fig.data[0].close[0]) == float(_rows(1, 900)[0]["close"])  # type: ignore[arg-type]


def test_features_are_bucketed_to_the_chart_interval() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "open_time": (t0 + timedelta(minutes=15 * i)).isoformat(),
            "volatility_1h": i / 1000,
            "volatility_24h": None,
        }
        for i in range(96)
    ]
    df = charts.features_frame(rows, charts.PANDAS_RULE["4h"])
    assert len(df) == 6
    # The last 15m reading of each 4 h bucket: rows 15, 31, ...
    assert list(df["volatility_1h"]) == [(16 * k + 15) / 1000 for k in range(6)]
    fig = charts.volatility_figure(df, "BTCUSDT")
    assert fig.layout.yaxis.title.text.startswith("Volatility (%")
    assert fig.data[0].y[0] == pytest.approx(1.5)  # percent


def test_empty_rows_give_empty_frames() -> None:
    assert charts.candles_frame([]).empty
    assert charts.features_frame([]).empty
