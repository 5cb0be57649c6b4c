"""Plotly figure builders: the API's JSON rows in, figures with titled, unit-labelled axes out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.display import base_asset, quote_asset

NUMERIC = ("open", "high", "low", "close", "volume", "quote_volume")
VOLATILITY = ("volatility_1h", "volatility_24h")
# Plotly's config: scroll-wheel zoom, drag to zoom, double-click resets; no logo clutter.
PLOT_CONFIG: dict[str, Any] = {"scrollZoom": True, "displaylogo": False, "responsive": True}
UP, DOWN = "#26a69a", "#ef5350"


def candles_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """API candle rows to a frame indexed by open time; prices become floats (display only)."""
    if not rows:
        return pd.DataFrame(columns=["open_time", *NUMERIC]).set_index("open_time")
    df = pd.DataFrame.from_records(rows)
    df["open_time"] = pd.to_datetime(df["open_time"], utc=True, format="ISO8601")
    for col in NUMERIC:
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df.set_index("open_time").sort_index()


def features_frame(
    rows: Sequence[dict[str, Any]], resample: str | None = None, columns: Sequence[str] = VOLATILITY
) -> pd.DataFrame:
    """API feature rows to a frame of ``columns``; ``resample`` keeps the last value per bucket."""
    index = pd.to_datetime([r["open_time"] for r in rows], utc=True, format="ISO8601")
    # Only the plotted columns: a 6-month range is ~17k rows and every column costs time.
    df = pd.DataFrame(
        {c: np.array([r.get(c) for r in rows], dtype=float) for c in columns}, index=index
    )
    df.index.name = "open_time"
    if resample and len(df):
        # A volatility reading describes the window up to its candle, so the bucket's last
        # value is the honest one; averaging would smooth spikes away.
        df = df.resample(resample, label="left", closed="left").last().dropna(how="all")
    return df


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title},
        height=height,
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        hovermode="x unified",
        dragmode="zoom",
        showlegend=True,
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
    )
    return fig


def candlestick_figure(
    df: pd.DataFrame, symbol: str, interval: str, *, title: str | None = None
) -> go.Figure:
    """Candlesticks with volume bars underneath, sharing a zoomable time axis."""
    quote, base = quote_asset(symbol), base_asset(symbol)
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.03, row_heights=[0.75, 0.25]
    )
    fig.add_trace(
        go.Candlestick(
            x=df.index,
            open=df["open"],
            high=df["high"],
            low=df["low"],
            close=df["close"],
            name=f"{symbol} {interval}",
            increasing_line_color=UP,
            decreasing_line_color=DOWN,
        ),
        row=1,
        col=1,
    )
    colors = [UP if c >= o else DOWN for o, c in zip(df["open"], df["close"], strict=True)]
    fig.add_trace(
        go.Bar(
            x=df.index, y=df["volume"], name=f"Volume ({base})", marker_color=colors, opacity=0.7
        ),
        row=2,
        col=1,
    )
    fig.update_yaxes(title_text=f"Price ({quote})", row=1, col=1)
    fig.update_yaxes(title_text=f"Volume ({base})", row=2, col=1)
    fig.update_xaxes(title_text="Time (UTC)", row=2, col=1)
    # The range slider duplicates zoom and halves the chart's height.
    fig.update_xaxes(rangeslider_visible=False)
    return _layout(fig, title or f"{symbol} price and volume ({interval} candles)", 560)


def close_figure(df: pd.DataFrame, symbol: str, interval: str) -> go.Figure:
    """A line of close prices."""
    fig = go.Figure(
        go.Scatter(x=df.index, y=df["close"], mode="lines", name="Close", line={"width": 1.5})
    )
    fig.update_yaxes(title_text=f"Price ({quote_asset(symbol)})")
    fig.update_xaxes(title_text="Time (UTC)")
    return _layout(fig, f"{symbol} close price ({interval})", 320)


def volatility_figure(df: pd.DataFrame, symbol: str) -> go.Figure:
    """Rolling volatility of 15m log returns over 1 h and 24 h windows, in percent."""
    fig = go.Figure()
    for col, label in (("volatility_1h", "1 h window"), ("volatility_24h", "24 h window")):
        if col in df:
            fig.add_trace(go.Scatter(x=df.index, y=df[col] * 100, mode="lines", name=label))
    fig.update_yaxes(title_text="Volatility (% std of 15m log returns)")
    fig.update_xaxes(title_text="Time (UTC)")
    return _layout(fig, f"{symbol} volatility", 320)


def volume_figure(df: pd.DataFrame, symbol: str, interval: str) -> go.Figure:
    """Traded volume per candle, in the base asset."""
    base = base_asset(symbol)
    fig = go.Figure(
        go.Bar(x=df.index, y=df["volume"], name=f"Volume ({base})", marker_color="#5c6bc0")
    )
    fig.update_yaxes(title_text=f"Volume ({base})")
    fig.update_xaxes(title_text="Time (UTC)")
    return _layout(fig, f"{symbol} volume ({interval})", 320)


PANDAS_RULE = {
    "1m": "1min",
    "15m": "15min",
    "30m": "30min",
    "1h": "1h",
    "2h": "2h",
    "4h": "4h",
    "6h": "6h",
    "12h": "12h",
    "1d": "1D",
    "1w": "W-MON",
}
