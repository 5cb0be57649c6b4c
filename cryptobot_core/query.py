"""The read side: range queries, server-side resampling, stats, latest, summaries, gaps.

Everything the REST API answers is decided here, framework-free, so it can be tested and
reused without FastAPI. Results are plain JSON-ready dicts: decimals are exact strings
(never floats), times are ISO-8601 UTC strings with milliseconds and a ``Z``.

Every store query is bounded on ``open_time``: some MongoDB-protocol servers (SecantusDB)
materialise every match before sorting or limiting, so an unbounded ``find`` costs the
whole symbol even with ``limit(1)``. "Newest" lookups therefore probe widening windows
back from now instead of sorting the whole history.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

from bson.decimal128 import Decimal128
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database

from cryptobot_core.errors import StoreUnavailable, ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import DECIMAL_FIELDS, dec_str, dt_to_ms, ms_to_dt
from cryptobot_core.store import (
    FEATURES_15M,
    HEARTBEATS,
    HISTORICAL_15M,
    STREAMING_1M,
    store_errors,
)

DEFAULT_LIMIT = 500
# 20,000 covers six months of 15m candles (17,568) in one page.
MAX_LIMIT = 20_000
# Stats and gap listings scan every slot of their window; this bounds the work per request.
MAX_WINDOW_SLOTS = 100_000
# Intervals the API serves: 1m from the stream, 15m from history, the rest resampled.
NATIVE_INTERVALS: dict[Interval, str] = {Interval.M1: STREAMING_1M, Interval.M15: HISTORICAL_15M}
RESAMPLED_INTERVALS = (
    Interval.M30,
    Interval.H1,
    Interval.H2,
    Interval.H4,
    Interval.H6,
    Interval.H12,
    Interval.D1,
    Interval.W1,
)
SERVED_INTERVALS = (Interval.M1, Interval.M15, *RESAMPLED_INTERVALS)
DATASETS: dict[str, str] = {"1m": STREAMING_1M, "15m": HISTORICAL_15M}
FEATURE_FIELDS = (
    "log_return",
    "volatility_1h",
    "volatility_24h",
    "vwap",
    "hl_range",
    "volume_zscore",
)
# Accepted times: 1970-01-01 up to (not including) the year 3000.
MIN_MS = 0
MAX_MS = 32_503_680_000_000
# Live updates re-read this far behind the newest candle already sent.
UPDATE_LOOKBACK_MS = 3 * 60_000
# Windows (ms back from now) probed to find the newest candle, widest last (None = all).
_NEWEST_WINDOWS: tuple[int | None, ...] = (2 * 3_600_000, 2 * 86_400_000, 40 * 86_400_000, None)
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
SYMBOL_HINT = "GET /symbols lists the symbols with data"
# Only what a candle response needs: less for the store to send and for pymongo to decode.
CANDLE_PROJECTION = {
    "_id": 0,
    "open_time": 1,
    "trades": 1,
    "is_closed": 1,
    **dict.fromkeys(DECIMAL_FIELDS, 1),
}


class UnknownSymbolError(ValidationError):
    """No dataset holds any candle of this symbol."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        super().__init__(f"no data for symbol {symbol!r}")


def _now_ms() -> int:
    return dt_to_ms(datetime.now(UTC))


def iso(value: datetime | int) -> str:
    """ISO-8601 UTC with milliseconds and Z, e.g. ``2024-01-01T00:14:59.999Z``."""
    if isinstance(value, int):
        value = ms_to_dt(value)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    text = value.isoformat(timespec="milliseconds")
    # Aware UTC ends in +00:00; naive datetimes (as pymongo may return) are UTC already.
    return (text[:-6] if value.tzinfo is not None else text) + "Z"


_COEFF_MASK = (1 << 113) - 1


