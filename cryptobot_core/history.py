"""Historical candles by UTC day, at any interval that tiles a day: fetch, gap
classification, writes and checks.

A *day partition* is (symbol, UTC day) of one interval. It is complete when the store
holds every candle the exchange has for that day (96 at 15m, 1,440 at 1m), fewer only
where the exchange itself returned none (an exchange outage), and those open times are
recorded as gaps with their reason. Each interval has its own collections
(``historical_data_<interval>``) and its own asset (:func:`klines_asset_name`).
Nothing here imports Dagster; the assets in ``cryptobot_assets.history`` are thin callers.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import VOLUME_FIELDS, Candle, dt_to_ms, ms_to_dt
from cryptobot_core.store import HistoryGap, Store
from cryptobot_core.store.codec import stored_decimal
from cryptobot_core.store.series import OPEN_TIME_ONLY

log = logging.getLogger(__name__)

# The interval the features and the fresh views build on; always kept (see Settings).
INTERVAL = Interval.M15
DAY_MS = 86_400_000
# Consecutive days of one symbol are asked for as one range of at most this many days,
# which the client pages through concurrently (one /klines page is 1000 rows: 10.4 days of
# 15m), so a 180-day 15m backfill is 18 requests per symbol, not 180.
FETCH_CHUNK_DAYS = 10
# A run holds at most about this many candles per symbol in memory (30 days of 1m).
MAX_CANDLES_PER_RUN = 50_000


def candles_per_day(interval: Interval) -> int:
    """How many candles of ``interval`` a UTC day holds (96 at 15m)."""
    return DAY_MS // interval.ms


def klines_asset_name(interval: Interval) -> str:
    """The Dagster asset of history at ``interval``: ``klines_15m``, ``klines_1h``, ..."""
    return f"klines_{interval.value}"


def max_days_per_run(interval: Interval) -> int:
    """Day partitions of one symbol a run covers: 30, fewer where a day holds many candles."""
    return max(1, min(30, MAX_CANDLES_PER_RUN // candles_per_day(interval)))


class GapReason(StrEnum):
    """Why an expected candle is not stored."""

    # The exchange returned no candle for that open time although the day is over.
    EXCHANGE_OUTAGE = "exchange_outage"


class KlinesClient(Protocol):
    """The part of ``cryptobot_core.exchange.BinanceClient`` that history needs."""

    def klines_many(
        self, requests: Iterable[Sequence[Any]], *, max_workers: int = 8, include_open: bool = False
    ) -> list[list[Candle]]:
        """Closed candles of many (symbol, interval, start_ms, end_ms) ranges, one list each."""
        ...


@dataclass(frozen=True)
class DayFetch:
    """The candles the exchange returned for one (symbol, day), and the ones it did not."""

    symbol: str
    day: date
    candles: tuple[Candle, ...]
    gaps: tuple[HistoryGap, ...]

    @property
    def first_open(self) -> datetime | None:
        """Open time of the first candle, or None for an empty day."""
        return self.candles[0].open_time if self.candles else None

    @property
    def last_open(self) -> datetime | None:
        """Open time of the last candle, or None for an empty day."""
        return self.candles[-1].open_time if self.candles else None


@dataclass(frozen=True)
class HistoryBatch:
    """Every (symbol, day) of one run: what the klines asset hands to its IO manager."""

    days: tuple[DayFetch, ...]
    interval: Interval = INTERVAL

    @property
    def candle_count(self) -> int:
        """Candles over all days."""
        return sum(len(d.candles) for d in self.days)

    @property
    def gaps(self) -> list[HistoryGap]:
        """Gaps over all days."""
        return [g for d in self.days for g in d.gaps]

    def summary(self) -> dict[str, Any]:
        """Plain metadata: counts, first/last open time, and the gaps with their reason."""
        firsts = [d.first_open for d in self.days if d.first_open]
        lasts = [d.last_open for d in self.days if d.last_open]
        gaps = self.gaps
        return {
            "partitions": len(self.days),
            "candles_fetched": self.candle_count,
            "interval": self.interval.value,
            "expected_candles": len(self.days) * candles_per_day(self.interval),
            "first_open_time": min(firsts).isoformat() if firsts else None,
            "last_open_time": max(lasts).isoformat() if lasts else None,
            "missing_candles": len(gaps),
            "missing": [
                {"symbol": g.symbol, "open_time": g.open_time.isoformat(), "reason": str(g.reason)}
                for g in gaps[:200]  # the UI shows metadata inline; the full list is in the store
            ],
        }


@dataclass(frozen=True)
class HistoryWrite:
    """What writing a batch did."""

    inserted: int
    unchanged: int
    gaps_recorded: int


def day_start(day: date) -> datetime:
    """00:00 UTC of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_bounds_ms(day: date) -> tuple[int, int]:
    """[start, end) of ``day`` in epoch ms."""
    start = dt_to_ms(day_start(day))
    return start, start + DAY_MS


