"""MarketQuery against the real store: newest lookups, pages, gaps, live updates."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import dt_to_ms, ms_to_dt
from cryptobot_core.query import MAX_LIMIT, MAX_WINDOW_SLOTS, MarketQuery, UnknownSymbolError
from cryptobot_core.query.market import LATEST_REUSE_S
from cryptobot_core.query.rows import GapRun, iso
from cryptobot_core.simulator.config import SimConfig
from cryptobot_core.simulator.market import Market
from cryptobot_core.store import HISTORICAL_15M, STREAMING_1M, CandleStore, Store

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
MARKET = Market(SimConfig(seed=7))


@pytest.fixture
def query(mongo_db: Any) -> MarketQuery:
    """Two days of 15m history and an hour of 1m stream, 'now' an hour after the stream."""
    history = CandleStore(mongo_db, HISTORICAL_15M)
    history.ensure_indexes()
    quarters = MARKET.klines(
        "BTCUSDT", Interval.M15, T0, T0 + 2 * 86_400_000 - 1, 1000, now_ms=T0 + 3 * 86_400_000
    )
    history.insert_missing([q for q in quarters if q.open_ms != T0 + 900_000 * 10])
    stream = CandleStore(mongo_db, STREAMING_1M)
    stream.ensure_indexes()
    start = T0 + 2 * 86_400_000
    stream.upsert(
        MARKET.klines(
            "BTCUSDT", Interval.M1, start, start + 3_600_000 - 1, 60, now_ms=start + 3_600_000
        )
    )
    return MarketQuery(Store(mongo_db), now_ms=lambda: start + 2 * 3_600_000)


def test_newest_finds_the_last_candle_through_windows_and_hint(
    query: MarketQuery, mongo_db: Any
) -> None:
    start = T0 + 2 * 86_400_000
    for _ in range(2):  # second call goes through the remembered hint
        assert query.newest_open_ms(STREAMING_1M, "BTCUSDT") == start + 59 * 60_000
    assert query.newest_open_ms(HISTORICAL_15M, "BTCUSDT") == T0 + 2 * 86_400_000 - 900_000
    assert query.newest_open_ms(HISTORICAL_15M, "ETHUSDT") is None
    # A reset store is noticed: the hint is re-checked, never trusted.
    mongo_db[STREAMING_1M].delete_many({})
    assert query.newest_open_ms(STREAMING_1M, "BTCUSDT") is None


def test_candles_pages_and_unknown_symbols(query: MarketQuery) -> None:
    page = query.candles("BTCUSDT", Interval.M15, start=T0, limit=100)
    assert len(page.candles) == 99  # one candle missing in the first 100 slots
    assert page.next_cursor is not None
    rest = query.candles("BTCUSDT", Interval.M15, cursor=page.next_cursor, limit=MAX_LIMIT)
    assert len(rest.candles) == 92 and rest.next_cursor is None
    days = query.candles("BTCUSDT", Interval.D1, start=T0)
    assert [c.open_time for c in days.candles] == [iso(T0), iso(T0 + 86_400_000)]
    with pytest.raises(UnknownSymbolError):
        query.candles("XYZUSDT", Interval.M15)
    with pytest.raises(ValidationError, match="limit"):
        query.candles("BTCUSDT", Interval.M15, limit=MAX_LIMIT + 1)


def test_gaps_and_window_limit(query: MarketQuery) -> None:
    gaps = query.gaps("BTCUSDT", "15m", start=T0, end=T0 + 86_400_000)
    assert gaps.gaps == [GapRun(iso(T0 + 9_000_000), iso(T0 + 9_900_000), 1)]
    # An oversized window is narrowed to its newest MAX_WINDOW_SLOTS slots, and says so.
    wide = query.gaps("BTCUSDT", "1m", start=0, end=T0)
    assert (wide.start, wide.end) == (iso(T0 - MAX_WINDOW_SLOTS * 60_000), iso(T0))
    assert wide.gaps == [GapRun(wide.start, wide.end, MAX_WINDOW_SLOTS)]
    assert query.gaps("BTCUSDT", "1m").gaps == []
    # start >= end is the empty window: nothing missing in it.
    assert query.gaps("BTCUSDT", "15m", start=T0, end=T0).gaps == []


def test_updates_deliver_new_minutes_and_late_rewrites(query: MarketQuery, mongo_db: Any) -> None:
    from datetime import UTC, datetime

    start = T0 + 2 * 86_400_000
    last = start + 59 * 60_000
    seen: dict[int, Any] = {}
    first, since = query.updates("BTCUSDT", last, seen)
    assert since == last and first[-1].open_time == iso(last)
    assert query.updates("BTCUSDT", since, seen) == ([], last)  # nothing new
    # A new minute lands, and the previous minute is rewritten late (its closing update).
    nxt = MARKET.klines(
        "BTCUSDT", Interval.M1, last + 60_000, last + 60_000, 1, now_ms=last + 90_000
    )
    query.store.stream.upsert(nxt)
    mongo_db[STREAMING_1M].update_one(
        {"symbol": "BTCUSDT", "open_time": ms_to_dt(last)},
        {"$set": {"ingested_at": datetime.now(UTC)}},
    )
    fresh, since = query.updates("BTCUSDT", since, seen)
    assert [c.open_time for c in fresh] == [iso(last), iso(last + 60_000)]
    assert fresh[-1].is_closed is False and since == last + 60_000


def test_latest_is_reused_briefly_and_never_older_than_its_bound(
    query: MarketQuery, mongo_db: Any
) -> None:
    """Readers poll latest while the open minute is rewritten every 20 ms.

    Every answer must reflect every version stored more than 250 ms before it arrived (the
    API's promise); answers read less than LATEST_REUSE_S ago are reused without the store.
    """
    stream = CandleStore(mongo_db, STREAMING_1M)
    start = T0 + 2 * 86_400_000
    (last,) = MARKET.klines(
        "BTCUSDT",
        Interval.M1,
        start + 59 * 60_000,
        start + 60 * 60_000 - 1,
        1,
        now_ms=start + 2 * 3_600_000,
    )
    minute = last.open_time + timedelta(minutes=1)
    stored: list[float] = []  # when version k + 1's write returned
    answers: list[tuple[float, int]] = []  # (arrival, versions reflected)
    reused = 0
    stop = threading.Event()

    def write() -> None:
        while not stop.wait(0.02):
            k = len(stored) + 1
            stream.upsert(
                [
                    replace(
                        last,
                        open_time=minute,
                        close_time=minute + timedelta(seconds=60) - timedelta(milliseconds=1),
                        is_closed=False,
                        trades=k,
                        event_time=minute + timedelta(milliseconds=k),
                    )
                ]
            )
            stored.append(time.perf_counter())

    def read() -> None:
        nonlocal reused
        while not stop.is_set():
            answer = query.recent_latest("BTCUSDT", Interval.M1)
            if answer is None:
                answer = query.latest("BTCUSDT", Interval.M1)
            else:
                reused += 1
            assert answer.candle is not None
            fresh = answer.candle.open_time == iso(dt_to_ms(minute))
            answers.append((time.perf_counter(), answer.candle.trades if fresh else 0))

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    lags = [arrival - stored[k] for arrival, k in answers if k < len(stored)]
    assert any(k > 0 for _, k in answers)  # the rewritten minute was seen
    assert len(stored) > 5 and reused > 0 and len(answers) > reused
    assert max(lags) <= 0.25, f"an answer missed a version stored {max(lags):.3f} s before"
    time.sleep(LATEST_REUSE_S)
    final = query.latest("BTCUSDT", Interval.M1).candle
    assert final is not None and final.trades == len(stored)
