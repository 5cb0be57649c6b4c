"""The read side's logic: parsing, cursors, resampling, stats, newest lookups, gaps."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from typing import Any

import pytest
from bson.decimal128 import Decimal128, create_decimal128_context
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import aggregate, dec_str, ms_to_dt
from cryptobot_core.query import (
    MAX_LIMIT,
    MarketQuery,
    UnknownSymbolError,
    check_range,
    dec128_str,
    decode_cursor,
    encode_cursor,
    iso,
    parse_interval,
    parse_symbol,
    parse_time,
    resample,
    window_stats,
)
from cryptobot_core.simulator.config import SimConfig
from cryptobot_core.simulator.market import Market
from cryptobot_core.store import HISTORICAL_15M, STREAMING_1M, CandleStore

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday
MARKET = Market(SimConfig(seed=7))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T00:00:00Z", T0),
        ("2024-01-01T00:00:00.000Z", T0),
        ("2024-01-01", T0),
        ("2024-01-01T02:00:00+02:00", T0),
        ("2024-01-01T00:00:00", T0),
        (str(T0), T0),
        (" 1704067200000 ", T0),
        ("0", 0),
    ],
)
def test_parse_time_accepts_iso_and_epoch_ms(text: str, expected: int) -> None:
    assert parse_time(text, "start") == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "2024-02-30", "1e12", "-5", "3000-01-01", "99999999999999999999"]
)
def test_parse_time_refuses_with_what_is_allowed(text: str) -> None:
    with pytest.raises(ValidationError, match="start must be ISO-8601 .* or epoch milliseconds"):
        parse_time(text, "start")


def test_parse_time_none_and_empty_mean_unset() -> None:
    assert parse_time(None, "end") is None and parse_time("", "end") is None


def test_symbols_and_intervals() -> None:
    assert parse_symbol("btcusdt") == "BTCUSDT"
    with pytest.raises(ValidationError, match="2-20 letters or digits"):
        parse_symbol("BTC/USDT")
    assert parse_interval("4h") is Interval.H4
    with pytest.raises(ValidationError, match="allowed: 1m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d, 1w"):
        parse_interval("3m")
    with pytest.raises(ValidationError, match="must be before end"):
        check_range(T0, T0)


def test_cursor_round_trip_and_refusals() -> None:
    cursor = encode_cursor("BTCUSDT", Interval.H1, T0)
    assert decode_cursor(cursor, "BTCUSDT", Interval.H1) == T0
    with pytest.raises(ValidationError, match="belongs to BTCUSDT 1h"):
        decode_cursor(cursor, "BTCUSDT", Interval.M15)
    for bad in ("", "x", "!!!!", encode_cursor("BTCUSDT", Interval.H1, T0)[:-3]):
        with pytest.raises(ValidationError, match="cursor"):
            decode_cursor(bad, "BTCUSDT", Interval.H1)


def docs_of(candles: list[Any]) -> list[dict[str, Any]]:
    return [c.to_document() for c in candles]


@pytest.mark.parametrize("interval", [Interval.M15, Interval.H1, Interval.H4, Interval.D1])
def test_resampling_minutes_gives_the_exchange_candle(interval: Interval) -> None:
    minutes = MARKET.klines(
        "BTCUSDT", Interval.M1, T0, T0 + 86_400_000 - 1, 1000, now_ms=T0 + 2 * 86_400_000
    )
    minutes += MARKET.klines(
        "BTCUSDT",
        Interval.M1,
        T0 + 1000 * 60_000,
        T0 + 86_400_000 - 1,
        1000,
        now_ms=T0 + 2 * 86_400_000,
    )
    assert len(minutes) == 1440
    got = resample(docs_of(minutes), interval, horizon_ms=T0 + 86_400_000)
    expected = MARKET.klines(
        "BTCUSDT", interval, T0, T0 + 86_400_000 - 1, 1000, now_ms=T0 + 2 * 86_400_000
    )
    assert [
        (
            g["open_time"],
            g["open"],
            g["high"],
            g["low"],
            g["close"],
            g["volume"],
            g["quote_volume"],
            g["trades"],
        )
        for g in got
    ] == [
        (
            iso(e.open_ms),
            dec_str(e.open),
            dec_str(e.high),
            dec_str(e.low),
            dec_str(e.close),
            dec_str(e.volume),
            dec_str(e.quote_volume),
            e.trades,
        )
        for e in expected
    ]
    assert all(g["is_closed"] for g in got)


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 95), min_size=1))
def test_resampling_with_gaps_aggregates_what_exists(keep: set[int]) -> None:
    quarters = MARKET.klines(
        "ETHUSDT", Interval.M15, T0, T0 + 86_400_000 - 1, 1000, now_ms=T0 + 2 * 86_400_000
    )
    present = [q for i, q in enumerate(quarters) if i in keep]
    got = resample(docs_of(present), Interval.H4, horizon_ms=T0 + 12 * 3_600_000)
    buckets: dict[int, list[Any]] = {}
    for q in present:
        buckets.setdefault(Interval.H4.floor(q.open_ms), []).append(q)
    assert [g["open_time"] for g in got] == [iso(b) for b in sorted(buckets)]
    for g, b in zip(got, sorted(buckets), strict=True):
        agg = aggregate(buckets[b], Interval.H4)
        assert g["high"] == dec_str(agg.high) and g["low"] == dec_str(agg.low)
        assert Decimal(g["volume"]) == agg.volume and g["trades"] == agg.trades
        # Complete only when the source is final up to the bucket's end.
        assert g["is_closed"] == (b + Interval.H4.ms <= T0 + 12 * 3_600_000)


def test_window_stats() -> None:
    rows = [
        {"open": "100", "close": c, "high": "130", "low": "90", "volume": "1.5"}
        for c in ("110", "121", "108.9")
    ]
    stats = window_stats(rows)
    assert stats["count"] == 3 and stats["open"] == "100" and stats["close"] == "108.9"
    assert stats["return"] == pytest.approx(0.089)
    logs = [math.log(1.1), math.log(0.9)]
    mean = sum(logs) / 2
    assert stats["volatility"] == pytest.approx(math.sqrt(sum((x - mean) ** 2 for x in logs)))
    assert stats["volume"] == "4.5" and stats["high"] == "130" and stats["low"] == "90"
    assert window_stats([])["count"] == 0
    assert window_stats(rows[:2])["volatility"] is None  # one return has no spread


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
    return MarketQuery(mongo_db, now_ms=lambda: start + 2 * 3_600_000)


def test_newest_finds_the_last_candle_through_windows_and_hint(query: MarketQuery) -> None:
    start = T0 + 2 * 86_400_000
    for _ in range(2):  # second call goes through the remembered hint
        newest = query.newest(STREAMING_1M, "BTCUSDT")
        assert newest is not None and newest["open_time"] == ms_to_dt(start + 59 * 60_000)
    newest15 = query.newest(HISTORICAL_15M, "BTCUSDT")
    assert newest15 is not None
    assert newest15["open_time"] == ms_to_dt(T0 + 2 * 86_400_000 - 900_000)
    assert query.newest(HISTORICAL_15M, "ETHUSDT") is None
    # A reset store is noticed: the hint is re-checked, never trusted.
    query.db[STREAMING_1M].delete_many({})
    assert query.newest(STREAMING_1M, "BTCUSDT") is None


def test_candles_pages_and_unknown_symbols(query: MarketQuery) -> None:
    page = query.candles("BTCUSDT", Interval.M15, start=T0, limit=100)
    assert len(page.candles) == 99  # one candle missing in the first 100 slots
    assert page.next_cursor is not None
    rest = query.candles("BTCUSDT", Interval.M15, cursor=page.next_cursor, limit=MAX_LIMIT)
    assert len(rest.candles) == 92 and rest.next_cursor is None
    days = query.candles("BTCUSDT", Interval.D1, start=T0)
    assert [c["open_time"] for c in days.candles] == [iso(T0), iso(T0 + 86_400_000)]
    with pytest.raises(UnknownSymbolError):
        query.candles("XYZUSDT", Interval.M15)
    with pytest.raises(ValidationError, match="limit"):
        query.candles("BTCUSDT", Interval.M15, limit=MAX_LIMIT + 1)


def test_gaps_and_window_limit(query: MarketQuery) -> None:
    gaps = query.gaps("BTCUSDT", "15m", start=T0, end=T0 + 86_400_000)
    assert gaps["gaps"] == [
        {"start": iso(T0 + 9_000_000), "end": iso(T0 + 9_900_000), "missing": 1}
    ]
    with pytest.raises(ValidationError, match="window too large"):
        query.gaps("BTCUSDT", "1m", start=0, end=T0)
    assert query.gaps("BTCUSDT", "1m")["gaps"] == []


@settings(max_examples=300, deadline=None)
@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: abs(d.adjusted()) < 60
    )
)
def test_fast_decimal128_strings_equal_dec_str(value: Decimal) -> None:
    with localcontext(create_decimal128_context()) as ctx:
        stored = Decimal128(ctx.create_decimal(value))
    assert dec128_str(stored) == dec_str(stored.to_decimal())


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "0E-8",
        "0.00000000",
        "60123.45000000",
        "1E+3",
        "-42.5",
        "0.00000001",
        "NaN",
        "Infinity",
        "-Infinity",
    ],
)
def test_fast_decimal128_strings_on_edge_values(text: str) -> None:
    stored = Decimal128(text)
    assert dec128_str(stored) == dec_str(stored.to_decimal())


def test_updates_deliver_new_minutes_and_late_rewrites(query: MarketQuery) -> None:
    from datetime import UTC, datetime

    start = T0 + 2 * 86_400_000
    last = start + 59 * 60_000
    seen: dict[int, Any] = {}
    first, since = query.updates("BTCUSDT", last, seen)
    assert since == last and first[-1]["open_time"] == iso(last)
    assert query.updates("BTCUSDT", since, seen) == ([], last)  # nothing new
    # A new minute lands, and the previous minute is rewritten late (its closing update).
    nxt = MARKET.klines(
        "BTCUSDT", Interval.M1, last + 60_000, last + 60_000, 1, now_ms=last + 90_000
    )
    CandleStore(query.db, STREAMING_1M).upsert(nxt)
    query.db[STREAMING_1M].update_one(
        {"symbol": "BTCUSDT", "open_time": ms_to_dt(last)},
        {"$set": {"ingested_at": datetime.now(UTC)}},
    )
    fresh, since = query.updates("BTCUSDT", since, seen)
    assert [c["open_time"] for c in fresh] == [iso(last), iso(last + 60_000)]
    assert fresh[-1]["is_closed"] is False and since == last + 60_000


def test_single_flight_shares_one_read_between_concurrent_callers() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from cryptobot_core.query import SingleFlight

    flights = SingleFlight()
    release, calls = threading.Event(), []

    def read() -> int:
        calls.append(1)
        release.wait(5)
        return len(calls)

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(flights.do, "BTCUSDT", read) for _ in range(8)]
        while not calls:
            threading.Event().wait(0.01)
        threading.Event().wait(0.1)  # let the others join the flight in progress
        release.set()
        results = [f.result(5) for f in futures]
    assert results == [1] * 8 and len(calls) == 1
    assert flights.do("BTCUSDT", read) == 2  # a later call reads again


def test_single_flight_hands_the_error_to_every_waiter() -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from cryptobot_core.errors import StoreUnavailable
    from cryptobot_core.query import SingleFlight

    flights = SingleFlight()
    started, release = threading.Event(), threading.Event()

    def failing() -> int:
        started.set()
        release.wait(5)
        raise StoreUnavailable("document store unreachable")

    with ThreadPoolExecutor(4) as pool:
        leader = pool.submit(flights.do, "k", failing)
        started.wait(5)
        followers = [pool.submit(flights.do, "k", failing) for _ in range(3)]
        threading.Event().wait(0.1)
        release.set()
        for future in [leader, *followers]:
            with pytest.raises(StoreUnavailable):
                future.result(5)
