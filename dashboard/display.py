"""Display decisions that need no Streamlit: chart resolution, units, human-readable ages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from dashboard.models import Stats

# Every fixed-length Binance interval, finest first, with its length.
ALL_INTERVALS: dict[str, timedelta] = {
    "1s": timedelta(seconds=1),
    "1m": timedelta(minutes=1),
    "3m": timedelta(minutes=3),
    "5m": timedelta(minutes=5),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": timedelta(hours=4),
    "6h": timedelta(hours=6),
    "8h": timedelta(hours=8),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
    "3d": timedelta(days=3),
    "1w": timedelta(weeks=1),
}


# A 1m history is listed under its collection's name ("1m" is the stream).
HISTORY_1M = "historical_data_1m"


def offered_intervals(datasets: Iterable[str]) -> dict[str, timedelta]:
    """The intervals the charts offer, given the datasets /symbols lists as stored.

    1m always (the live stream), and every interval the API builds from stored history: a
    multiple of a history interval. With the default 15m history that is 15m to 1w; 3m and
    5m only when 1m history is kept, since from the stream alone an old range is empty.
    """
    names = set(datasets)
    kept = {ALL_INTERVALS[d] for d in names if d in ALL_INTERVALS and d != "1m"}
    if HISTORY_1M in names:
        kept.add(ALL_INTERVALS["1m"])
    return {
        name: step
        for name, step in ALL_INTERVALS.items()
        if name == "1m" or any(step % unit == timedelta(0) for unit in kept)
    }


# What the charts offer with the default history (15m).
INTERVALS: dict[str, timedelta] = offered_intervals(["15m"])
# The historical page opens on the last week: 672 15m candles, all of them drawn.
DEFAULT_DAYS = 7
# At most this many candles per chart. A chart is ~1300 px wide, so more than ~650 are
# narrower than 2 px and stop reading as candles; and each one costs the browser time to
# draw (1500 put a year view at ~1.1 s in Chromium, 800 at ~0.7 s: docs/benchmarks).
MAX_POINTS = 800

# Longest first so "FDUSD" wins over "USD"-like suffixes.
_QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "DAI", "EUR", "TRY", "BRL", "BTC", "ETH", "BNB")


def points(interval: str, span: timedelta) -> int:
    """How many candles of ``interval`` a span of time holds (rounded up)."""
    step = ALL_INTERVALS[interval]
    return -(-span // step)


def choose_interval(
    requested: str,
    span: timedelta,
    max_points: int = MAX_POINTS,
    offered: Mapping[str, timedelta] = INTERVALS,
) -> str:
    """The requested interval, or the finest coarser offered one that keeps the chart readable."""
    if requested not in offered:
        raise ValueError(f"unknown interval {requested!r}; allowed: {', '.join(offered)}")
    names = list(offered)
    for name in names[names.index(requested) :]:
        if points(name, span) <= max_points:
            return name
    return names[-1]


# Weekly buckets open on Monday 00:00 UTC, as on Binance; the epoch fell on a Thursday.
_WEEK_ORIGIN_MS = 4 * 86_400_000


def bucket_open_ms(time_ms: npt.NDArray[np.int64], interval: str) -> npt.NDArray[np.int64]:
    """The open time (epoch ms) of the ``interval`` candle each time falls in."""
    step = ALL_INTERVALS[interval] // timedelta(milliseconds=1)
    origin = _WEEK_ORIGIN_MS if interval == "1w" else 0
    return (time_ms - origin) // step * step + origin


def last_per_bucket(
    time_ms: npt.NDArray[np.int64], values: npt.NDArray[np.float64], interval: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The last known value (not NaN) in each ``interval`` bucket, keyed by the bucket's open.

    ``time_ms`` must be ascending. A volatility reading describes the window up to its
    candle, so the bucket's last reading is the honest one; averaging would hide spikes.
    """
    known = ~np.isnan(values)
    buckets, kept = bucket_open_ms(time_ms[known], interval), values[known]
    if not len(buckets):
        return buckets, kept
    last = np.flatnonzero(np.append(buckets[1:] != buckets[:-1], True))
    return buckets[last], kept[last]


