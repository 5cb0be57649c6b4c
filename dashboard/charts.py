"""Plotly figures, built as plain dicts of numpy arrays: typed rows in, unit-labelled charts out.

Why dicts of arrays and not ``plotly.graph_objects`` built from pandas: Plotly serialises a
float64 array as one base64 block (``{"dtype": "f8", "bdata": ...}``) instead of a list of
strings, and the browser draws numbers without parsing dates. Times are epoch milliseconds
on ``date`` axes, which Plotly shows as UTC. Building the chart of a year this way
takes milliseconds; the old builders took ~0.4 s (see docs/benchmarks/dashboard.md).

This is the one place where exact decimals become floats: drawing needs nothing finer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dashboard.display import INTERVALS, base_asset, last_per_bucket, quote_asset
from dashboard.models import Candle, FeatureSeries

Figure = dict[str, Any]
FloatArray = npt.NDArray[np.float64]

# Plotly's config: scroll-wheel zoom, drag to zoom, double-click resets; no logo clutter.
PLOT_CONFIG: dict[str, Any] = {"scrollZoom": True, "displaylogo": False, "responsive": True}
UP, DOWN = "#26a69a", "#ef5350"
# The volume under the candles, a little lighter than the candles themselves.
UP_FILL, DOWN_FILL = "rgba(38, 166, 154, 0.7)", "rgba(239, 83, 80, 0.7)"
FEATURE_STEP = INTERVALS["15m"]
VOLATILITY = (("volatility_1h", "1 h window"), ("volatility_24h", "24 h window"))
TIME_AXIS: dict[str, Any] = {
    "type": "date",
    "title": {"text": "Time (UTC)"},
    "hoverformat": "%Y-%m-%d %H:%M UTC",
}


@dataclass(frozen=True)
class CandleColumns:
    """Candles as float columns for drawing; ``time`` is the open time in epoch ms."""

    time: FloatArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return len(self.time)

    @classmethod
    def of(cls, candles: Sequence[Candle]) -> CandleColumns:
        """Columns of ``candles`` (oldest first, as the API sends them)."""

        def column(values: list[Any]) -> FloatArray:
            return np.array(values, dtype=np.float64)

        return cls(
            time=column([c.open_time.timestamp() * 1000 for c in candles]),
            open=column([c.open for c in candles]),
            high=column([c.high for c in candles]),
            low=column([c.low for c in candles]),
            close=column([c.close for c in candles]),
            volume=column([c.volume for c in candles]),
        )


def _layout(title: str, height: int, **axes: Any) -> dict[str, Any]:
    return {
        "title": {"text": title},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
        "hovermode": "x unified",
        "dragmode": "zoom",
        "showlegend": True,
        "legend": {"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        **axes,
    }


def _volume_steps(
    cols: CandleColumns, name: str, color: str, *, mask: npt.NDArray[np.bool_] | None = None
) -> dict[str, Any]:
    """Volume as one filled step line, each step centred on its candle like a bar.

    A bar trace draws one SVG path per candle; at a year of 6h candles that made the
    volume charts the slowest part of the page in the browser. One path looks the same:
    a candle is narrower than a pixel at that range, and a zoomed-in step has a flat top.
    ``mask`` keeps only some candles' volume (the others step down to zero).
    """
    volume = cols.volume if mask is None else np.where(mask, cols.volume, 0.0)
    return {
        "type": "scatter",
        "mode": "lines",
        "x": cols.time,
        "y": volume,
        "name": name,
        "line": {"shape": "hvh", "width": 0, "color": color},
        "fill": "tozeroy",
        "fillcolor": color,
    }


def candlestick_figure(
    cols: CandleColumns,
    symbol: str,
    interval: str,
    *,
    title: str | None = None,
    features: FeatureSeries | None = None,
) -> Figure:
    """Candlesticks with their volume underneath, sharing one zoomable time axis.

    With ``features``, a third panel shows the rolling volatility on the same axis: one
    figure, so zooming into the price zooms the volume and volatility with it, and the
    browser draws one chart instead of three (Streamlit costs ~0.1 s per chart).
    """
    quote, base = quote_asset(symbol), base_asset(symbol)
    rising = cols.close >= cols.open
    volume_name = f"Volume ({base})"
    data: list[dict[str, Any]] = [
        {
            "type": "candlestick",
            "x": cols.time,
            "open": cols.open,
            "high": cols.high,
            "low": cols.low,
            "close": cols.close,
            "name": f"{symbol} {interval}",
            "increasing": {"line": {"color": UP}},
            "decreasing": {"line": {"color": DOWN}},
            "yaxis": "y",
        },
        # Coloured like the candle above: one step line for rising candles, one for
        # falling ones. The first carries every candle's volume for the hover label.
        {
            **_volume_steps(cols, volume_name, UP_FILL, mask=rising),
            "customdata": cols.volume,
            "hovertemplate": "%{customdata}",
            "showlegend": False,
            "yaxis": "y2",
        },
        {
            **_volume_steps(cols, volume_name, DOWN_FILL, mask=~rising),
            "hoverinfo": "skip",
            "showlegend": False,
            "yaxis": "y2",
        },
    ]
    # (axis, title, vertical share of the figure), top to bottom.
    panels = [("yaxis", f"Price ({quote})", [0.28, 1.0]), ("yaxis2", volume_name, [0.0, 0.24])]
    height, what = 560, "price and volume"
    if features is not None:
        data += _volatility_traces(features, interval)
        panels = [
            ("yaxis", f"Price ({quote})", [0.4, 1.0]),
            ("yaxis2", volume_name, [0.21, 0.37]),
            ("yaxis3", "Volatility (%)", [0.0, 0.18]),
        ]
        height, what = 760, "price, volume and volatility"
    bottom = panels[-1][0].replace("axis", "")
    return {
        "data": data,
        "layout": _layout(
            title or f"{symbol} {what} ({interval} candles)",
            height,
            # One x axis under the lowest pane; the range slider duplicates zoom and halves
            # the chart's height.
            xaxis={**TIME_AXIS, "anchor": bottom, "rangeslider": {"visible": False}},
            **{axis: {"domain": share, "title": {"text": text}} for axis, text, share in panels},
        ),
    }


def _volatility_traces(features: FeatureSeries, interval: str) -> list[dict[str, Any]]:
    """Rolling volatility of 15m log returns over 1 h and 24 h windows, in percent.

    The 15m rows are bucketed to the chart's interval (the last reading of each bucket), so
    the panel has as many points as the candles above it.
    """
    data = []
    for column, label in VOLATILITY:
        times, values = features.open_time_ms, features.columns[column]
        if INTERVALS[interval] > FEATURE_STEP:
            times, values = last_per_bucket(times, values, interval)
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": times.astype(np.float64),
                "y": values * 100,
                "name": f"Volatility, {label}",
                "line": {"width": 1.2},
                "yaxis": "y3",
            }
        )
    return data


def loading_figure(text: str, height: int) -> Figure:
    """An empty chart of the given height that says what is coming."""
    hidden = {"visible": False}
    return {
        # One empty trace: Plotly's Python side refuses a figure without any.
        "data": [{"type": "scatter", "x": [], "y": [], "showlegend": False}],
        "layout": {
            "height": height,
            "xaxis": hidden,
            "yaxis": hidden,
            "annotations": [{"text": text, "showarrow": False, "font": {"size": 16}}],
        },
    }