def parse_day(value: str) -> date:
    """A partition key ``YYYY-MM-DD`` as a date, with a clear error otherwise."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"invalid day {value!r}; expected YYYY-MM-DD") from None


def last_closed_day(now_ms: int) -> date:
    """The newest UTC day whose every candle has closed (yesterday, UTC)."""
    return ms_to_dt(now_ms).date() - timedelta(days=1)


def expected_open_times(day: date, interval: Interval = INTERVAL) -> list[int]:
    """Open times (ms) of the candles of ``day`` (96 at 15m)."""
    start, end = day_bounds_ms(day)
    return interval.opens_between(start, end)


def ensure_day_closed(day: date, now_ms: int) -> None:
    """Refuse a day that is not over: its last candle would still be open."""
    _, end = day_bounds_ms(day)
    if end > now_ms:
        raise ValidationError(
            f"day {day.isoformat()} is not over yet (exchange time {ms_to_dt(now_ms).isoformat()}); "
            f"history holds finished UTC days only, the newest allowed is "
            f"{last_closed_day(now_ms).isoformat()}"
        )


def classify_day(
    symbol: str,
    day: date,
    candles: Iterable[Candle],
    now_ms: int,
    interval: Interval = INTERVAL,
) -> DayFetch:
    """Keep the day's closed candles (sorted, de-duplicated) and list what is missing and why."""
    start, end = day_bounds_ms(day)
    by_open: dict[int, Candle] = {}
    for candle in candles:
        ms = candle.open_ms
        if candle.symbol != symbol or not start <= ms < end:
            continue
        # Never history: a candle whose close is not in the past is still open.
        if not candle.is_closed or candle.close_ms >= now_ms:
            continue
        by_open[ms] = candle
    gaps = tuple(
        HistoryGap(symbol, ms_to_dt(ms), GapReason.EXCHANGE_OUTAGE)
        for ms in expected_open_times(day, interval)
        if ms not in by_open
    )
    return DayFetch(symbol, day, tuple(by_open[k] for k in sorted(by_open)), gaps)


def _contiguous_chunks(days: Sequence[date], max_days: int) -> list[tuple[date, date]]:
    """Group sorted days into [first, last] runs of consecutive days, at most max_days long."""
    chunks: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if (
            chunks
            and day - chunks[-1][1] == timedelta(days=1)
            and ((day - chunks[-1][0]).days < max_days)
        ):
            chunks[-1] = (chunks[-1][0], day)
        else:
            chunks.append((day, day))
    return chunks


