"""Historical view: candlesticks with volume, close, volatility and volume over a date range."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

import streamlit as st

from dashboard import charts
from dashboard.api_client import ApiError
from dashboard.common import current_context, no_data_message, show_api_error, stop_with_error
from dashboard.display import INTERVALS, MAX_POINTS, choose_interval

DEFAULT_DAYS = 14
RENDER_TIME_KEY = "_historical_render_s"


def _day(value: str | None) -> date | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).date()


def _extent(entry: dict[str, Any]) -> tuple[date, date]:
    """First and last stored day over the symbol's datasets (15m preferred)."""
    datasets = entry.get("datasets", {})
    info: dict[str, Any] = datasets.get("15m") or next(iter(datasets.values()), {}) or {}
    today = datetime.now(UTC).date()
    first = _day(info.get("first_open_time")) or today - timedelta(days=DEFAULT_DAYS)
    last = _day(info.get("last_open_time")) or today
    return first, last


def render() -> None:
    """Draw the historical page."""
    ctx = current_context()
    st.title("Historical candles")
    try:
        symbols = ctx.client.symbols()
    except ApiError as exc:
        stop_with_error(exc, ctx.client)
    if not symbols:
        st.info(no_data_message(ctx.dagster_url), icon=":material/inbox:")
        return

    by_name = {s["symbol"]: s for s in symbols}
    left, mid, right = st.columns([1, 1, 2])
    symbol = left.selectbox("Symbol", list(by_name), key="hist_symbol")
    requested = mid.selectbox(
        "Interval",
        list(INTERVALS),
        index=1,
        key="hist_interval",
        help="Long ranges switch to a coarser interval automatically.",
    )
    first, last = _extent(by_name[symbol])
    picked = right.date_input(
        "Date range (UTC)",
        value=(max(first, last - timedelta(days=DEFAULT_DAYS - 1)), last),
        min_value=first,
        max_value=max(last, first),
        key="hist_range",
    )
    days = tuple(picked) if isinstance(picked, tuple | list) else (picked,)
    if len(days) != 2:
        st.info("Pick the last day of the range.")
        return
    start = datetime.combine(days[0], dtime(), UTC)
    end = datetime.combine(days[1], dtime(), UTC) + timedelta(days=1)
    span = end - start
    interval = choose_interval(requested, span)
    if interval != requested:
        st.info(
            f"The range spans {span.days} days, so the charts show **{interval}** candles "
            f"instead of {requested} (at most {MAX_POINTS} points per chart). Narrow the range "
            f"to see {requested} candles.",
            icon=":material/zoom_out:",
        )

    try:
        result = ctx.client.candles(symbol, interval, start, end)
    except ApiError as exc:
        stop_with_error(exc, ctx.client)
    features: list[dict[str, Any]] = []
    features_error: ApiError | None = None
    try:
        features = ctx.client.features(symbol, start, end)
    except ApiError as exc:
        features_error = exc
    stats: dict[str, Any] | None = None
    try:
        stats = ctx.client.stats(symbol, interval, start, end)
    except ApiError:
        stats = None  # the charts still tell the story; the figures below are a bonus

    # Everything above waited for the API; from here on is the page's own render time.
    t0 = time.perf_counter()
    rows = result["candles"]
    if not rows:
        st.info(
            no_data_message(
                ctx.dagster_url, f"No {symbol} candles between {days[0]} and {days[1]}"
            ),
            icon=":material/inbox:",
        )
        return
    if result.get("truncated"):
        st.warning("The API sent more pages than expected; the chart shows the first part.")
    df = charts.candles_frame(rows)
    if stats:
        _stats_row(stats, symbol)
    st.plotly_chart(
        charts.candlestick_figure(df, symbol, interval),
        config=charts.PLOT_CONFIG,
        key="hist_candles",
    )
    st.plotly_chart(
        charts.close_figure(df, symbol, interval), config=charts.PLOT_CONFIG, key="hist_close"
    )
    if features:
        # Features are 15m rows; bucket them like the candles so points stay bounded.
        rule = charts.PANDAS_RULE[interval] if interval not in ("1m", "15m") else None
        fdf = charts.features_frame(features, rule)
        st.plotly_chart(
            charts.volatility_figure(fdf, symbol), config=charts.PLOT_CONFIG, key="hist_volatility"
        )
    elif features_error is not None:
        show_api_error(features_error)
    else:
        st.info(
            "No volatility features for this range yet — materialize candle_features_15m "
            f"in Dagster at {ctx.dagster_url}",
            icon=":material/inbox:",
        )
    st.plotly_chart(
        charts.volume_figure(df, symbol, interval), config=charts.PLOT_CONFIG, key="hist_volume"
    )
    elapsed = time.perf_counter() - t0
    st.session_state[RENDER_TIME_KEY] = elapsed
    st.caption(
        f"{len(df)} {interval} candles from {result.get('source_dataset') or 'the API'}; "
        f"rendered in {elapsed:.2f} s."
    )


def _stats_row(stats: dict[str, Any], symbol: str) -> None:
    cols = st.columns(4)

    def num(key: str) -> float | None:
        try:
            return float(stats[key])
        except (KeyError, TypeError, ValueError):
            return None

    ret, vol, high, low = num("return"), num("volatility"), num("high"), num("low")
    cols[0].metric("Return over range", f"{ret * 100:+.2f} %" if ret is not None else "—")
    cols[1].metric("Volatility", f"{vol * 100:.2f} %" if vol is not None else "—")
    cols[2].metric("High", f"{high:,.2f}" if high is not None else "—")
    cols[3].metric("Low", f"{low:,.2f}" if low is not None else "—")


render()
