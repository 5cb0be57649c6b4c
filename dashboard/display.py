"""Display decisions that need no Streamlit: chart resolution, units, human-readable ages."""

from __future__ import annotations

from datetime import timedelta

# The intervals the API serves, finest first, with their length.
INTERVALS: dict[str, timedelta] = {
    "1m": timedelta(minutes=1),
    "15m": timedelta(minutes=15),
    "30m": timedelta(minutes=30),
    "1h": timedelta(hours=1),
    "2h": timedelta(hours=2),
    "4h": timedelta(hours=4),
    "6h": timedelta(hours=6),
    "12h": timedelta(hours=12),
    "1d": timedelta(days=1),
    "1w": timedelta(weeks=1),
}
# A person cannot read more candles than this on one chart, and plotly stays fast.
MAX_POINTS = 1500

# Longest first so "FDUSD" wins over "USD"-like suffixes.
_QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "DAI", "EUR", "TRY", "BRL", "BTC", "ETH", "BNB")


def points(interval: str, span: timedelta) -> int:
    """How many candles of ``interval`` a span of time holds (rounded up)."""
    step = INTERVALS[interval]
    return -(-span // step)


def choose_interval(requested: str, span: timedelta, max_points: int = MAX_POINTS) -> str:
    """The requested interval, or the finest coarser one that keeps the chart readable."""
    if requested not in INTERVALS:
        raise ValueError(f"unknown interval {requested!r}; allowed: {', '.join(INTERVALS)}")
    names = list(INTERVALS)
    for name in names[names.index(requested) :]:
        if points(name, span) <= max_points:
            return name
    return names[-1]


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
