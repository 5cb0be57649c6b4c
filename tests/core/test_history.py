"""History logic: expected open times, gap classification, fetch grouping, writes, checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from pymongo.database import Database

from cryptobot_core.errors import ValidationError
from cryptobot_core.history import (
    INTERVAL,
    GapReason,
    HistoryBatch,
    candles_per_day,
    check_completeness,
    check_freshness,
    check_ohlc,
    check_uniqueness,
    classify_day,
    contiguous_ranges,
    day_bounds_ms,
    ensure_day_closed,
    ensure_history_indexes,
    expected_open_times,
    fetch_days,
    last_closed_day,
    missing_partitions,
    ohlc_problems,
    write_batch,
)
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, ms_to_dt
from cryptobot_core.store import HISTORICAL_15M, HISTORY_GAPS_15M, Store, candle_document

DAY = date(2025, 3, 10)
NOW_MS = day_bounds_ms(date(2025, 3, 20))[0]


def candle(symbol: str, open_ms: int, close: str = "100.5", *, closed: bool = True) -> Candle:
    """A valid 15m candle."""
    return Candle(
        symbol=symbol,
        interval=INTERVAL,
        open_time=ms_to_dt(open_ms),
        close_time=ms_to_dt(INTERVAL.close_time(open_ms)),
        open=Decimal("100"),
        high=Decimal("101"),
        low=Decimal("99"),
        close=Decimal(close),
        volume=Decimal("2.5"),
        quote_volume=Decimal("250"),
        taker_buy_base_volume=Decimal("1"),
        taker_buy_quote_volume=Decimal("100"),
        trades=7,
        is_closed=closed,
    )


class RecordingClient:
    """A stand-in exchange for pure grouping logic: serves every candle except ``holes``."""

    def __init__(self, holes: Iterable[int] = ()) -> None:
        self.holes = set(holes)
        self.requests: list[tuple[Any, ...]] = []

    def klines_many(
        self, requests: Iterable[Sequence[Any]], *, max_workers: int = 8, include_open: bool = False
    ) -> list[list[Candle]]:
        out = []
        for symbol, interval, start, end in requests:
            self.requests.append((symbol, interval, start, end))
            out.append(
                [
                    candle(symbol, t)
                    for t in interval.opens_between(start, end)
                    if t not in self.holes
                ]
            )
        return out


def test_a_day_has_96_expected_open_times_on_the_quarter_hours() -> None:
    times = expected_open_times(DAY)
    start, end = day_bounds_ms(DAY)
    assert len(times) == candles_per_day(Interval.M15) == 96
    assert times[0] == start and times[-1] == end - 15 * 60_000
    assert all(b - a == 15 * 60_000 for a, b in zip(times, times[1:], strict=False))


def test_today_is_refused_because_its_last_candle_is_still_open() -> None:
    now = day_bounds_ms(DAY)[0] + 5 * 3_600_000
    with pytest.raises(ValidationError, match="not over yet.*newest allowed is 2025-03-09"):
        ensure_day_closed(DAY, now)
    ensure_day_closed(DAY - timedelta(days=1), now)
    assert last_closed_day(now) == DAY - timedelta(days=1)


def test_classify_day_lists_missing_candles_as_exchange_outage_and_drops_open_and_foreign_ones() -> (
    None
):
    times = expected_open_times(DAY)
    served = [candle("BTCUSDT", t) for t in times if t not in (times[10], times[11])]
    served.append(candle("BTCUSDT", times[0] - 15 * 60_000))  # previous day: not this partition
    served.append(candle("ETHUSDT", times[10]))  # another symbol
    fetched = classify_day("BTCUSDT", DAY, served, NOW_MS)
    assert len(fetched.candles) == 94
    assert [g.open_time for g in fetched.gaps] == [ms_to_dt(times[10]), ms_to_dt(times[11])]
    assert {g.reason for g in fetched.gaps} == {GapReason.EXCHANGE_OUTAGE}
    # A candle not yet closed at the exchange's "now" is never history.
    now = times[50] + 60_000
    partial = classify_day("BTCUSDT", DAY, [candle("BTCUSDT", t) for t in times[:51]], now)
    assert partial.last_open == ms_to_dt(times[49])


def test_fetch_days_groups_consecutive_days_into_ranges_per_symbol() -> None:
    client = RecordingClient()
    days = [DAY + timedelta(days=i) for i in (0, 1, 2, 5)]
    parts = [(s, d) for s in ("ETHUSDT", "BTCUSDT") for d in days]
    batch = fetch_days(client, parts, NOW_MS)
    assert len(batch.days) == 8 and batch.candle_count == 8 * 96 and batch.gaps == []
    assert sorted(
        (r[0], ms_to_dt(r[2]).date(), ms_to_dt(r[3]).date()) for r in client.requests
    ) == [
        ("BTCUSDT", DAY, DAY + timedelta(days=3)),
        ("BTCUSDT", DAY + timedelta(days=5), DAY + timedelta(days=6)),
        ("ETHUSDT", DAY, DAY + timedelta(days=3)),
        ("ETHUSDT", DAY + timedelta(days=5), DAY + timedelta(days=6)),
    ]
    # Each day holds only its own candles.
    for fetched in batch.days:
        assert {c.open_time.date() for c in fetched.candles} == {fetched.day}


def test_fetch_days_refuses_an_unfinished_day_before_any_request() -> None:
    client = RecordingClient()
    with pytest.raises(ValidationError, match="not over yet"):
        fetch_days(client, [("BTCUSDT", date(2025, 3, 20))], NOW_MS)
    assert client.requests == []


def test_contiguous_ranges_split_at_holes_and_at_max_days() -> None:
    days = [DAY + timedelta(days=i) for i in [*range(0, 7), 9]]
    assert contiguous_ranges(days, 3) == [
        (DAY, DAY + timedelta(days=2)),
        (DAY + timedelta(days=3), DAY + timedelta(days=5)),
        (DAY + timedelta(days=6), DAY + timedelta(days=6)),
        (DAY + timedelta(days=9), DAY + timedelta(days=9)),
    ]
    with pytest.raises(ValidationError, match="max_days"):
        contiguous_ranges(days, 0)


def test_missing_partitions_lists_undone_days_per_symbol() -> None:
    done = {("BTCUSDT", DAY), ("ETHUSDT", DAY + timedelta(days=1))}
    got = missing_partitions(
        ["ETHUSDT", "BTCUSDT"], DAY, DAY + timedelta(days=1), lambda s, d: (s, d) in done
    )
    assert got == [("BTCUSDT", DAY + timedelta(days=1)), ("ETHUSDT", DAY)]


def test_ohlc_problems_names_each_violation() -> None:
    good = candle_document(candle("BTCUSDT", day_bounds_ms(DAY)[0]))
    assert ohlc_problems(good) == []
    bad = dict(
        good,
        high=Decimal128("99.5"),
        volume=Decimal128("-1"),
        close_time=good["close_time"] + timedelta(milliseconds=1),
    )
    problems = ohlc_problems(bad)
    assert any("low" in p and "high" in p for p in problems)
    assert "volume is negative" in problems
    assert "close_time is not open_time + 15m - 1 ms" in problems


# --- against the real store ---------------------------------------------------------


def _batch(holes: Iterable[int] = (), days: Sequence[date] = (DAY,)) -> HistoryBatch:
    return fetch_days(RecordingClient(holes), [("BTCUSDT", d) for d in days], NOW_MS)


def test_write_batch_is_idempotent_and_records_gaps(mongo_db: Database[dict[str, Any]]) -> None:
    ensure_history_indexes(Store(mongo_db))
    times = expected_open_times(DAY)
    batch = _batch(holes=[times[3]])
    first = write_batch(Store(mongo_db), batch)
    assert (first.inserted, first.unchanged, first.gaps_recorded) == (95, 0, 1)
    snapshot = list(mongo_db[HISTORICAL_15M].find({}, {"_id": 0}).sort("open_time", 1))
    again = write_batch(Store(mongo_db), batch)
    assert (again.inserted, again.unchanged) == (0, 95)
    assert list(mongo_db[HISTORICAL_15M].find({}, {"_id": 0}).sort("open_time", 1)) == snapshot
    gaps = list(mongo_db[HISTORY_GAPS_15M].find({}, {"_id": 0}))
    assert [(g["open_time"], g["reason"]) for g in gaps] == [
        (ms_to_dt(times[3]), "exchange_outage")
    ]
    # The exchange later serves the candle: the re-run fills it and forgets the gap.
    filled = write_batch(Store(mongo_db), _batch())
    assert filled.inserted == 1
    assert mongo_db[HISTORY_GAPS_15M].count_documents({}) == 0
    assert mongo_db[HISTORICAL_15M].count_documents({}) == 96


def test_checks_pass_on_complete_data_and_flag_unexplained_holes(
    mongo_db: Database[dict[str, Any]],
) -> None:
    ensure_history_indexes(Store(mongo_db))
    times = expected_open_times(DAY)
    write_batch(Store(mongo_db), _batch(holes=[times[7]]))
    scope = [("BTCUSDT", DAY)]
    ok = check_completeness(Store(mongo_db), scope)
    assert ok.passed and ok.details["exchange_gaps"] == 1 and ok.details["present"] == 95
    assert check_uniqueness(Store(mongo_db), scope).passed
    assert check_ohlc(Store(mongo_db), scope).passed
    # A candle lost on our side (not an exchange gap) fails completeness and names it.
    mongo_db[HISTORICAL_15M].delete_one({"open_time": ms_to_dt(times[20])})
    lost = check_completeness(Store(mongo_db), scope)
    assert not lost.passed
    assert lost.details["unexplained_sample"] == [f"BTCUSDT {ms_to_dt(times[20]).isoformat()}"]
    # A broken candle fails the OHLC check.
    mongo_db[HISTORICAL_15M].update_one(
        {"open_time": ms_to_dt(times[30])}, {"$set": {"low": Decimal128("100.2")}}
    )
    sanity = check_ohlc(Store(mongo_db), scope)
    assert not sanity.passed and sanity.details["violations"] == 1


def test_freshness_wants_yesterday_for_every_symbol(mongo_db: Database[dict[str, Any]]) -> None:
    ensure_history_indexes(Store(mongo_db))
    yesterday = DAY
    now = day_bounds_ms(DAY + timedelta(days=1))[0] + 3_600_000
    write_batch(Store(mongo_db), fetch_days(RecordingClient(), [("BTCUSDT", yesterday)], now))
    fresh = check_freshness(Store(mongo_db), ["BTCUSDT"], now)
    assert fresh.passed
    stale = check_freshness(Store(mongo_db), ["BTCUSDT", "ETHUSDT"], now)
    assert not stale.passed and stale.details["stale"] == ["ETHUSDT"]
    later = check_freshness(Store(mongo_db), ["BTCUSDT"], now + 86_400_000)
    assert not later.passed


def test_a_concurrent_insert_of_the_same_key_counts_as_already_stored(
    mongo_db: Database[dict[str, Any]],
) -> None:
    from cryptobot_core.store import insert_ignoring_duplicates

    ensure_history_indexes(Store(mongo_db))
    coll = mongo_db[HISTORICAL_15M]
    times = expected_open_times(DAY)
    docs = [candle_document(candle("BTCUSDT", t)) for t in times[:3]]
    coll.insert_one(dict(docs[1]))  # another writer got there first
    assert insert_ignoring_duplicates(coll, [dict(d) for d in docs]) == 2
    assert coll.count_documents({}) == 3