def dec128_str(value: Decimal128) -> str:
    """A stored Decimal128 as its exact plain string (same as dec_str, about 8x faster).

    Decodes the BID bits directly for the finite, canonical values prices and volumes
    always are; anything else (NaN, infinities, the large-coefficient form) takes the
    slow exact path.
    """
    bits = int.from_bytes(value.bid, "little")
    high = bits >> 64
    if (high >> 61) & 0b11 == 0b11:
        return dec_str(value.to_decimal())
    exponent = ((high >> 49) & 0x3FFF) - 6176
    coefficient = bits & _COEFF_MASK
    sign = "-" if high >> 63 else ""
    digits = str(coefficient)
    if exponent >= 0:
        return sign + digits + "0" * exponent if coefficient else sign + "0"
    places = -exponent
    if len(digits) <= places:
        digits = "0" * (places - len(digits) + 1) + digits
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def _dec_text(value: Any) -> str:
    return dec128_str(value) if isinstance(value, Decimal128) else dec_str(Decimal(value))


def parse_symbol(value: str) -> str:
    """Upper-case a symbol and check its shape (2-20 letters or digits, e.g. BTCUSDT)."""
    symbol = value.strip().upper()
    if not _SYMBOL_RE.match(symbol):
        raise ValidationError(f"symbol must be 2-20 letters or digits like BTCUSDT, got {value!r}")
    return symbol


def parse_time(value: str | int | None, name: str) -> int | None:
    """Parse ISO-8601 or epoch milliseconds into epoch ms (naive ISO means UTC)."""
    if value is None:
        return None
    text = str(value).strip()
    if text == "":
        return None
    allowed = (
        f"{name} must be ISO-8601 (e.g. 2024-01-01T00:00:00Z) or epoch milliseconds "
        f"(e.g. 1704067200000) between 1970-01-01 and 2999-12-31"
    )
    if re.fullmatch(r"-?\d{1,20}", text):
        ms = int(text)
    else:
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValidationError(f"{allowed}; got {text[:60]!r}") from None
        ms = dt_to_ms(parsed)
    if not MIN_MS <= ms < MAX_MS:
        raise ValidationError(f"{allowed}; got {text[:60]!r}")
    return ms


def parse_interval(value: str, allowed: Sequence[Interval] = SERVED_INTERVALS) -> Interval:
    """Parse an interval among ``allowed``, with a message that lists them."""
    names = ", ".join(i.value for i in allowed)
    try:
        interval = Interval(value)
    except ValueError:
        raise ValidationError(f"invalid interval {value!r}; allowed: {names}") from None
    if interval not in allowed:
        raise ValidationError(f"interval {value!r} is not served here; allowed: {names}")
    return interval


def parse_dataset(value: str) -> str:
    """Collection name of a dataset given as ``1m`` or ``15m``."""
    if value not in DATASETS:
        raise ValidationError(f"invalid dataset {value!r}; allowed: {', '.join(DATASETS)}")
    return DATASETS[value]


def check_range(start: int | None, end: int | None) -> None:
    """Refuse start >= end."""
    if start is not None and end is not None and start >= end:
        raise ValidationError(
            f"start ({iso(start)}) must be before end ({iso(end)}); end is exclusive"
        )


def encode_cursor(symbol: str, interval: Interval, next_open_ms: int) -> str:
    """Opaque cursor for the page that starts at ``next_open_ms``."""
    raw = f"v1|{symbol}|{interval.value}|{next_open_ms}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, symbol: str, interval: Interval) -> int:
    """Open time (ms) a cursor points at; it must come from the same symbol and interval."""
    bad = "cursor is not valid: pass the next_cursor of a previous page unchanged"
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, c_symbol, c_interval, c_ms = (
            base64.urlsafe_b64decode(padded.encode("ascii")).decode().split("|")
        )
        ms = int(c_ms)
    except (ValueError, UnicodeError, binascii.Error):
        raise ValidationError(bad) from None
    if version != "v1" or not MIN_MS <= ms < MAX_MS:
        raise ValidationError(bad)
    if c_symbol != symbol or c_interval != interval.value:
        raise ValidationError(
            f"cursor belongs to {c_symbol} {c_interval}, not {symbol} {interval.value}"
        )
    return ms


def _ceil(interval: Interval, ms: int) -> int:
    t = interval.floor(ms)
    return t if t == ms else interval.open_after(t)