def fetch_days(
    client: KlinesClient,
    partitions: Iterable[tuple[str, date]],
    now_ms: int,
    *,
    interval: Interval = INTERVAL,
    max_workers: int = 4,
) -> HistoryBatch:
    """Fetch the candles of every (symbol, day) at ``interval``, concurrently, and classify
    the gaps.

    Consecutive days of one symbol are fetched as ranges the client pages through
    concurrently, so the request count grows with days / 10, not with days. Any exchange
    error propagates: a batch is all or nothing, so nothing partial is reported as fetched.
    """
    wanted: dict[str, list[date]] = defaultdict(list)
    for symbol, day in partitions:
        ensure_day_closed(day, now_ms)
        wanted[symbol].append(day)
    jobs = [
        (symbol, first, last)
        for symbol, days in sorted(wanted.items())
        for first, last in _contiguous_chunks(days, FETCH_CHUNK_DAYS)
    ]
    requests = [
        (symbol, interval, day_bounds_ms(first)[0], day_bounds_ms(last)[1])
        for symbol, first, last in jobs
    ]
    results = (
        client.klines_many(requests, max_workers=max_workers, include_open=False) if jobs else []
    )
    by_symbol_day: dict[tuple[str, date], list[Candle]] = defaultdict(list)
    for (symbol, _, _), candles in zip(jobs, results, strict=True):
        for candle in candles:
            by_symbol_day[(symbol, candle.open_time.date())].append(candle)
    days = tuple(
        classify_day(symbol, day, by_symbol_day.get((symbol, day), []), now_ms, interval)
        for symbol in sorted(wanted)
        for day in sorted(set(wanted[symbol]))
    )
    return HistoryBatch(days, interval)


def ensure_history_indexes(store: Store, intervals: Iterable[Interval] = (INTERVAL,)) -> None:
    """Unique (symbol, open_time) on the candles and on the gap records (idempotent)."""
    for interval in intervals:
        store.history(interval).ensure_indexes()
        # Exchange-side gaps are kept apart from the candles so the completeness check can
        # tell "the exchange has none" from "we lost one".
        store.history_gaps(interval).ensure_indexes()


def write_batch(store: Store, batch: HistoryBatch) -> HistoryWrite:
    """Insert the batch's candles once (never rewriting) and record its gaps.

    Idempotent per partition: ``CandleStore.insert_missing`` adds only the candles not stored
    yet, so a re-run changes nothing. A gap the exchange has since filled is removed, a new one added, an old one kept.
    Needs :func:`ensure_history_indexes` once beforehand (the IO manager does it per run).
    """
    candles, gaps = store.history(batch.interval), store.history_gaps(batch.interval)
    now = datetime.now(UTC)
    inserted = present = 0
    by_symbol: dict[str, list[DayFetch]] = defaultdict(list)
    for day in batch.days:
        by_symbol[day.symbol].append(day)
    for symbol, days in sorted(by_symbol.items()):
        written = candles.insert_missing([c for d in days for c in d.candles])
        inserted += written.inserted
        present += written.unchanged
        gaps.replace_days(symbol, [d.day for d in days], [g for d in days for g in d.gaps], now)
    return HistoryWrite(inserted, present, len(batch.gaps))


# ---------------------------------------------------------------------------------------
# Checks: pure functions over what the store holds for a set of (symbol, day) partitions.


@dataclass
class CheckOutcome:
    """Result of one data-quality check: passed, a one-line summary, and details."""

    passed: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def _group_days(partitions: Iterable[tuple[str, date]]) -> dict[str, list[date]]:
    out: dict[str, list[date]] = defaultdict(list)
    for symbol, day in partitions:
        out[symbol].append(day)
    return {s: sorted(set(d)) for s, d in out.items()}


def _span(days: Sequence[date]) -> tuple[datetime, datetime]:
    return day_start(days[0]), day_start(days[-1]) + timedelta(days=1)


def check_completeness(
    store: Store, partitions: Iterable[tuple[str, date]], interval: Interval = INTERVAL
) -> CheckOutcome:
    """Every expected candle of the partitions is stored or recorded as an exchange-side gap."""
    candles, gap_records = store.history(interval), store.history_gaps(interval)
    unexplained: list[str] = []
    expected = present = gaps = 0
    for symbol, days in _group_days(partitions).items():
        start, end = _span(days)
        have = {dt_to_ms(t) for t in candles.open_times(symbol, start, end)}
        gap_ms = {dt_to_ms(t) for t in gap_records.open_times(symbol, start, end)}
        for day in days:
            for ms in expected_open_times(day, interval):
                expected += 1
                if ms in have:
                    present += 1
                elif ms in gap_ms:
                    gaps += 1
                else:
                    unexplained.append(f"{symbol} {ms_to_dt(ms).isoformat()}")
    details = {
        "expected": expected,
        "present": present,
        "exchange_gaps": gaps,
        "unexplained_missing": len(unexplained),
        "unexplained_sample": unexplained[:50],
    }
    if unexplained:
        return CheckOutcome(
            False,
            f"{len(unexplained)} of {expected} expected candles are neither stored nor a known "
            f"exchange gap; re-run those partitions to fill them",
            details,
        )
    return CheckOutcome(
        True, f"{present} stored + {gaps} exchange-side gaps = {expected} expected", details
    )


