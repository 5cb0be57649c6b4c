"""Request parameters of the read side: times, intervals, datasets, limits, cursors.

Symbols follow the one rule in ``cryptobot_core.exchange.exchange_info.normalize_symbol``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import dt_to_ms
from cryptobot_core.store.names import HISTORICAL_15M, STREAMING_1M

DEFAULT_LIMIT = 500
# 20,000 covers six months of 15m candles (17,568) in one page.
MAX_LIMIT = 20_000
# Stats and gap listings scan every slot of their window; this bounds the work per request.
MAX_WINDOW_SLOTS = 100_000
# A CSV or Parquet range reads at most this many source candles per request (about 1.9 years
# of 1m, 28 years of 15m); `cryptobot export` has no such bound.
MAX_EXPORT_SLOTS = 1_000_000
# Intervals the API serves: 1m from the stream and 15m from history as stored; the others
# resampled from the finest stored interval that divides them: 3m and 5m from the 1m
# stream, the rest from 15m history (and the 1m stream past its end).
NATIVE_INTERVALS: dict[Interval, str] = {Interval.M1: STREAMING_1M, Interval.M15: HISTORICAL_15M}
RESAMPLED_INTERVALS = (
    Interval.M3,
    Interval.M5,
    Interval.M30,
    Interval.H1,
    Interval.H2,
    Interval.H4,
    Interval.H6,
    Interval.H8,
    Interval.H12,
    Interval.D1,
    Interval.D3,
    Interval.W1,
)
SERVED_INTERVALS = tuple(
    sorted((Interval.M1, Interval.M15, *RESAMPLED_INTERVALS), key=lambda i: i.ms)
)


def source_collection(interval: Interval) -> str:
    """The stored collection ``interval`` is served from: its own, or the finest that divides it."""
    if interval in NATIVE_INTERVALS:
        return NATIVE_INTERVALS[interval]
    return HISTORICAL_15M if interval.ms % Interval.M15.ms == 0 else STREAMING_1M


DATASETS: dict[str, str] = {"1m": STREAMING_1M, "15m": HISTORICAL_15M}
# Stored times lie in 1970-01-01 up to (not including) the year 3000; a time outside is
# clamped to these bounds (no data lies beyond them), so every well-formed time is answered.
MIN_MS = 0
MAX_MS = 32_503_680_000_000
# Epoch milliseconds as the API takes them (times and cursors): digits only.
EPOCH_MS_PATTERN = r"^[0-9]{1,20}$"
SYMBOL_HINT = "GET /symbols lists the symbols with data"


def parse_time(value: str | int | None, name: str) -> int | None:
    """Parse an ISO-8601 time or epoch milliseconds into epoch ms, clamped to the stored range.

    Naive ISO means UTC. A time before 1970 or from the year 3000 on is clamped to those
    bounds: no candle lies outside them, so the answer is the same as for the bound.
    """
    if value is None:
        return None
    text = str(value).strip()
    if text == "":
        return None
    if re.fullmatch(EPOCH_MS_PATTERN, text):
        return min(max(int(text), MIN_MS), MAX_MS)
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValidationError(
            f"{name} must be ISO-8601 (e.g. 2024-01-01T00:00:00Z) or epoch milliseconds "
            f"(e.g. 1704067200000); got {text[:60]!r}"
        ) from None
    try:
        ms = dt_to_ms(parsed)
    except OverflowError:
        # A valid time whose offset moves it out of years 1..9999 (0001-01-01T00:00+01:00).
        return MIN_MS if parsed.year < 1970 else MAX_MS
    return min(max(ms, MIN_MS), MAX_MS)


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


def is_empty_range(start: int | None, end: int | None) -> bool:
    """True when [start, end) holds no time at all (start >= end): the answer is empty."""
    return start is not None and end is not None and start >= end


def encode_cursor(next_open_ms: int) -> str:
    """The cursor of the page that starts at ``next_open_ms``: that time in epoch ms."""
    return str(next_open_ms)


def decode_cursor(cursor: str) -> int:
    """Open time (ms) a cursor points at, clamped like any other time."""
    if not re.fullmatch(EPOCH_MS_PATTERN, cursor.strip()):
        raise ValidationError(
            "cursor must be the next_cursor of a previous page: an open time in epoch "
            f"milliseconds; got {cursor[:60]!r}"
        )
    return min(max(int(cursor), MIN_MS), MAX_MS)
