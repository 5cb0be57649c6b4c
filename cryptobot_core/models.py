"""The one candle type shared by the client, the stream, the store and the API.

Raw payloads it parses (Binance docs):

REST row (GET /api/v3/klines)::

    [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
     "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397",
     "28.46694368", "0"]

WebSocket kline event (<symbol>@kline_1m)::

    {"e": "kline", "E": 1672515782136, "s": "BNBBTC",
     "k": {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m",
           "f": 100, "L": 200, "o": "0.0010", "c": "0.0020", "h": "0.0025",
           "l": "0.0015", "v": "1000", "n": 100, "x": false, "q": "1.0000",
           "V": "500", "Q": "0.500", "B": "123456"}}
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from operator import attrgetter, itemgetter
from typing import Any, Generic, TypeVar

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval

DECIMAL_FIELDS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
)
# Summed when candles are combined; the other decimal fields are prices.
VOLUME_FIELDS = DECIMAL_FIELDS[4:]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Source(StrEnum):
    """Where a stored candle came from."""

    REST = "rest"
    WS = "ws"
    REPAIR = "repair"
    ARCHIVE = "archive"


def ms_to_dt(ms: int) -> datetime:
    """Epoch milliseconds to an aware UTC datetime (exact to the millisecond)."""
    return datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=(ms % 1000) * 1000)


def dt_to_ms(dt: datetime) -> int:
    """Aware (or naive-as-UTC) datetime to epoch milliseconds, in exact integer arithmetic."""
    delta = _utc(dt) - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def dec_str(value: Decimal) -> str:
    """A Decimal as Binance writes it: plain notation, never an exponent."""
    return format(value, "f")


def _utc(dt: datetime) -> datetime:
    # pymongo returns naive datetimes unless tz_aware=True; treat naive as UTC.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _dec(name: str, value: Any) -> Decimal:
    if isinstance(value, float):
        raise ValidationError(f"{name} must be a decimal string, not a float ({value!r})")
    try:
        d = Decimal(value)
    except (InvalidOperation, TypeError):
        raise ValidationError(f"{name} must be a decimal string, got {value!r}") from None
    if not d.is_finite():
        raise ValidationError(f"{name} must be finite, got {value!r}")
    return d


# REST row positions of the Decimal fields, in DECIMAL_FIELDS order.
_ROW_DECIMALS = itemgetter(1, 2, 3, 4, 5, 7, 9, 10)
_ONLY_STR = {str}


def _fast_fields(row: Any) -> tuple[int, int, tuple[Decimal, ...], int] | None:
    """(open_ms, close_ms, decimals, trades) of a REST row whose fields are all plainly valid.

    None means "not obviously valid": the caller then uses the full constructor, so every
    rule (and every error message) stays in Candle.__post_init__.
    """
    if type(row) is not list or len(row) < 11:
        return None
    open_ms, close_ms, trades = row[0], row[6], row[8]
    if type(open_ms) is not int or type(close_ms) is not int or type(trades) is not int:
        return None
    if trades < 0 or close_ms <= open_ms or open_ms < 0:
        return None
    values = _ROW_DECIMALS(row)
    if set(map(type, values)) != _ONLY_STR:
        return None
    try:
        decimals = tuple(map(Decimal, values))
    except InvalidOperation:
        return None
    if not all(map(Decimal.is_finite, decimals)):
        return None
    return open_ms, close_ms, decimals, trades


@dataclass(frozen=True, slots=True)
class Candle:
    """One kline, validated at construction: exact Decimals and UTC datetimes."""

    symbol: str
    interval: Interval
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
    is_closed: bool = True
    source: Source = Source.REST
    event_time: datetime | None = None

    def __post_init__(self) -> None:
        if not self.symbol or not self.symbol.isalnum() or not self.symbol.isupper():
            raise ValidationError(f"symbol must be upper-case letters/digits, got {self.symbol!r}")
        object.__setattr__(self, "interval", Interval.parse(self.interval))
        object.__setattr__(self, "source", Source(self.source))
        object.__setattr__(self, "open_time", _utc(self.open_time))
        object.__setattr__(self, "close_time", _utc(self.close_time))
        if self.event_time is not None:
            object.__setattr__(self, "event_time", _utc(self.event_time))
        for name in DECIMAL_FIELDS:
            object.__setattr__(self, name, _dec(name, getattr(self, name)))
        if isinstance(self.trades, bool) or not isinstance(self.trades, int) or self.trades < 0:
            raise ValidationError(f"trades must be a non-negative integer, got {self.trades!r}")
        if self.close_time <= self.open_time:
            raise ValidationError("close_time must be after open_time")

    @property
    def open_ms(self) -> int:
        """Open time in epoch milliseconds (the kline's identity on Binance)."""
        return dt_to_ms(self.open_time)

    @property
    def close_ms(self) -> int:
        """Close time in epoch milliseconds."""
        return dt_to_ms(self.close_time)

    def with_source(self, source: Source) -> Candle:
        """A copy marked with another source."""
        return replace(self, source=source)

    @classmethod
    def from_rest_row(
        cls,
        symbol: str,
        interval: Interval | str,
        row: Sequence[Any],
        *,
        now_ms: int | None = None,
        source: Source = Source.REST,
    ) -> Candle:
        """Parse one ``/api/v3/klines`` row; ``is_closed`` is decided against ``now_ms``."""
        if not isinstance(row, Sequence) or len(row) < 11:
            raise ValidationError(f"kline row must have 12 fields, got {row!r}")
        close_ms = int(row[6])
        closed = True if now_ms is None else close_ms < now_ms
        return cls(
            symbol=symbol,
            interval=Interval.parse(interval),
            open_time=ms_to_dt(int(row[0])),
            close_time=ms_to_dt(close_ms),
            open=row[1],
            high=row[2],
            low=row[3],
            close=row[4],
            volume=row[5],
            quote_volume=row[7],
            trades=int(row[8]),
            taker_buy_base_volume=row[9],
            taker_buy_quote_volume=row[10],
            is_closed=closed,
            source=source,
        )

    @classmethod
    def from_rest_rows(
        cls,
        symbol: str,
        interval: Interval | str,
        rows: Sequence[Sequence[Any]],
        *,
        now_ms: int | None = None,
        source: Source = Source.REST,
    ) -> list[Candle]:
        """Parse a page of ``/api/v3/klines`` rows: same result and errors as from_rest_row.

        Added for the REST client (a page is 1000 rows): the symbol, interval and source are
        validated once by fully constructing the first candle; a later row skips the
        per-instance checks only when its fields are exactly what they would accept
        (decimal strings that parse finite, a non-negative int trade count, close after
        open). Any other row goes through the full constructor, which raises as usual.
        """
        out: list[Candle] = []
        if not rows:
            return out
        first = cls.from_rest_row(symbol, interval, rows[0], now_ms=now_ms, source=source)
        out.append(first)
        iv, src, sym = first.interval, first.source, first.symbol
        new, setattr_, append = object.__new__, object.__setattr__, out.append
        spans: dict[int, timedelta] = {}  # close - open is the same for (almost) every row
        for row in rows[1:]:
            fast = _fast_fields(row)
            if fast is None:
                append(cls.from_rest_row(symbol, interval, row, now_ms=now_ms, source=source))
                continue
            open_ms, close_ms, d, trades = fast
            # Same values as ms_to_dt (exact integer ms, UTC), at a fraction of the cost.
            open_time = _EPOCH + timedelta(milliseconds=open_ms)
            span = spans.get(close_ms - open_ms)
            if span is None:
                span = spans[close_ms - open_ms] = timedelta(milliseconds=close_ms - open_ms)
            c = new(cls)
            # Unrolled DECIMAL_FIELDS order: a loop here costs more than the rest of the row.
            setattr_(c, "open", d[0])
            setattr_(c, "high", d[1])
            setattr_(c, "low", d[2])
            setattr_(c, "close", d[3])
            setattr_(c, "volume", d[4])
            setattr_(c, "quote_volume", d[5])
            setattr_(c, "taker_buy_base_volume", d[6])
            setattr_(c, "taker_buy_quote_volume", d[7])
            setattr_(c, "symbol", sym)
            setattr_(c, "interval", iv)
            setattr_(c, "open_time", open_time)
            setattr_(c, "close_time", open_time + span)
            setattr_(c, "trades", trades)
            setattr_(c, "is_closed", True if now_ms is None else close_ms < now_ms)
            setattr_(c, "source", src)
            setattr_(c, "event_time", None)
            append(c)
        return out

    def to_rest_row(self) -> list[Any]:
        """The Binance REST row for this candle (decimal strings as given)."""
        return [
            self.open_ms,
            dec_str(self.open),
            dec_str(self.high),
            dec_str(self.low),
            dec_str(self.close),
            dec_str(self.volume),
            self.close_ms,
            dec_str(self.quote_volume),
            self.trades,
            dec_str(self.taker_buy_base_volume),
            dec_str(self.taker_buy_quote_volume),
            "0",
        ]

    @classmethod
    def from_ws_event(cls, event: Mapping[str, Any]) -> Candle:
        """Parse a WebSocket kline event (raw or the ``data`` of a combined frame)."""
        try:
            if event.get("e") != "kline":
                raise ValidationError(f"not a kline event: e={event.get('e')!r}")
            k = event["k"]
            if not isinstance(k["x"], bool):
                raise ValidationError(f"x must be JSON true or false, got {k['x']!r}")
            for name, value in (("t", k["t"]), ("T", k["T"]), ("n", k["n"]), ("E", event["E"])):
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValidationError(f"{name} must be a JSON integer, got {value!r}")
            return cls(
                symbol=k["s"],
                interval=Interval.parse(k["i"]),
                open_time=ms_to_dt(int(k["t"])),
                close_time=ms_to_dt(int(k["T"])),
                open=k["o"],
                high=k["h"],
                low=k["l"],
                close=k["c"],
                volume=k["v"],
                quote_volume=k["q"],
                taker_buy_base_volume=k["V"],
                taker_buy_quote_volume=k["Q"],
                trades=int(k["n"]),
                is_closed=k["x"],
                source=Source.WS,
                event_time=ms_to_dt(int(event["E"])),
            )
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError, OSError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(f"malformed kline event: {exc!r}") from None

    def to_ws_event(self) -> dict[str, Any]:
        """The Binance WebSocket kline event for this candle."""
        event_ms = dt_to_ms(self.event_time) if self.event_time else self.close_ms
        return {
            "e": "kline",
            "E": event_ms,
            "s": self.symbol,
            "k": {
                "t": self.open_ms,
                "T": self.close_ms,
                "s": self.symbol,
                "i": self.interval.value,
                "f": 0,
                "L": 0,
                "o": dec_str(self.open),
                "c": dec_str(self.close),
                "h": dec_str(self.high),
                "l": dec_str(self.low),
                "v": dec_str(self.volume),
                "n": self.trades,
                "x": self.is_closed,
                "q": dec_str(self.quote_volume),
                "V": dec_str(self.taker_buy_base_volume),
                "Q": dec_str(self.taker_buy_quote_volume),
                "B": "0",
            },
        }


V = TypeVar("V")
P = TypeVar("P")


class CandleAccumulator(Generic[P, V]):
    """The exchange's rule for a coarser candle, fed finer candles oldest first.

    Open is the first open, close the last close, high/low the extremes, volumes and trade
    counts the sums, and it is closed only when every part is. Written once for two value
    types: ``aggregate`` feeds Decimals, resampling feeds the store's exact (coefficient,
    exponent) parts; ``add`` and ``greater`` are the arithmetic of that type. Open and
    close (type ``P``) are carried as given, never computed on.
    """

    __slots__ = ("_add", "_greater", "open", "high", "low", "close", "volumes", "trades", "closed")

    def __init__(
        self,
        add: Callable[[V, V], V],
        greater: Callable[[V, V], bool],
        open: P,
        high: V,
        low: V,
        close: P,
        volumes: Sequence[V],
        trades: int,
        closed: bool,
    ) -> None:
        self._add, self._greater = add, greater
        self.open, self.high, self.low, self.close = open, high, low, close
        self.volumes = list(volumes)
        self.trades, self.closed = trades, closed

    def push(
        self, high: V, low: V, close: P, volumes: Sequence[V], trades: int, closed: bool
    ) -> None:
        """Fold in the next (later) candle."""
        if self._greater(high, self.high):
            self.high = high
        if self._greater(self.low, low):
            self.low = low
        self.close = close
        sums, add = self.volumes, self._add
        for i, value in enumerate(volumes):
            sums[i] = add(sums[i], value)
        self.trades += trades
        self.closed = self.closed and closed


_VOLUMES = attrgetter(*VOLUME_FIELDS)


def aggregate(candles: Sequence[Candle], interval: Interval) -> Candle:
    """Combine consecutive candles (ascending) into one candle of ``interval``.

    Exactly how the exchange builds a coarser kline from finer ones (see CandleAccumulator).
    """
    if not candles:
        raise ValidationError("cannot aggregate zero candles")
    first, last = candles[0], candles[-1]
    acc: CandleAccumulator[Decimal, Decimal] = CandleAccumulator(
        operator.add,
        operator.gt,
        first.open,
        first.high,
        first.low,
        first.close,
        _VOLUMES(first),
        first.trades,
        first.is_closed,
    )
    for c in candles[1:]:
        acc.push(c.high, c.low, c.close, _VOLUMES(c), c.trades, c.is_closed)
    open_ms = interval.floor(first.open_ms)
    volume, quote_volume, taker_base, taker_quote = acc.volumes
    return Candle(
        symbol=first.symbol,
        interval=interval,
        open_time=ms_to_dt(open_ms),
        close_time=ms_to_dt(interval.close_time(open_ms)),
        open=acc.open,
        high=acc.high,
        low=acc.low,
        close=acc.close,
        volume=volume,
        quote_volume=quote_volume,
        taker_buy_base_volume=taker_base,
        taker_buy_quote_volume=taker_quote,
        trades=acc.trades,
        is_closed=acc.closed,
        source=first.source,
        event_time=last.event_time,
    )