def check_uniqueness(
    store: Store, partitions: Iterable[tuple[str, date]], interval: Interval = INTERVAL
) -> CheckOutcome:
    """No (symbol, open_time) is stored twice."""
    candles = store.history(interval)
    dupes: list[str] = []
    total = 0
    for symbol, days in _group_days(partitions).items():
        start, end = _span(days)
        seen: set[datetime] = set()
        for doc in candles.range_docs(symbol, start, end, fields=OPEN_TIME_ONLY):
            total += 1
            if doc["open_time"] in seen:
                dupes.append(f"{symbol} {doc['open_time'].isoformat()}")
            seen.add(doc["open_time"])
    details = {"documents": total, "duplicates": len(dupes), "duplicate_sample": dupes[:50]}
    if dupes:
        return CheckOutcome(False, f"{len(dupes)} duplicate (symbol, open_time) keys", details)
    return CheckOutcome(True, f"{total} documents, all (symbol, open_time) unique", details)


def ohlc_problems(doc: dict[str, Any], interval: Interval = INTERVAL) -> list[str]:
    """What is wrong with one stored candle document (empty list = sane)."""
    problems: list[str] = []
    o, h, low, c = (stored_decimal(doc[name]) for name in ("open", "high", "low", "close"))
    if not (low <= o <= h and low <= c <= h):
        problems.append(f"low {low} <= open {o}, close {c} <= high {h} does not hold")
    for name in VOLUME_FIELDS:
        if stored_decimal(doc[name]) < 0:
            problems.append(f"{name} is negative")
    if dt_to_ms(doc["close_time"]) != interval.close_time(dt_to_ms(doc["open_time"])):
        problems.append(f"close_time is not open_time + {interval.value} - 1 ms")
    return problems


_OHLC_FIELDS = {
    "_id": 0,
    "symbol": 1,
    "open_time": 1,
    "close_time": 1,
    "open": 1,
    "high": 1,
    "low": 1,
    "close": 1,
    "volume": 1,
    "quote_volume": 1,
    "taker_buy_base_volume": 1,
    "taker_buy_quote_volume": 1,
}
# What the features need: prices, volumes and times (no trades, no taker volumes).
_FEATURE_INPUT_FIELDS = {
    "_id": 0,
    "symbol": 1,
    "open_time": 1,
    "close_time": 1,
    "open": 1,
    "high": 1,
    "low": 1,
    "close": 1,
    "volume": 1,
    "quote_volume": 1,
}


def check_ohlc(
    store: Store, partitions: Iterable[tuple[str, date]], interval: Interval = INTERVAL
) -> CheckOutcome:
    """low <= open, close <= high; volumes >= 0; close_time = open_time + interval - 1 ms."""
    candles = store.history(interval)
    bad: list[str] = []
    total = 0
    for symbol, days in _group_days(partitions).items():
        start, end = _span(days)
        for doc in candles.range_docs(symbol, start, end, fields=_OHLC_FIELDS):
            total += 1
            for problem in ohlc_problems(doc, interval):
                bad.append(f"{symbol} {doc['open_time'].isoformat()}: {problem}")
    details = {"documents": total, "violations": len(bad), "violation_sample": bad[:50]}
    if bad:
        return CheckOutcome(False, f"{len(bad)} OHLC/volume/close_time violations", details)
    return CheckOutcome(True, f"{total} candles pass OHLC, volume and close_time rules", details)


