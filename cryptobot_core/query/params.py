"""Request parameters of the read side: times, intervals, datasets, limits, cursors.

Symbols follow the one rule in ``cryptobot_core.exchange.exchange_info.normalize_symbol``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import dt_to_ms
from cryptobot_core.store.names import STREAMING_1M, history_collection

DEFAULT_LIMIT = 500
# 20,000 covers six months of 15m candles (17,568) in one page.
MAX_LIMIT = 20_000
# Stats and gap listings scan every slot of their window; this bounds the work per request.
MAX_WINDOW_SLOTS = 100_000
# A CSV or Parquet range reads at most this many source candles per request (about 1.9 years
# of 1m, 28 years of 15m); `cryptobot export` has no such bound.
MAX_EXPORT_SLOTS = 1_000_000
# The history intervals when none are configured; MarketQuery takes the configured ones.
DEFAULT_HISTORY = (Interval.M15,)


@dataclass(frozen=True, slots=True)
class Source:
    """A stored series one served interval is built from: its collection and granularity."""

    collection: str
    interval: Interval

    @property
    def is_history(self) -> bool:
        """True for a history collection (finished days, the 1m stream past its end)."""
        return self.collection != STREAMING_1M


def source_for(interval: Interval, history: Sequence[Interval] = DEFAULT_HISTORY) -> Source:
    """Where ``interval`` is served from, given the history intervals kept.

    As stored when it is kept as history, or when it is 1m (the stream). Otherwise resampled
    from the coarsest history interval that divides it: every candidate gives the same exact
    candles, and the coarsest reads the fewest documents (finer intervals are also usually
    kept for shorter spans). The 1m stream covers what no history interval divides (3m, 5m
    with the default 15m history). A history series continues with the 1m stream past its
    end (see ``MarketQuery``).
    """
    if interval in history:
        return Source(history_collection(interval), interval)
    if interval is Interval.M1:
        return Source(STREAMING_1M, Interval.M1)
    dividing = [h for h in history if h.divides(interval)]
    if dividing:
        coarsest = max(dividing, key=lambda h: h.ms)
        return Source(history_collection(coarsest), coarsest)
    if Interval.M1.divides(interval):
        return Source(STREAMING_1M, Interval.M1)
    served = ", ".join(i.value for i in served_intervals(history))
    raise ValidationError(
        f"interval {interval.value!r} is served only when it is kept as history: add it to "
        f"CRYPTOBOT_HISTORY_INTERVALS and backfill it; served here: {served}"
    )


def served_intervals(history: Sequence[Interval] = DEFAULT_HISTORY) -> tuple[Interval, ...]:
    """Every Binance interval the API serves with these history intervals, finest first."""
    return tuple(
        i for i in Interval if i in history or any(h.divides(i) for h in (*history, Interval.M1))
    )


def source_collection(interval: Interval, history: Sequence[Interval] = DEFAULT_HISTORY) -> str:
    """The stored collection ``interval`` is served from (see :func:`source_for`)."""
    return source_for(interval, history).collection


def history_datasets(history: Sequence[Interval] = DEFAULT_HISTORY) -> dict[str, str]:
    """Dataset names (as /gaps and /symbols use them) and their collections: the 1m stream,
    then every history interval (a 1m history is listed under its collection's name)."""
    out = {Interval.M1.value: STREAMING_1M}
    for interval in history:
        name = history_collection(interval) if interval is Interval.M1 else interval.value
        out[name] = history_collection(interval)
    return out


SERVED_INTERVALS = served_intervals()
# Served by resampling with the default history: everything but 1m and 15m.
RESAMPLED_INTERVALS = tuple(i for i in SERVED_INTERVALS if i not in (Interval.M1, *DEFAULT_HISTORY))
DATASETS: dict[str, str] = history_datasets()
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
    if value is None or value == "":
        return None  # not given (an HTML form sends an empty field)
    text = str(value).strip()
    if text == "":
        # Blank but not empty: the schema allows only "" for "not given", so say so.
        raise ValidationError(
            f"{name} must be ISO-8601 (e.g. 2024-01-01T00:00:00Z), epoch milliseconds "
            f"(e.g. 1704067200000) or empty; got only whitespace {str(value)[:20]!r}"
        )
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


def parse_dataset(value: str, datasets: Mapping[str, str] = DATASETS) -> str:
    """Collection name of a dataset given as ``1m``, ``15m`` or another history interval."""
    if value not in datasets:
        raise ValidationError(f"invalid dataset {value!r}; allowed: {', '.join(datasets)}")
    return datasets[value]


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
