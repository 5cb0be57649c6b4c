"""Typed rows of the read side: what the API serialises, exact decimals as strings.

Times are ISO-8601 UTC strings with milliseconds and ``Z``; exchange decimals are exact
strings (never floats); derived statistics are floats. Plain slots dataclasses: cheap to
build by the ten thousand, and the API turns them into JSON with the field names as keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptobot_core.intervals import Interval
from cryptobot_core.models import ms_to_dt


def iso(value: datetime | int) -> str:
    """ISO-8601 UTC with milliseconds and Z, e.g. ``2024-01-01T00:14:59.999Z``."""
    if isinstance(value, int):
        value = ms_to_dt(value)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    text = value.isoformat(timespec="milliseconds")
    # Aware UTC ends in +00:00; naive datetimes (as pymongo may return) are UTC already.
    return (text[:-6] if value.tzinfo is not None else text) + "Z"


@dataclass(slots=True)
class CandleRow:
    """One candle as served: native or resampled."""

    open_time: str
    close_time: str
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    taker_buy_base_volume: str
    taker_buy_quote_volume: str
    trades: int
    is_closed: bool
    # Built from the 1m stream ahead of the daily history; replaced when history lands.
    provisional: bool = False


@dataclass(slots=True)
class CandlePage:
    """One page of candles and the cursor of the next page (None when done)."""

    symbol: str
    interval: Interval
    source_dataset: str
    candles: list[CandleRow]
    next_cursor: str | None


@dataclass(slots=True)
class LatestCandle:
    """The newest stored candle of a native interval, if any."""

    symbol: str
    interval: Interval
    candle: CandleRow | None


@dataclass(slots=True)
class WindowStats:
    """Return, volatility (std of log returns), high/low and volume of a window of candles."""

    count: int
    open: str | None
    close: str | None
    return_: float | None
    volatility: float | None
    high: str | None
    low: str | None
    volume: str | None


@dataclass(slots=True)
class StatsReport:
    """Window statistics of one symbol and interval over [start, end)."""

    symbol: str
    interval: Interval
    start: str | None
    end: str | None
    stats: WindowStats
    # Some candles of the window were built from the 1m stream ahead of the daily history.
    provisional: bool = False


@dataclass(slots=True)
class FeatureRow:
    """One row of candle features (floats; None where not defined)."""

    open_time: str
    close: str | None
    log_return: float | None
    volatility_1h: float | None
    volatility_24h: float | None
    vwap: float | None
    hl_range: float | None
    volume_zscore: float | None


@dataclass(slots=True)
class FeaturePage:
    """Feature rows of one symbol, oldest first."""

    symbol: str
    features: list[FeatureRow]


@dataclass(slots=True)
class GapRun:
    """A run of missing closed candles: open times in [start, end)."""

    start: str
    end: str
    missing: int


@dataclass(slots=True)
class GapReport:
    """Missing closed candles of a dataset within a window."""

    symbol: str
    dataset: str
    start: str | None
    end: str | None
    gaps: list[GapRun]


@dataclass(slots=True)
class DatasetSpan:
    """First and last open time and candle count of one symbol in one dataset."""

    first_open_time: str
    last_open_time: str
    count: int


@dataclass(slots=True)
class SymbolSummary:
    """A symbol with data, per dataset label (``1m``, ``15m``)."""

    symbol: str
    datasets: dict[str, DatasetSpan]


@dataclass(slots=True)
class DatasetFreshness:
    """Newest open time over some symbols in one collection, its age, and the symbol count."""

    newest_open_time: str | None
    age_seconds: float | None
    symbols: int


@dataclass(slots=True)
class HeartbeatAge:
    """The last heartbeat of a stream process and its age."""

    updated_at: str
    age_seconds: float