def check_freshness(
    store: Store, symbols: Iterable[str], now_ms: int, interval: Interval = INTERVAL
) -> CheckOutcome:
    """Every symbol has its latest closed day (yesterday UTC) stored or explained by gaps."""
    day = last_closed_day(now_ms)
    start, end = day_start(day), day_start(day) + timedelta(days=1)
    stale: list[str] = []
    latest: dict[str, str | None] = {}
    candles, gap_records = store.history(interval), store.history_gaps(interval)
    for symbol in sorted(set(symbols)):
        newest = candles.latest(symbol)
        latest[symbol] = newest.open_time.isoformat() if newest else None
        stored = len(candles.open_times(symbol, start, end))
        gaps = gap_records.count(symbol, start, end)
        if stored == 0 or stored + gaps < candles_per_day(interval):
            stale.append(symbol)
    details = {"latest_closed_day": day.isoformat(), "latest_open_time": latest, "stale": stale}
    if stale:
        return CheckOutcome(
            False,
            f"latest closed day {day.isoformat()} is not fully loaded for {', '.join(stale)}",
            details,
        )
    return CheckOutcome(True, f"{day.isoformat()} loaded for every symbol", details)


def load_range(
    store: Store, symbols: Iterable[str], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Stored 15m candle documents of ``symbols`` with open_time in [start, end), sorted."""
    candles = store.history(INTERVAL)
    out: list[dict[str, Any]] = []
    for symbol in sorted(set(symbols)):
        out.extend(candles.range_docs(symbol, start, end, fields=_FEATURE_INPUT_FIELDS))
    return out


def missing_partitions(
    symbols: Iterable[str],
    start: date,
    end: date,
    done: Callable[[str, date], bool],
) -> list[tuple[str, date]]:
    """Every (symbol, day) from ``start`` to ``end`` inclusive for which ``done`` is false."""
    out: list[tuple[str, date]] = []
    for symbol in sorted(set(symbols)):
        day = start
        while day <= end:
            if not done(symbol, day):
                out.append((symbol, day))
            day += timedelta(days=1)
    return out


def contiguous_ranges(days: Iterable[date], max_days: int) -> list[tuple[date, date]]:
    """Sorted days grouped into [first, last] runs of consecutive days of at most max_days."""
    if max_days < 1:
        raise ValidationError(f"max_days must be >= 1, got {max_days}")
    return _contiguous_chunks(list(days), max_days)


def plan_runs(
    partitions: Iterable[tuple[str, date]], max_days: int
) -> list[tuple[str, date, date]]:
    """(symbol, first day, last day) of each run: consecutive days of one symbol together,
    at most ``max_days`` per run (the ranges the CLI and the catch-up sensor launch)."""
    by_symbol: dict[str, list[date]] = defaultdict(list)
    for symbol, day in partitions:
        by_symbol[symbol].append(day)
    return [
        (symbol, first, last)
        for symbol, days in by_symbol.items()
        for first, last in contiguous_ranges(days, max_days)
    ]


def plan_backfill(
    symbols: Sequence[str], days: int, *, today: date, start_date: date
) -> list[tuple[str, date]]:
    """(symbol, day) for the last ``days`` finished UTC days before ``today``, checked.

    The range must stay within the history partitions (from ``start_date``), since Dagster
    only knows partitions from there on.
    """
    if days < 1:
        raise ValidationError(f"--days must be at least 1, got {days}")
    if not symbols:
        raise ValidationError("at least one symbol is needed, e.g. --symbols BTCUSDT,ETHUSDT")
    last = today - timedelta(days=1)
    first = last - timedelta(days=days - 1)
    if first < start_date:
        allowed = (last - start_date).days + 1
        raise ValidationError(
            f"--days {days} reaches back to {first}, before the history start date {start_date}; "
            f"use --days {max(allowed, 0)} or less, or set CRYPTOBOT_HISTORY_START_DATE / "
            f"CRYPTOBOT_HISTORY_DAYS further back"
        )
    return [(s, first + timedelta(days=i)) for s in symbols for i in range(days)]
