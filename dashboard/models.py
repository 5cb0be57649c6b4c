"""Typed answers of the CryptoBot API, as the dashboard reads them.

Exchange numbers (prices, volumes) arrive as decimal strings and stay ``Decimal`` here: the
charts turn them into floats at the last step, and tables and metrics can show them exactly.
Derived statistics (``return``, ``volatility``, the feature columns) are JSON floats in the
API's contract and stay floats. Times are aware UTC datetimes.

Every ``from_json`` raises ``KeyError``, ``TypeError`` or ``ValueError`` on an answer of the
wrong shape; the API client turns that into one message for the page.

A sample ``/candles`` row, as the API sends it::

    {"open_time": "2024-01-01T00:00:00.000Z", "close_time": "2024-01-01T00:14:59.999Z",
     "open": "42283.58000000", "high": "42554.57000000", "low": "42261.02000000",
     "close": "42475.23000000", "volume": "1271.68108000",
     "quote_volume": "53957244.85283070", "taker_buy_base_volume": "662.21262000",
     "taker_buy_quote_volume": "28098484.69476410", "trades": 47134, "is_closed": true}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import numpy.typing as npt

# The float columns of candle_features_15m, in the API's order.
FEATURE_COLUMNS = (
    "log_return",
    "volatility_1h",
    "volatility_24h",
    "vwap",
    "hl_range",
    "volume_zscore",
)

_NUMBER_TYPES = {float, int, type(None)}

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def parse_time(value: str) -> datetime:
    """An API time (ISO 8601, ``Z`` or an offset) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    return parsed.astimezone(UTC)


def _opt_time(value: Any) -> datetime | None:
    return parse_time(value) if value else None


