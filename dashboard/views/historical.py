"""Historical view: candlesticks with volume, close, volatility and volume over a date range."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import TYPE_CHECKING

import streamlit as st

from dashboard import charts
from dashboard.api_client import ApiError
from dashboard.common import current_context, no_data_message, show_api_error, stop_with_error
from dashboard.display import (
    DEFAULT_DAYS,
    MAX_POINTS,
    HistoricalView,
    choose_interval,
    exact,
    offered_intervals,
    percent,
    view_from_query,
)
from dashboard.models import FeatureSeries, Stats, SymbolSummary

if TYPE_CHECKING:
    from collections.abc import Mapping

RENDER_TIME_KEY = "_historical_render_s"
CHARTS_SHOWN_KEY = "_historical_charts_shown"


def _extent(summary: SymbolSummary) -> tuple[date, date]:
    """First and last stored UTC day of a symbol: from its first history day (or stream
    minute) to the newest of both, since charts go on from the live stream past history."""
    infos = [summary.datasets[k] for k in ("15m", "1m") if k in summary.datasets]
    if not infos:
        today = datetime.now(UTC).date()
        return today - timedelta(days=DEFAULT_DAYS - 1), today
    first = infos[0].first_open_time.date()
    return first, max(i.last_open_time.date() for i in infos)


def _seed_view(extents: dict[str, tuple[date, date]]) -> None:
    """Open the view the URL names (or the default) when the pickers have no state yet."""
    if "hist_range" in st.session_state:
        return
    view, problems = view_from_query(st.query_params.to_dict(), extents)
    st.session_state["hist_symbol"] = view.symbol
    st.session_state["hist_interval"] = view.interval
    st.session_state["hist_range"] = (view.first_day, view.last_day)
    if problems:
        st.warning(
            "The link asked for something else: " + " ".join(problems), icon=":material/link:"
        )


def _fit_range(first: date, last: date) -> None:
    """Keep the picked days inside the symbol's stored days (a symbol switch can leave them out)."""
    picked = tuple(st.session_state.get("hist_range") or ())
    fitted = tuple(min(max(d, first), last) for d in picked)
    if fitted != picked:
        st.session_state["hist_range"] = fitted


def _pick_view(
    extents: dict[str, tuple[date, date]], offered: Mapping[str, timedelta]
) -> HistoricalView | None:
    """The pickers; None while the user has picked only the first day of the range."""
    _seed_view(extents)
    left, mid, right = st.columns([1, 1, 2])
    symbol = left.selectbox("Symbol", list(extents), key="hist_symbol")
    if st.session_state.get("hist_interval") not in offered:
        st.session_state["hist_interval"] = "15m"
    requested = mid.selectbox(
        "Interval",
        list(offered),
        key="hist_interval",
        help="Long ranges switch to a coarser interval automatically.",
    )
    first, last = extents[symbol]
    _fit_range(first, last)
    picked = right.date_input("Date range (UTC)", min_value=first, max_value=last, key="hist_range")
    days = tuple(picked) if isinstance(picked, tuple | list) else (picked,)
    if len(days) != 2:
        return None
    view = HistoricalView(symbol, requested, days[0], days[1])
    # The address bar always names the view, so a link reopens it.
    st.query_params.from_dict(view.query())
    return view


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

    # What is stored decides the intervals offered (3m and 5m need 1m history, 1s its own).
    offered = offered_intervals(name for s in symbols for name in s.datasets)
    view = _pick_view({s.symbol: _extent(s) for s in symbols}, offered)
    if view is None:
        st.info("Pick the last day of the range.")
        return
    symbol, requested = view.symbol, view.interval
    start = datetime.combine(view.first_day, dtime(), UTC)
    end = datetime.combine(view.last_day, dtime(), UTC) + timedelta(days=1)
    span = end - start
    interval = choose_interval(requested, span, offered=offered)
    if interval != requested:
        st.info(
            f"The range spans {span.days} days, so the charts show **{interval}** candles "
            f"instead of {requested} (at most {MAX_POINTS} points per chart). Narrow the range "
            f"to see {requested} candles.",
            icon=":material/zoom_out:",
        )

    stats_box = st.container()
    first_chart = st.empty()
    if not st.session_state.get(CHARTS_SHOWN_KEY):
        # The browser fetches and compiles Plotly's code (a 4.7 MB script) only when a chart
        # first appears on the page: an empty chart now has that done while the API reads
        # run, instead of after them (~0.6 s on a 2-core machine).
        first_chart.plotly_chart(
            charts.loading_figure(f"Loading {symbol} {interval} candles…", 760),
            config=charts.PLOT_CONFIG,
        )
    try:
        series = ctx.client.candles(symbol, interval, start, end)
    except ApiError as exc:
        first_chart.empty()
        stop_with_error(exc, ctx.client)
    features: FeatureSeries | None = None
    features_error: ApiError | None = None
    try:
        features = ctx.client.features(symbol, start, end)
    except ApiError as exc:
        features_error = exc
    stats: Stats | None = None
    try:
        stats = ctx.client.stats(symbol, interval, start, end)
    except ApiError:
        stats = None  # the charts still tell the story; the figures below are a bonus

    # Everything above waited for the API; from here on is the page's own render time.
    t0 = time.perf_counter()
    if not series.candles:
        first_chart.empty()
        st.info(
            no_data_message(
                ctx.dagster_url,
                f"No {symbol} candles between {view.first_day} and {view.last_day}",
            ),
            icon=":material/inbox:",
        )
        return
    if series.truncated:
        st.warning("The API sent more pages than expected; the chart shows the first part.")
    cols = charts.CandleColumns.of(series.candles)
    if stats:
        with stats_box:
            _stats_row(stats)
    if features is not None and not len(features):
        features = None
    if features_error is not None:
        show_api_error(features_error)
    elif features is None:
        st.info(
            "No volatility features for this range yet — materialize candle_features_15m "
            f"in Dagster at {ctx.dagster_url}",
            icon=":material/inbox:",
        )
    # One figure with price, volume and volatility panels on one time axis: zooming one
    # zooms all, and the browser draws one chart (docs/benchmarks/dashboard.md).
    first_chart.plotly_chart(
        charts.candlestick_figure(cols, symbol, interval, features=features),
        config=charts.PLOT_CONFIG,
        key="hist_candles",
    )
    st.session_state[CHARTS_SHOWN_KEY] = True
    elapsed = time.perf_counter() - t0
    st.session_state[RENDER_TIME_KEY] = elapsed
    fresh = [c for c in series.candles if c.provisional]
    note = (
        f" Candles from {fresh[0].open_time:%Y-%m-%d %H:%M} UTC on are built from the live 1m "
        "stream and are provisional until that day's history lands."
        if fresh
        else ""
    )
    st.caption(
        f"{len(cols)} {interval} candles from {series.source_dataset or 'the API'}; "
        f"rendered in {elapsed:.2f} s.{note}"
    )


def _stats_row(stats: Stats) -> None:
    cols = st.columns(4)
    cols[0].metric("Return over range", percent(stats.return_, signed=True))
    cols[1].metric("Volatility", percent(stats.volatility))
    cols[2].metric("High", exact(stats.high))
    cols[3].metric("Low", exact(stats.low))


render()
