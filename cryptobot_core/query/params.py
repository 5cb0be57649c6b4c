"""Request parameters of the read side: times, intervals, datasets, limits, cursors.

Symbols follow the one rule in ``cryptobot_core.exchange.exchange_info.normalize_symbol``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from datetime import datetime

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import dt_to_ms
from cryptobot_core.query.rows import iso
from cryptobot_core.store.names import HISTORICAL_15M, STREAMING_1M

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
# Accepted times: 1970-01-01 up to (not including) the year 3000.
MIN_MS = 0
MAX_MS = 32_503_680_000_000
SYMBOL_HINT = "GET /symbols lists the symbols with data"


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
            # A valid ISO time whose offset moves it out of years 1..9999 (0001-01-01T00:00+01:00)
            # overflows in the conversion to UTC: out of range, like any other.
            ms = dt_to_ms(datetime.fromisoformat(text.replace("z", "Z")))
        except (ValueError, OverflowError):
            raise ValidationError(f"{allowed}; got {text[:60]!r}") from None
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


def check_limit(limit: int) -> None:
    """Refuse a page size outside 1..MAX_LIMIT."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")


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
