"""Pure display logic, typed rows, settings and figure builders (no Streamlit, no network)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import plotly.io as pio
import plotly.tools
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dashboard import charts
from dashboard.config import ConfigError, DashboardConfig
from dashboard.display import (
    INTERVALS,
    MAX_POINTS,
    HistoricalView,
    base_asset,
    bucket_open_ms,
    change_24h,
    choose_interval,
    exact,
    freshness,
    human_age,
    last_per_bucket,
    offered_intervals,
    percent,
    points,
    quote_asset,
    view_from_query,
)
from dashboard.models import Candle, FeatureSeries, Ready, Stats
from tests.dashboard.standin import candle


@pytest.mark.parametrize(
    ("requested", "days", "expected"),
    [
        ("15m", 7, "15m"),
        ("15m", 14, "30m"),
        ("15m", 182, "6h"),
        ("15m", 365, "12h"),
        ("1m", 0.5, "1m"),
        ("1m", 1, "15m"),
        ("1d", 182, "1d"),
        ("1h", 3650, "1w"),
    ],
)
def test_choose_interval_examples(requested: str, days: float, expected: str) -> None:
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


def test_assets_ages_and_numbers() -> None:
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
    # Every digit the exchange sent, none invented: no rounding to two places.
    assert exact(Decimal("60123.45000000")) == "60,123.45"
    assert exact(Decimal("0.00001234")) == "0.00001234"
    assert exact(Decimal("31000.00000000")) == "31,000"
    assert exact(Decimal("0E-8")) == "0"
    assert exact(None) == "—"
    assert (percent(0.0123, signed=True), percent(0.02), percent(None)) == (
        "+1.23 %",
        "2.00 %",
        "—",
    )


def _stats(open_: str | None, ret: float | None) -> Stats:
    return Stats.from_json({"count": 3, "open": open_, "close": None, "return": ret})


def test_change_24h_uses_the_exact_open_then_the_return() -> None:
    assert change_24h(Decimal("110"), _stats("100.00", 0.5)) == pytest.approx(0.1)
    assert change_24h(None, _stats("100.00", 0.5)) == 0.5
    assert change_24h(Decimal("110"), _stats(None, None)) is None


# ------------------------------------------------------------------ links to a view

EXTENTS = {
    "BTCUSDT": (date(2025, 1, 1), date(2026, 6, 30)),
    "ETHUSDT": (date(2026, 3, 1), date(2026, 6, 1)),
}


def test_a_link_opens_the_view_it_names() -> None:
    view, problems = view_from_query(
        {"symbol": "ethusdt", "interval": "1h", "start": "2026-04-01", "end": "2026-04-30"},
        EXTENTS,
    )
    assert view == HistoricalView("ETHUSDT", "1h", date(2026, 4, 1), date(2026, 4, 30))
    assert problems == []
    assert view_from_query(view.query(), EXTENTS) == (view, [])


def test_no_link_opens_the_last_week_of_the_first_symbol() -> None:
    assert view_from_query({}, EXTENTS) == (
        HistoricalView("BTCUSDT", "15m", date(2026, 6, 24), date(2026, 6, 30)),
        [],
    )


def test_a_wrong_link_says_what_was_wrong_and_what_is_allowed() -> None:
    view, problems = view_from_query(
        {"symbol": "DOGEBTC", "interval": "7m", "start": "yesterday", "end": "2026-06-30"},
        EXTENTS,
    )
    assert view == HistoricalView("BTCUSDT", "15m", date(2026, 6, 24), date(2026, 6, 30))
    assert problems == [
        "symbol='DOGEBTC' has no data; symbols with data: BTCUSDT, ETHUSDT.",
        "interval='7m' is not one of 1m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w.",
        "start='yesterday' is not a date; use YYYY-MM-DD (UTC).",
    ]
    view, problems = view_from_query(
        {"symbol": "ETHUSDT", "start": "2026-01-01", "end": "2026-12-31"}, EXTENTS
    )
    assert (view.first_day, view.last_day) == (date(2026, 3, 1), date(2026, 6, 1))
    assert problems == ["ETHUSDT has data from 2026-03-01 to 2026-06-01; the range was cut to fit."]
    _, problems = view_from_query({"start": "2026-05-02", "end": "2026-05-01"}, EXTENTS)
    assert problems == ["start=2026-05-02 is after end=2026-05-01; showing the default range."]


# ------------------------------------------------------------------ bucketing


def _ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp() * 1000)


def test_buckets_open_like_the_exchange_s_candles() -> None:
    t = np.array([_ms(2026, 1, 7, 13, 45)], dtype=np.int64)  # a Wednesday
    assert bucket_open_ms(t, "4h")[0] == _ms(2026, 1, 7, 12)
    assert bucket_open_ms(t, "1d")[0] == _ms(2026, 1, 7)
    assert bucket_open_ms(t, "1w")[0] == _ms(2026, 1, 5)  # Monday 00:00 UTC


def test_last_per_bucket_keeps_the_last_known_reading() -> None:
    t0 = _ms(2026, 1, 1)
    times = np.array([t0 + 900_000 * i for i in range(32)], dtype=np.int64)  # 8 h of 15m
    values = np.arange(32, dtype=np.float64)
    values[31] = np.nan  # the last reading of the second bucket is unknown
    buckets, kept = last_per_bucket(times, values, "4h")
    assert list(buckets) == [t0, t0 + 4 * 3_600_000]
    assert list(kept) == [15.0, 30.0]
    empty = last_per_bucket(times, np.full(32, np.nan), "4h")
    assert len(empty[0]) == len(empty[1]) == 0


# ------------------------------------------------------------------ settings


def test_config_defaults_and_values() -> None:
    assert DashboardConfig.from_env({}) == DashboardConfig(
        "http://127.0.0.1:8000", "http://127.0.0.1:3000"
    )
    config = DashboardConfig.from_env(
        {"CRYPTOBOT_API_URL": "https://api.example:8443/", "CRYPTOBOT_DAGSTER_URL": " "}
    )
    assert config == DashboardConfig("https://api.example:8443", "http://127.0.0.1:3000")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("127.0.0.1:8000", "must start with http:// or https://"),
        ("http://", "has no host"),
        ("http://host:99999", "Port out of range"),
        ("http://host/?x=1", "must not have a query"),
    ],
)
def test_config_errors_are_one_line_with_what_is_allowed(value: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        DashboardConfig.from_env({"CRYPTOBOT_API_URL": value})
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"CRYPTOBOT_API_URL={value!r} is not a usable URL")
    assert why in message and "use e.g. http://127.0.0.1:8000" in message


# ------------------------------------------------------------------ typed rows


def test_candles_keep_the_exchange_s_decimals() -> None:
    row = candle(datetime(2026, 1, 1, tzinfo=UTC), 900) | {"close": "60123.45678901"}
    parsed = Candle.from_json(row)
    assert parsed.close == Decimal("60123.45678901")
    assert parsed.open_time == datetime(2026, 1, 1, tzinfo=UTC)
    assert parsed.trades == 42 and parsed.is_closed is True


@pytest.mark.parametrize(
    "change",
    [{"close": 60123.45}, {"close": "abc"}, {"close": "NaN"}, {"open_time": "2026-01-01T00:00:00"}],
)
def test_a_candle_of_the_wrong_shape_is_refused(change: dict[str, Any]) -> None:
    row = candle(datetime(2026, 1, 1, tzinfo=UTC), 900) | change
    with pytest.raises((TypeError, ValueError)):
        Candle.from_json(row)


def test_features_become_read_only_columns() -> None:
    rows = [
        {
            "open_time": "2026-01-01T00:15:00.000Z",
            "close": "1",
            "log_return": None,
            "volatility_1h": 0.25,
            "volatility_24h": 1,
            "vwap": 2.0,
            "hl_range": 0.1,
            "volume_zscore": -1.5,
        }
    ]
    features = FeatureSeries.from_rows(rows)
    assert list(features.open_time_ms) == [_ms(2026, 1, 1, 0, 15)]
    assert np.isnan(features.columns["log_return"][0])
    assert features.columns["volatility_1h"][0] == 0.25
    assert not features.columns["vwap"].flags.writeable
    with pytest.raises(TypeError, match="volatility_1h"):
        FeatureSeries.from_rows([rows[0] | {"volatility_1h": "0.25"}])


def test_ready_reads_every_part() -> None:
    ready = Ready.from_json(
        {
            "status": "ready",
            "store": {"reachable": True},
            "exchange": {"source": "sim", "simulated": True, "rest_url": "http://x"},
            "datasets": {
                "historical_data_15m": {
                    "newest_open_time": "2026-01-01T00:00:00.000Z",
                    "age_seconds": 60.0,
                    "symbols": 2,
                }
            },
            "stream": {
                "producer": {"updated_at": "2026-01-01T00:00:00.000Z", "age_seconds": 3},
                "consumer": None,
            },
        }
    )
    assert ready.exchange.simulated and ready.store_reachable
    assert ready.datasets["historical_data_15m"].symbols == 2
    assert ready.stream["producer"] is not None and ready.stream["producer"].age_seconds == 3
    assert ready.stream["consumer"] is None


# ------------------------------------------------------------------ figures


def _columns(n: int, step_s: int) -> charts.CandleColumns:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [candle(t0 + timedelta(seconds=step_s * i), step_s) for i in range(n)]
    return charts.CandleColumns.of([Candle.from_json(r) for r in rows])


def _browser_json(figure: charts.Figure) -> dict[str, Any]:
    """What st.plotly_chart sends to the browser for a figure."""
    fig = plotly.tools.return_figure_from_figure_or_data(figure, True)
    return dict(json.loads(pio.to_json(fig, validate=False)))


def test_candlestick_figure_has_volume_underneath_and_units() -> None:
    cols = _columns(50, 900)
    fig = charts.candlestick_figure(cols, "BTCUSDT", "15m")
    assert [t["type"] for t in fig["data"]] == ["candlestick", "scatter", "scatter"]
    assert [t.get("yaxis") for t in fig["data"]] == ["y", "y2", "y2"]
    layout = fig["layout"]
    assert layout["yaxis"]["title"]["text"] == "Price (USDT)"
    assert layout["yaxis2"]["title"]["text"] == "Volume (BTC)"
    assert layout["title"]["text"] == "BTCUSDT price and volume (15m candles)"
    candles, rising, falling = fig["data"]
    assert len(candles["x"]) == 50
    first = candle(datetime(2026, 1, 1, tzinfo=UTC), 900)
    assert candles["close"][0] == float(first["close"])
    assert candles["x"][0] == datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000
    # Each candle's volume is drawn once, in the colour of its candle.
    up = cols.close >= cols.open
    assert list(rising["y"] + falling["y"]) == list(cols.volume)
    assert list(rising["y"][~up]) == [0.0] * int((~up).sum())


def test_figures_reach_the_browser_as_numbers_not_strings() -> None:
    cols = _columns(400, 14400)
    sent = _browser_json(charts.candlestick_figure(cols, "BTCUSDT", "4h"))
    x = sent["data"][0]["x"]
    # A typed array (base64 of float64), not 400 date strings.
    assert x["dtype"] == "f8" and isinstance(x["bdata"], str)
    assert sent["layout"]["xaxis"]["type"] == "date"


def test_volatility_is_bucketed_to_the_chart_interval_in_percent() -> None:
    t0 = _ms(2026, 1, 1)
    rows = [
        {
            "open_time": datetime.fromtimestamp((t0 + 900_000 * i) / 1000, UTC).isoformat(),
            "close": "1",
            "log_return": 0.0,
            "volatility_1h": i / 1000,
            "volatility_24h": None,
            "vwap": 1.0,
            "hl_range": 0.0,
            "volume_zscore": 0.0,
        }
        for i in range(96)
    ]
    features = FeatureSeries.from_rows(rows)
    fig = charts.candlestick_figure(_columns(6, 14400), "BTCUSDT", "4h", features=features)
    # A third panel under price and volume, on the same time axis.
    assert [t.get("yaxis") for t in fig["data"]] == ["y", "y2", "y2", "y3", "y3"]
    assert fig["layout"]["xaxis"]["anchor"] == "y3"
    assert fig["layout"]["title"]["text"] == "BTCUSDT price, volume and volatility (4h candles)"
    one_hour, one_day = fig["data"][3:]
    assert len(one_hour["x"]) == 6
    # The last 15m reading of each 4 h bucket, rows 15, 31, ..., in percent.
    assert list(one_hour["y"]) == pytest.approx([(16 * k + 15) / 10 for k in range(6)])
    assert len(one_day["x"]) == 0  # no reading at all: nothing drawn, nothing invented
    assert fig["layout"]["yaxis3"]["title"]["text"] == "Volatility (%)"
    at_15m = charts.candlestick_figure(_columns(96, 900), "BTCUSDT", "15m", features=features)
    assert len(at_15m["data"][3]["x"]) == 96


def test_empty_candles_give_empty_columns() -> None:
    assert len(charts.CandleColumns.of([])) == 0


def test_the_charts_offer_intervals_the_api_serves_from_history() -> None:
    from cryptobot_core.intervals import Interval
    from cryptobot_core.query.params import served_intervals, source_for

    cases = {
        ("15m",): (Interval.M15,),
        ("15m", "1h"): (Interval.M15, Interval.H1),
        ("15m", "historical_data_1m"): (Interval.M1, Interval.M15),
        ("1s", "15m"): (Interval.S1, Interval.M15),
    }
    for datasets, kept in cases.items():
        offered = offered_intervals(["1m", *datasets])
        served = served_intervals(kept)
        # Beyond 1m (the live tail), an interval the stream alone feeds would leave old
        # ranges empty; every fixed-length interval history feeds is offered.
        from_history = {
            i.value for i in served if not i.is_calendar and source_for(i, kept).is_history
        }
        assert set(offered) == from_history | {"1m"}, datasets
        assert all(offered[n].total_seconds() * 1000 == Interval(n).ms for n in offered)
    assert offered_intervals(["1m", "15m"]) == INTERVALS
    assert "3m" in offered_intervals(["historical_data_1m"]) and "3m" not in INTERVALS