def _dec(value: Any) -> Decimal:
    return Decimal(dec128_str(value)) if isinstance(value, Decimal128) else Decimal(value)


def _float_or_none(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value.to_decimal()) if isinstance(value, Decimal128) else float(value)
    return number if math.isfinite(number) else None


def candle_json(doc: Mapping[str, Any], interval: Interval) -> dict[str, Any]:
    """A stored candle document as API JSON (exact decimal strings, ISO times)."""
    open_time = doc["open_time"]
    out: dict[str, Any] = {
        "open_time": iso(open_time),
        "close_time": iso(open_time + timedelta(milliseconds=interval.ms - 1)),
    }
    for name in DECIMAL_FIELDS:
        out[name] = _dec_text(doc[name])
    out["trades"] = int(doc["trades"])
    out["is_closed"] = bool(doc.get("is_closed", True))
    return out


_SUM_FIELDS = DECIMAL_FIELDS[4:]
Parts = tuple[int, int]


def _parts(value: Any) -> Parts:
    """(signed coefficient, exponent) of a finite decimal: exact, and cheap for Decimal128."""
    if isinstance(value, Decimal128):
        bits = int.from_bytes(value.bid, "little")
        high = bits >> 64
        if (high >> 61) & 0b11 != 0b11:
            coefficient = bits & _COEFF_MASK
            return (-coefficient if high >> 63 else coefficient), ((high >> 49) & 0x3FFF) - 6176
        value = value.to_decimal()
    sign, digits, exponent = Decimal(value).as_tuple()
    if not isinstance(exponent, int):
        raise ValidationError(f"stored value {value!r} is not a finite decimal")
    coefficient = int("".join(map(str, digits))) if digits else 0
    return (-coefficient if sign else coefficient), exponent


def _fmt(parts: Parts) -> str:
    coefficient, exponent = parts
    sign = "-" if coefficient < 0 else ""
    digits = str(abs(coefficient))
    if exponent >= 0:
        return sign + digits + "0" * exponent if coefficient else "0"
    places = -exponent
    if len(digits) <= places:
        digits = "0" * (places - len(digits) + 1) + digits
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def _add(a: Parts, b: Parts) -> Parts:
    if a[1] == b[1]:
        return a[0] + b[0], a[1]
    e = min(a[1], b[1])
    return a[0] * 10 ** (a[1] - e) + b[0] * 10 ** (b[1] - e), e


def _gt(a: Parts, b: Parts) -> bool:
    if a[1] == b[1]:
        return a[0] > b[0]
    e = min(a[1], b[1])
    return a[0] * 10 ** (a[1] - e) > b[0] * 10 ** (b[1] - e)


def resample(
    docs: Iterable[Mapping[str, Any]], interval: Interval, horizon_ms: int
) -> list[dict[str, Any]]:
    """Aggregate ascending candle docs into ``interval`` buckets, as the exchange does.

    A bucket is closed when the source is final up to its end (``horizon_ms``, exclusive).
    Open/close come from the first/last candle present, high/low are the extremes and
    volumes and trades the sums; a bucket with exchange-side gaps is the aggregate of the
    candles that exist, and a bucket with none is absent. Arithmetic is exact integer
    arithmetic on (coefficient, exponent), as Decimal would do it but without its cost.
    """
    out: list[dict[str, Any]] = []

    def flush(
        bucket: int,
        first: Mapping[str, Any],
        last: Mapping[str, Any],
        high: Parts,
        low: Parts,
        sums: list[Parts],
        trades: int,
        all_closed: bool,
    ) -> None:
        row: dict[str, Any] = {
            "open_time": iso(bucket),
            "close_time": iso(interval.close_time(bucket)),
            "open": _dec_text(first["open"]),
            "high": _fmt(high),
            "low": _fmt(low),
            "close": _dec_text(last["close"]),
        }
        for name, total in zip(_SUM_FIELDS, sums, strict=True):
            row[name] = _fmt(total)
        row["trades"] = trades
        row["is_closed"] = all_closed and interval.open_after(bucket) <= horizon_ms
        out.append(row)

    it = iter(docs)
    doc = next(it, None)
    while doc is not None:
        bucket = interval.floor(dt_to_ms(doc["open_time"]))
        first = last = doc
        high, low = _parts(doc["high"]), _parts(doc["low"])
        sums = [_parts(doc[name]) for name in _SUM_FIELDS]
        trades = int(doc["trades"])
        all_closed = bool(doc.get("is_closed", True))
        end = interval.open_after(bucket)
        doc = next(it, None)
        while doc is not None and dt_to_ms(doc["open_time"]) < end:
            last = doc
            value = _parts(doc["high"])
            if _gt(value, high):
                high = value
            value = _parts(doc["low"])
            if _gt(low, value):
                low = value
            for i, name in enumerate(_SUM_FIELDS):
                sums[i] = _add(sums[i], _parts(doc[name]))
            trades += int(doc["trades"])
            all_closed = all_closed and bool(doc.get("is_closed", True))
            doc = next(it, None)
        flush(bucket, first, last, high, low, sums, trades, all_closed)
    return out