def _decimal(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise TypeError(f"expected a decimal string, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _opt_decimal(value: Any) -> Decimal | None:
    return None if value is None else _decimal(value)


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class Candle:
    """One candle: exact decimals, UTC times (the API's ``CandlePublic``)."""

    open_time: datetime
    close_time: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    taker_buy_base_volume: Decimal
    taker_buy_quote_volume: Decimal
    trades: int
    is_closed: bool
    # Built from the 1m stream for hours the daily history does not hold yet.
    provisional: bool = False

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Candle:
        """Parse one row of ``candles`` (or ``/latest``'s ``candle``)."""
        return cls(
            open_time=parse_time(row["open_time"]),
            close_time=parse_time(row["close_time"]),
            open=_decimal(row["open"]),
            high=_decimal(row["high"]),
            low=_decimal(row["low"]),
            close=_decimal(row["close"]),
            volume=_decimal(row["volume"]),
            quote_volume=_decimal(row["quote_volume"]),
            taker_buy_base_volume=_decimal(row["taker_buy_base_volume"]),
            taker_buy_quote_volume=_decimal(row["taker_buy_quote_volume"]),
            trades=int(row["trades"]),
            is_closed=bool(row["is_closed"]),
            provisional=bool(row.get("provisional", False)),
        )


@dataclass(frozen=True)
class CandlePage:
    """One answer of ``/candles/{symbol}``: up to ``limit`` candles and the cursor to go on."""

    source_dataset: str
    candles: tuple[Candle, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> CandlePage:
        """Parse a ``/candles`` answer."""
        return cls(
            source_dataset=str(body.get("source_dataset") or ""),
            candles=tuple(Candle.from_json(row) for row in body["candles"]),
            next_cursor=body.get("next_cursor") or None,
        )


@dataclass(frozen=True)
class CandleSeries:
    """Every candle of a range, pages joined, oldest first; ``truncated`` when paging stopped early."""

    symbol: str
    interval: str
    source_dataset: str
    candles: tuple[Candle, ...]
    truncated: bool


@dataclass(frozen=True)
class Stats:
    """``/stats/{symbol}``: a summary of the closed candles of a window."""

    count: int
    open: Decimal | None
    close: Decimal | None
    return_: float | None
    volatility: float | None
    high: Decimal | None
    low: Decimal | None
    volume: Decimal | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Stats:
        """Parse a ``/stats`` answer."""
        return cls(
            count=int(body["count"]),
            open=_opt_decimal(body.get("open")),
            close=_opt_decimal(body.get("close")),
            return_=_opt_float(body.get("return")),
            volatility=_opt_float(body.get("volatility")),
            high=_opt_decimal(body.get("high")),
            low=_opt_decimal(body.get("low")),
            volume=_opt_decimal(body.get("volume")),
        )


@dataclass(frozen=True)
class DatasetExtent:
    """First and last stored candle of one symbol in one dataset."""

    first_open_time: datetime
    last_open_time: datetime
    count: int


@dataclass(frozen=True)
class SymbolSummary:
    """A symbol with data, per dataset key (``15m`` history, ``1m`` stream)."""

    symbol: str
    datasets: Mapping[str, DatasetExtent]

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> SymbolSummary:
        """Parse one entry of ``/symbols``."""
        return cls(
            symbol=str(row["symbol"]),
            datasets={
                str(key): DatasetExtent(
                    first_open_time=parse_time(info["first_open_time"]),
                    last_open_time=parse_time(info["last_open_time"]),
                    count=int(info["count"]),
                )
                for key, info in (row.get("datasets") or {}).items()
                if info
            },
        )


@dataclass(frozen=True)
class Health:
    """``/health``: the API process answers."""

    status: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Health:
        """Parse a ``/health`` answer."""
        return cls(status=str(body["status"]))


@dataclass(frozen=True)
class Exchange:
    """Where the API's data comes from."""

    source: str
    simulated: bool
    rest_url: str
    fallback_reason: str | None


@dataclass(frozen=True)
class DatasetFreshness:
    """The newest candle of a dataset over the configured symbols."""

    newest_open_time: datetime | None
    age_seconds: float | None
    symbols: int


@dataclass(frozen=True)
class Heartbeat:
    """The last sign of life of a stream process."""

    updated_at: datetime
    age_seconds: float


@dataclass(frozen=True)
class Ready:
    """``/ready``: store reachability, the exchange in use, freshness and stream heartbeats."""

    status: str
    store_reachable: bool
    store_error: str | None
    exchange: Exchange
    datasets: Mapping[str, DatasetFreshness]
    stream: Mapping[str, Heartbeat | None]

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Ready:
        """Parse a ``/ready`` answer (200 or 503)."""
        store = body.get("store") or {}
        exchange = body.get("exchange") or {}
        return cls(
            status=str(body["status"]),
            store_reachable=bool(store.get("reachable")),
            store_error=store.get("error") or None,
            exchange=Exchange(
                source=str(exchange.get("source") or "?"),
                simulated=bool(exchange.get("simulated")),
                rest_url=str(exchange.get("rest_url") or "?"),
                fallback_reason=exchange.get("fallback_reason") or None,
            ),
            datasets={
                str(name): DatasetFreshness(
                    newest_open_time=_opt_time(info.get("newest_open_time")),
                    age_seconds=_opt_float(info.get("age_seconds")),
                    symbols=int(info.get("symbols") or 0),
                )
                for name, info in (body.get("datasets") or {}).items()
                if isinstance(info, Mapping)
            },
            stream={
                str(role): Heartbeat(
                    updated_at=parse_time(beat["updated_at"]),
                    age_seconds=float(beat["age_seconds"]),
                )
                if beat
                else None
                for role, beat in (body.get("stream") or {}).items()
            },
        )


@dataclass(frozen=True)
class FeatureSeries:
    """Rows of candle_features_15m as columns, oldest first (NaN where the API sent null).

    Columns rather than one object per row: a year is 35,040 rows, and the chart only ever
    needs two columns of them as arrays. The arrays are read-only because cached answers are
    shared by every session.
    """

    open_time_ms: IntArray
    columns: Mapping[str, FloatArray]

    def __len__(self) -> int:
        return len(self.open_time_ms)

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> FeatureSeries:
        """Parse the ``features`` rows of one or more ``/features`` answers."""
        stamps = [datetime.fromisoformat(r["open_time"]) for r in rows]
        if any(t.tzinfo is None for t in stamps):
            raise ValueError("a feature open_time has no time zone")
        times = np.rint(np.array([t.timestamp() for t in stamps]) * 1000).astype(np.int64)
        columns: dict[str, FloatArray] = {}
        for name in FEATURE_COLUMNS:
            values = [r[name] for r in rows]
            # numpy would turn "0.1" into a number silently; the contract says JSON numbers.
            if not {type(v) for v in values} <= _NUMBER_TYPES:
                raise TypeError(f"feature column {name!r} holds something that is not a number")
            columns[name] = _frozen(np.array(values, dtype=np.float64))  # None becomes NaN
        return cls(open_time_ms=_frozen(times), columns=columns)


@dataclass(frozen=True)
class Gap:
    """A run of missing closed candles: open times in ``[start, end)``."""

    start: datetime
    end: datetime
    missing: int

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> Gap:
        """Parse one entry of ``/gaps``' ``gaps``."""
        return cls(
            start=parse_time(row["start"]), end=parse_time(row["end"]), missing=int(row["missing"])
        )


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.flags.writeable = False
    return array