def quote_asset(symbol: str) -> str:
    """The quote currency of a Binance symbol (BTCUSDT → USDT), for axis units."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return quote
    return "quote"


def base_asset(symbol: str) -> str:
    """The base currency of a Binance symbol (BTCUSDT → BTC)."""
    quote = quote_asset(symbol)
    return symbol[: -len(quote)] if quote != "quote" else symbol


def exact(value: Decimal | None) -> str:
    """An exchange number with every digit the exchange sent, grouped, no trailing zeros."""
    if value is None:
        return "—"
    text = f"{value.normalize():,f}"
    return "0" if text in ("-0", "0") else text


def percent(value: float | None, *, signed: bool = False) -> str:
    """A fraction as a percentage with two decimals ('+1.25 %' when signed); '—' when unknown."""
    if value is None:
        return "—"
    return f"{value * 100:{'+' if signed else ''}.2f} %"


def change_24h(price: Decimal | None, day: Stats) -> float | None:
    """The 24 h change: price over the window's first open, else the window's own return."""
    if price is not None and day.open:
        return float(price / day.open - 1)
    return day.return_


def human_age(seconds: float | None) -> str:
    """An age in seconds as '42 s', '7 min', '3.5 h' or '2.0 d'; '—' when unknown."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


# A dataset is stale when its newest candle is older than this: history is loaded by daily
# partitions (plus the current day when scheduled), the stream every minute.
STALE_AFTER_S = {
    "historical_data_15m": 2 * 86400.0,
    "candle_features_15m": 2 * 86400.0,
    "streaming_data_1m": 5 * 60.0,
}


def freshness(dataset: str, age_seconds: float | None) -> str:
    """'no data', 'fresh' or 'stale' for a dataset's newest candle age."""
    if age_seconds is None:
        return "no data"
    limit = STALE_AFTER_S.get(dataset, 2 * 86400.0)
    return "fresh" if age_seconds <= limit else "stale"


@dataclass(frozen=True)
class HistoricalView:
    """What the historical page shows: a symbol, the requested interval, UTC days (end included)."""

    symbol: str
    interval: str
    first_day: date
    last_day: date

    def query(self) -> dict[str, str]:
        """The view as URL query parameters, so a link reopens exactly this view."""
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "start": self.first_day.isoformat(),
            "end": self.last_day.isoformat(),
        }


def default_view(
    symbol: str, extent: tuple[date, date], days: int = DEFAULT_DAYS
) -> HistoricalView:
    """The last ``days`` stored days of a symbol at 15m (1344 candles for two weeks)."""
    first, last = extent
    return HistoricalView(symbol, "15m", max(first, last - timedelta(days=days - 1)), last)


def view_from_query(
    query: Mapping[str, str], extents: Mapping[str, tuple[date, date]]
) -> tuple[HistoricalView, list[str]]:
    """The view a link asks for (``?symbol=&interval=&start=&end=``), and what was wrong with it.

    ``extents`` holds the first and last stored day of each symbol (the first symbol is the
    default). A missing part takes its default; a wrong one too, with one sentence naming the
    parameter and what is allowed, so the page can say why it shows something else.
    """
    problems: list[str] = []
    symbols = list(extents)
    symbol = query.get("symbol", symbols[0]).upper()
    if symbol not in extents:
        problems.append(
            f"symbol={query.get('symbol')!r} has no data; symbols with data: {', '.join(symbols)}."
        )
        symbol = symbols[0]
    default = default_view(symbol, extents[symbol])
    interval = query.get("interval", default.interval)
    if interval not in INTERVALS:
        problems.append(f"interval={interval!r} is not one of {', '.join(INTERVALS)}.")
        interval = default.interval
    days: list[date] = []
    for name, fallback in (("start", default.first_day), ("end", default.last_day)):
        raw = query.get(name)
        try:
            days.append(date.fromisoformat(raw) if raw else fallback)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a date; use YYYY-MM-DD (UTC).")
            days.append(fallback)
    first, last = days
    if first > last:
        problems.append(f"start={first} is after end={last}; showing the default range.")
        first, last = default.first_day, default.last_day
    lo, hi = extents[symbol]
    if first < lo or last > hi:
        problems.append(f"{symbol} has data from {lo} to {hi}; the range was cut to fit.")
        first, last = min(max(first, lo), hi), max(min(last, hi), lo)
    return HistoricalView(symbol, interval, first, last), problems
