"""Live view: the last hours of 1m candles, refreshed every few seconds, price and 24 h change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from dashboard import charts
from dashboard.api_client import ApiClient, ApiError
from dashboard.common import current_context, show_api_error, stop_with_error
from dashboard.display import change_24h, exact, percent

# A short refresh instead of holding the SSE stream open: Streamlit reruns are stateless,
# and a 1m candle updates only every ~2 s on the exchange anyway.
REFRESH_S = 5.0


def render() -> None:
    """Draw the live page."""
    ctx = current_context()
    st.title("Live 1m candles")
    try:
        symbols = ctx.client.symbols()
    except ApiError as exc:
        stop_with_error(exc, ctx.client)
    live = [s.symbol for s in symbols if "1m" in s.datasets]
    if not live:
        st.info(
            f"No live 1m data yet — start the stream (or backfill) in Dagster at {ctx.dagster_url}",
            icon=":material/inbox:",
        )
        return
    left, right = st.columns([1, 2])
    symbol = left.selectbox("Symbol", live, key="live_symbol")
    hours = right.slider("Hours shown", min_value=1, max_value=24, value=3, key="live_hours")
    _panel(ctx.client, symbol, hours)


@st.fragment(run_every=REFRESH_S)
def _panel(client: ApiClient, symbol: str, hours: int) -> None:
    now = datetime.now(UTC)
    try:
        latest = client.latest(symbol, "1m")
        series = client.live_candles(symbol, now - timedelta(hours=hours))
        day = client.stats(symbol, "1m", now - timedelta(hours=24), None)
    except ApiError as exc:
        # Inside the fragment: the next tick retries by itself.
        show_api_error(exc)
        return
    candles = series.candles
    price = latest.close if latest else (candles[-1].close if candles else None)
    change = change_24h(price, day)
    cols = st.columns(3)
    cols[0].metric(
        f"{symbol} price",
        exact(price),
        f"{percent(change, signed=True)} (24 h)" if change is not None else None,
    )
    cols[1].metric("24 h high", exact(day.high))
    cols[2].metric("24 h low", exact(day.low))
    if not candles:
        st.info(
            f"No 1m candles in the last {hours} h; the stream may be stopped.",
            icon=":material/inbox:",
        )
        return
    st.plotly_chart(
        charts.candlestick_figure(
            charts.CandleColumns.of(candles),
            symbol,
            "1m",
            title=f"{symbol} live (1m candles, last {hours} h)",
        ),
        config=charts.PLOT_CONFIG,
        key="live_candles",
    )
    st.caption(f"Updated {now:%H:%M:%S} UTC; refreshes every {REFRESH_S:.0f} s.")


render()