def window_stats(candles: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Return, volatility (std of log returns), high/low and volume of ascending candles."""
    if not candles:
        return {
            "count": 0,
            "open": None,
            "close": None,
            "return": None,
            "volatility": None,
            "high": None,
            "low": None,
            "volume": None,
        }
    closes = [Decimal(c["close"]) for c in candles]
    first_open = Decimal(candles[0]["open"])
    simple = float(closes[-1] / first_open - 1) if first_open else None
    logs = [
        math.log(b / a)
        for a, b in zip(map(float, closes), map(float, closes[1:]), strict=False)
        if a > 0 and b > 0
    ]
    volatility: float | None = None
    if len(logs) >= 2:
        mean = sum(logs) / len(logs)
        volatility = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    return {
        "count": len(candles),
        "open": candles[0]["open"],
        "close": candles[-1]["close"],
        "return": simple,
        "volatility": volatility,
        "high": dec_str(max(Decimal(c["high"]) for c in candles)),
        "low": dec_str(min(Decimal(c["low"]) for c in candles)),
        "volume": dec_str(sum((Decimal(c["volume"]) for c in candles), Decimal(0))),
    }


@dataclass
class CandlePage:
    """One page of candles and the cursor of the next page (None when done)."""

    symbol: str
    interval: Interval
    source_dataset: str
    candles: list[dict[str, Any]]
    next_cursor: str | None

    def to_json(self) -> dict[str, Any]:
        """The API body."""
        return {
            "symbol": self.symbol,
            "interval": self.interval.value,
            "source_dataset": self.source_dataset,
            "candles": self.candles,
            "next_cursor": self.next_cursor,
        }


T = TypeVar("T")


class _Flight:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    """Concurrent calls with the same key share one execution; the others wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}

    def do(self, key: Hashable, fn: Callable[[], T]) -> T:
        """Run ``fn`` unless a call with ``key`` is in flight; then return (or raise) its outcome."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return cast(T, flight.result)
        try:
            flight.result = fn()
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return cast(T, flight.result)


@dataclass
class MarketQuery:
    """Read-only queries over the candle, feature and heartbeat collections of one database."""

    db: Database[dict[str, Any]]
    now_ms: Callable[[], int] = _now_ms
    summary_ttl_s: float = 30.0
    _summary: tuple[float, list[dict[str, Any]]] | None = field(default=None, init=False)
    _summary_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _newest_hint: dict[tuple[str, str, bool], int] = field(default_factory=dict, init=False)
    _flights: SingleFlight = field(default_factory=lambda: SingleFlight(), init=False)

    # -- building blocks ------------------------------------------------------------------

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        with store_errors("pinging the document store"):
            self.db.command("ping")

    def _find(
        self,
        collection: str,
        symbol: str,
        lo_ms: int,
        hi_ms: int,
        *,
        closed_only: bool = False,
        projection: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {
            "symbol": symbol,
            "open_time": {
                "$gte": ms_to_dt(max(lo_ms, MIN_MS)),
                "$lt": ms_to_dt(min(hi_ms, MAX_MS)),
            },
        }
        with store_errors(f"reading {collection}"):
            cursor = (
                self.db[collection]
                .find(query, projection or {"_id": 0})
                .sort("open_time", ASCENDING)
            )
            docs = list(cursor)
        # is_closed is filtered here, not in the query: an extra predicate outside the
        # (symbol, open_time) index made SecantusDB scan the collection (~100x slower).
        if closed_only:
            return [d for d in docs if d.get("is_closed", True)]
        return docs

    def newest(
        self, collection: str, symbol: str, *, closed_only: bool = False
    ) -> dict[str, Any] | None:
        """The newest document of ``symbol`` (probing widening windows back from now).

        Concurrent callers asking the same question share one read: twenty clients polling
        ``latest`` cost the store one query at a time, not twenty queued ones. An answer is
        never older than the read in flight when the caller arrived.
        """
        key = (collection, symbol, closed_only)
        return self._flights.do(key, lambda: self._read_newest(collection, symbol, key))

    def _read_newest(
        self, collection: str, symbol: str, key: tuple[str, str, bool]
    ) -> dict[str, Any] | None:
        closed_only = key[2]
        hint = self._newest_hint.get(key)
        # The last newest seen is a lower bound while nothing is deleted: probe from there
        # first, then widening windows back from now (re-checked, so never a stale answer).
        floors: list[int | None] = [] if hint is None else [hint]
        now = self.now_ms()
        floors += [now - w if w is not None else None for w in _NEWEST_WINDOWS]
        coll = self.db[collection]
        for floor in floors:
            query: dict[str, Any] = {"symbol": symbol}
            if floor is not None:
                query["open_time"] = {"$gte": ms_to_dt(max(floor, MIN_MS))}
            with store_errors(f"reading {collection}"):
                # Only the newest one or two candles can still be open: look at a few and
                # filter here (an is_closed predicate would cost a collection scan).
                found = list(
                    coll.find(query, CANDLE_PROJECTION).sort("open_time", DESCENDING).limit(4)
                )
                if closed_only:
                    found = [d for d in found if d.get("is_closed", True)]
                    if not found and floor is None:
                        found = list(
                            coll.find({**query, "is_closed": True}, CANDLE_PROJECTION)
                            .sort("open_time", DESCENDING)
                            .limit(1)
                        )
            if found:
                self._newest_hint[key] = dt_to_ms(found[0]["open_time"])
                return found[0]
        self._newest_hint.pop(key, None)
        return None

    def has_symbol(self, symbol: str) -> bool:
        """True when any dataset holds a document of ``symbol``."""
        with store_errors("looking up a symbol"):
            return any(
                self.db[name].find_one({"symbol": symbol}, {"_id": 1}) is not None
                for name in (HISTORICAL_15M, STREAMING_1M, FEATURES_15M)
            )

    def require_symbol(self, symbol: str) -> None:
        """Raise UnknownSymbolError unless some dataset has the symbol."""
        if not self.has_symbol(symbol):
            raise UnknownSymbolError(symbol)

    # -- candles --------------------------------------------------------------------------

    def candles(
        self,
        symbol: str,
        interval: Interval,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        include_open: bool = False,
    ) -> CandlePage:
        """A page of candles with open_time in [start, end), oldest first.

        Without start (and cursor) the newest ``limit`` candles before ``end`` come back.
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        if interval not in SERVED_INTERVALS:
            parse_interval(interval.value)
        if cursor:
            start = decode_cursor(cursor, symbol, interval)
        check_range(start, end)
        native = interval in NATIVE_INTERVALS
        collection = NATIVE_INTERVALS.get(interval, HISTORICAL_15M)
        source_step = Interval.M1.ms if collection == STREAMING_1M else Interval.M15.ms
        closed_only = native and not include_open
        newest = self.newest(collection, symbol, closed_only=closed_only)
        if newest is None:
            self.require_symbol(symbol)
            return CandlePage(symbol, interval, collection, [], None)
        newest_ms = dt_to_ms(newest["open_time"])
        step = interval.ms
        next_cursor = None
        horizon = (
            MAX_MS if native else self._closed_horizon(collection, symbol, newest, source_step)
        )
        if start is None:
            ref = end if end is not None else newest_ms + source_step
            ref = min(ref, newest_ms + source_step)
            hi = interval.floor(ref - 1) + step
            if not native and not include_open:
                # The newest page ends at the last bucket the source has completed.
                hi = min(hi, interval.floor(horizon))
            lo = hi - limit * step
        else:
            lo = _ceil(interval, start)
            hi = lo + limit * step
            if end is not None:
                hi = min(hi, interval.floor(end - 1) + step)
            more = end is None or hi < end
            if more and hi <= newest_ms and hi < MAX_MS:
                next_cursor = encode_cursor(symbol, interval, hi)
        if hi <= lo:
            return CandlePage(symbol, interval, collection, [], next_cursor)
        docs = self._find(
            collection, symbol, lo, hi, closed_only=closed_only, projection=CANDLE_PROJECTION
        )
        if native:
            rows = [candle_json(doc, interval) for doc in docs]
        else:
            rows = resample(docs, interval, horizon)
            if not include_open:
                rows = [row for row in rows if row["is_closed"]]
        return CandlePage(symbol, interval, collection, rows, next_cursor)

    def _closed_horizon(
        self, collection: str, symbol: str, newest: Mapping[str, Any], step: int
    ) -> int:
        # Everything before the end of the newest closed source candle is final.
        closed = (
            newest
            if newest.get("is_closed", True)
            else self.newest(collection, symbol, closed_only=True)
        )
        return dt_to_ms(closed["open_time"]) + step if closed else MIN_MS

    def latest(self, symbol: str, interval: Interval) -> dict[str, Any]:
        """The newest stored candle (open or closed) of a native interval (1m or 15m)."""
        if interval not in NATIVE_INTERVALS:
            raise ValidationError(
                f"latest is served for intervals 1m and 15m only, got {interval.value!r}"
            )
        doc = self.newest(NATIVE_INTERVALS[interval], symbol)
        if doc is None:
            self.require_symbol(symbol)
            return {"symbol": symbol, "interval": interval.value, "candle": None}
        return {"symbol": symbol, "interval": interval.value, "candle": candle_json(doc, interval)}

    # -- stats, features, gaps ------------------------------------------------------------

    def _window(
        self,
        collection: str,
        symbol: str,
        step: int,
        start: int | None,
        end: int | None,
        default_span: int,
    ) -> tuple[int, int] | None:
        """Resolve an optional [start, end) window; None when the symbol has no data here."""
        check_range(start, end)
        if end is None:
            newest = self.newest(collection, symbol, closed_only=collection != FEATURES_15M)
            if newest is None:
                self.require_symbol(symbol)
                return None
            end = dt_to_ms(newest["open_time"]) + step
            if start is not None and start >= end:
                end = start + step
        if start is None:
            start = max(end - default_span, MIN_MS)
        slots = (end - start) // step
        if slots > MAX_WINDOW_SLOTS:
            raise ValidationError(
                f"window too large: at most {MAX_WINDOW_SLOTS} slots of {step // 60_000} min "
                f"({MAX_WINDOW_SLOTS * step // 86_400_000} days), got {slots}; narrow start/end"
            )
        return start, end

    def stats(
        self, symbol: str, interval: Interval, *, start: int | None = None, end: int | None = None
    ) -> dict[str, Any]:
        """Return, volatility, high/low and volume over closed candles in [start, end)."""
        collection = NATIVE_INTERVALS.get(interval, HISTORICAL_15M)
        source_step = Interval.M1.ms if collection == STREAMING_1M else Interval.M15.ms
        default_span = max(86_400_000, 30 * interval.ms)
        window = self._window(collection, symbol, interval.ms, start, end, default_span)
        if window is None:
            return {
                "symbol": symbol,
                "interval": interval.value,
                "start": None,
                "end": None,
                **window_stats([]),
            }
        lo, hi = window
        if (hi - lo) // source_step > MAX_WINDOW_SLOTS:
            raise ValidationError(
                f"window too large for {interval.value}: at most {MAX_WINDOW_SLOTS} source "
                f"candles ({MAX_WINDOW_SLOTS * source_step // 86_400_000} days); narrow start/end"
            )
        docs = self._find(
            collection,
            symbol,
            _ceil(interval, lo),
            hi,
            closed_only=True,
            projection=CANDLE_PROJECTION,
        )
        if interval in NATIVE_INTERVALS:
            rows = [candle_json(d, interval) for d in docs]
        else:
            horizon = self._closed_horizon(collection, symbol, docs[-1], source_step) if docs else 0
            rows = [r for r in resample(docs, interval, horizon) if r["is_closed"]]
        return {
            "symbol": symbol,
            "interval": interval.value,
            "start": iso(lo),
            "end": iso(hi),
            **window_stats(rows),
        }

    def features(
        self,
        symbol: str,
        *,
        start: int | None = None,
        end: int | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """Feature rows of ``symbol`` with open_time in [start, end), oldest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
        check_range(start, end)
        step = Interval.M15.ms
        if start is None:
            newest = self.newest(FEATURES_15M, symbol)
            if newest is None:
                self.require_symbol(symbol)
                return {"symbol": symbol, "features": []}
            ref = dt_to_ms(newest["open_time"]) + step
            hi = min(ref, end) if end is not None else ref
            lo = hi - limit * step
        else:
            hi = _ceil(Interval.M15, start) + limit * step
            if end is not None:
                hi = min(hi, end)
            lo = start
        docs = self._find(FEATURES_15M, symbol, lo, hi)
        if not docs:
            self.require_symbol(symbol)
        rows = [
            {
                "open_time": iso(doc["open_time"]),
                "close": dec_str(_dec(doc["close"])) if doc.get("close") is not None else None,
                **{name: _float_or_none(doc.get(name)) for name in FEATURE_FIELDS},
            }
            for doc in docs[-limit:]
        ]
        return {"symbol": symbol, "features": rows}

    def gaps(
        self, symbol: str, dataset: str, *, start: int | None = None, end: int | None = None
    ) -> dict[str, Any]:
        """Runs of missing closed candles in [start, end), up to the newest closed candle.

        Without start the window is the last 24 h of data, from its first candle on.
        """
        collection = parse_dataset(dataset)
        interval = Interval.M1 if collection == STREAMING_1M else Interval.M15
        step = interval.ms
        window = self._window(collection, symbol, step, start, end, 86_400_000)
        if window is None:
            return {"symbol": symbol, "dataset": dataset, "start": None, "end": None, "gaps": []}
        lo, hi = window
        newest = self.newest(collection, symbol, closed_only=True)
        horizon = dt_to_ms(newest["open_time"]) + step if newest else lo
        docs = self._find(
            collection,
            symbol,
            lo,
            min(hi, horizon),
            closed_only=True,
            projection={"_id": 0, "open_time": 1},
        )
        present = {dt_to_ms(d["open_time"]) for d in docs}
        if start is None and present:
            # By default only gaps inside the data: the window opens at its first candle.
            lo = min(present)
        runs: list[dict[str, Any]] = []
        run_start: int | None = None
        t = _ceil(interval, lo)
        stop = min(hi, horizon)
        while t < stop:
            if t not in present:
                if run_start is None:
                    run_start = t
            elif run_start is not None:
                runs.append(
                    {"start": iso(run_start), "end": iso(t), "missing": (t - run_start) // step}
                )
                run_start = None
            t += step
        if run_start is not None:
            runs.append(
                {"start": iso(run_start), "end": iso(stop), "missing": (stop - run_start) // step}
            )
        return {
            "symbol": symbol,
            "dataset": dataset,
            "start": iso(lo),
            "end": iso(hi),
            "gaps": runs,
        }

    # -- summaries and health -------------------------------------------------------------

    def symbols(self) -> list[dict[str, Any]]:
        """Every symbol with data: first/last open time and count per dataset (cached)."""
        with self._summary_lock:
            now = time.monotonic()
            if self._summary and now - self._summary[0] < self.summary_ttl_s:
                return self._summary[1]
            by_symbol: dict[str, dict[str, Any]] = {}
            for label, collection in DATASETS.items():
                pipeline = [
                    {
                        "$group": {
                            "_id": "$symbol",
                            "first": {"$min": "$open_time"},
                            "last": {"$max": "$open_time"},
                            "count": {"$sum": 1},
                        }
                    },
                ]
                with store_errors(f"summarising {collection}"):
                    groups = list(self.db[collection].aggregate(pipeline))
                for g in groups:
                    if not isinstance(g["_id"], str):
                        continue
                    entry = by_symbol.setdefault(g["_id"], {"symbol": g["_id"], "datasets": {}})
                    entry["datasets"][label] = {
                        "first_open_time": iso(g["first"]),
                        "last_open_time": iso(g["last"]),
                        "count": int(g["count"]),
                    }
            result = [by_symbol[s] for s in sorted(by_symbol)]
            self._summary = (now, result)
            return result

    def freshness(self, symbols: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Newest open time, its age and the symbol count, per dataset, over ``symbols``."""
        now = self.now_ms()
        out: dict[str, dict[str, Any]] = {}
        for collection in (HISTORICAL_15M, STREAMING_1M, FEATURES_15M):
            newest_ms: int | None = None
            count = 0
            for symbol in symbols:
                doc = self.newest(collection, symbol)
                if doc is None:
                    continue
                count += 1
                ms = dt_to_ms(doc["open_time"])
                newest_ms = ms if newest_ms is None else max(newest_ms, ms)
            out[collection] = {
                "newest_open_time": iso(newest_ms) if newest_ms is not None else None,
                "age_seconds": (now - newest_ms) / 1000 if newest_ms is not None else None,
                "symbols": count,
            }
        return out

    def heartbeats(self) -> dict[str, dict[str, Any] | None]:
        """Last heartbeat of the stream producer and consumer, with its age."""
        now = self.now_ms()
        with store_errors(f"reading {HEARTBEATS}"):
            docs = {
                d["_id"]: d
                for d in self.db[HEARTBEATS].find({"_id": {"$in": ["producer", "consumer"]}})
            }
        out: dict[str, dict[str, Any] | None] = {}
        for role in ("producer", "consumer"):
            doc = docs.get(role)
            updated = doc.get("updated_at") if doc else None
            out[role] = (
                {"updated_at": iso(updated), "age_seconds": (now - dt_to_ms(updated)) / 1000}
                if isinstance(updated, datetime)
                else None
            )
        return out

    # -- live updates ---------------------------------------------------------------------

    def updates(
        self, symbol: str, since_ms: int, seen: dict[int, datetime]
    ) -> tuple[list[dict[str, Any]], int]:
        """1m candles from shortly before ``since_ms`` whose stored version is not in ``seen``.

        ``seen`` maps open time to the ``ingested_at`` already delivered; it is updated.
        Returns the new candles (oldest first) and the ``since_ms`` for the next call.
        """
        # Look a little behind the newest candle sent: a minute's closing update can land
        # after the next minute's first one (batched, at-least-once delivery).
        lookback = since_ms - UPDATE_LOOKBACK_MS
        docs = self._find(
            STREAMING_1M,
            symbol,
            lookback,
            MAX_MS,
            projection={**CANDLE_PROJECTION, "ingested_at": 1, "event_time": 1},
        )
        fresh = []
        for doc in docs:
            open_ms = dt_to_ms(doc["open_time"])
            stamp = doc.get("ingested_at") or doc.get("event_time") or doc["open_time"]
            if seen.get(open_ms) != stamp:
                seen[open_ms] = stamp
                fresh.append(candle_json(doc, Interval.M1))
        next_since = max(seen) if seen else since_ms
        for key in [k for k in seen if k < next_since - UPDATE_LOOKBACK_MS]:
            del seen[key]
        return fresh, next_since


def store_reachable(query: MarketQuery) -> tuple[bool, str | None]:
    """(True, None) when the store answers ping, else (False, reason)."""
    try:
        query.ping()
    except StoreUnavailable as exc:
        return False, str(exc)
    return True, None
