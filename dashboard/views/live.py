"""Live view: the last hours of 1m candles, refreshed every few seconds, price and 24 h change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from dashboard import charts
from dashboard.api_client import ApiError
from dashboard.common import current_context, show_api_error, stop_with_error

# A short refresh instead of holding the SSE stream open: Streamlit reruns are stateless,
# and a 1m candle updates only every ~2 s on the exchange anyway.
REFRESH_S = 5.0


def _f(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def render() -> None:
    """Draw the live page."""
    ctx = current_context()
    st.title("Live 1m candles")
    try:
        symbols = ctx.client.symbols()
    except ApiError as exc:
        stop_with_error(exc, ctx.client)
    live = [s["symbol"] for s in symbols if s.get("datasets", {}).get("1m")]
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
def _panel(client: Any, symbol: str, hours: int) -> None:
    now = datetime.now(UTC)
    try:
        latest = client.latest(symbol, "1m")
        result = client.live_candles(symbol, now - timedelta(hours=hours))
        day = client.stats(symbol, "1m", now - timedelta(hours=24), None)
    except ApiError as exc:
        # Inside the fragment: the next tick retries by itself.
        show_api_error(exc)
        return
    rows = result["candles"]
    price = _f(latest.get("close")) if latest else None
    if price is None and rows:
        price = _f(rows[-1].get("close"))
    open_24h = _f(day.get("open"))
    change = (price / open_24h - 1) if price is not None and open_24h else _f(day.get("return"))
    cols = st.columns(3)
    cols[0].metric(
        f"{symbol} price",
        f"{price:,.2f}" if price is not None else "—",
        f"{change * 100:+.2f} % (24 h)" if change is not None else None,
    )
    cols[1].metric("24 h high", f"{_f(day.get('high')) or 0:,.2f}" if day.get("high") else "—")
    cols[2].metric("24 h low", f"{_f(day.get('low')) or 0:,.2f}" if day.get("low") else "—")
    if not rows:
        st.info(
            f"No 1m candles in the last {hours} h; the stream may be stopped.",
            icon=":material/inbox:",
        )
        return
    df = charts.candles_frame(rows)
    st.plotly_chart(
        charts.candlestick_figure(
            df, symbol, "1m", title=f"{symbol} live (1m candles, last {hours} h)"
        ),
        config=charts.PLOT_CONFIG,
        key="live_candles",
    )
    st.caption(f"Updated {now:%H:%M:%S} UTC; refreshes every {REFRESH_S:.0f} s.")


render()
