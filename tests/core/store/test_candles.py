"""The candle store against a real MongoDB-protocol server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_core.models import DECIMAL_FIELDS, Candle, Source
from cryptobot_core.store import (
    STREAMING_1M,
    CandleStore,
    SymbolSpan,
    candle_document,
    candle_from_document,
)


def _candle(minute: int, *, close: str, event_s: int, closed: bool) -> Candle:
    open_time = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minute)
    return Candle(
        symbol="BTCUSDT",
        interval="1m",
        open_time=open_time,
        close_time=open_time + timedelta(seconds=59, milliseconds=999),
        open="100.10000000",
        high="101.00000000",
        low="99.00000000",
        close=close,
        volume="1.50000000",
        quote_volume="150.00000000",
        taker_buy_base_volume="0.50000000",
        taker_buy_quote_volume="50.00000000",
        trades=7,
        is_closed=closed,
        source=Source.WS,
        event_time=open_time + timedelta(seconds=event_s),
    )


def test_upsert_keeps_exact_decimals_and_is_idempotent(mongo_db):
    store = CandleStore(mongo_db, STREAMING_1M)
    store.ensure_indexes()
    candle = _candle(0, close="100.12345678", event_s=59, closed=True)
    first = store.upsert([candle])
    again = store.upsert([candle])
    assert (first.inserted, again.inserted, again.updated) == (1, 0, 0)
    (stored,) = store.find("BTCUSDT")
    assert stored.close == Decimal("100.12345678")
    assert stored == candle.with_source(Source.WS)


def test_older_update_never_overwrites_newer(mongo_db):
    store = CandleStore(mongo_db, STREAMING_1M)
    store.ensure_indexes()
    newer = _candle(0, close="105.00000000", event_s=40, closed=False)
    older = _candle(0, close="104.00000000", event_s=20, closed=False)
    store.upsert([newer])
    store.upsert([older])
    assert store.latest("BTCUSDT").close == Decimal("105.00000000")
    final = _candle(0, close="106.00000000", event_s=59, closed=True)
    store.upsert([final])
    store.upsert([_candle(0, close="1.00000000", event_s=70, closed=False)])
    assert store.latest("BTCUSDT").close == Decimal("106.00000000")
    assert mongo_db[STREAMING_1M].count_documents({}) == 1


def test_the_rule_holds_across_handles_and_within_one_call(mongo_db):
    # Another consumer, or this one after a restart, writes through a new handle: the rule
    # lives in the store, so it does not depend on which handle wrote first.
    first, restarted = CandleStore(mongo_db, STREAMING_1M), CandleStore(mongo_db, STREAMING_1M)
    first.ensure_indexes()
    newer = _candle(0, close="105.00000000", event_s=40, closed=False)
    assert first.upsert([newer, _candle(1, close="1.0", event_s=5, closed=False)]).inserted == 2
    older = _candle(0, close="104.00000000", event_s=20, closed=False)
    result = restarted.upsert([older, _candle(2, close="2.0", event_s=5, closed=False)])
    assert (result.inserted, result.updated, result.unchanged) == (1, 0, 1)
    assert first.find("BTCUSDT")[0].close == Decimal("105.00000000")
    final = _candle(0, close="106.00000000", event_s=59, closed=True)
    assert CandleStore(mongo_db, STREAMING_1M).upsert([final]).updated == 1
    # Two versions of one new key in one call: the newer wins whatever their order.
    late = _candle(3, close="9.00000000", event_s=50, closed=False)
    early = _candle(3, close="8.00000000", event_s=10, closed=False)
    CandleStore(mongo_db, STREAMING_1M).upsert([late, early])
    docs = {d.open_time.minute: d.close for d in first.find("BTCUSDT")}
    assert docs == {
        0: Decimal("106.00000000"),
        1: Decimal("1.0"),
        2: Decimal("2.0"),
        3: Decimal("9.00000000"),
    }
    assert mongo_db[STREAMING_1M].count_documents({}) == 4


def test_find_range_is_half_open_and_ordered(mongo_db):
    store = CandleStore(mongo_db, STREAMING_1M)
    store.upsert([_candle(m, close="100.00000000", event_s=59, closed=True) for m in (3, 1, 2, 0)])
    start = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    got = store.find("BTCUSDT", start, start + timedelta(minutes=2))
    assert [c.open_time.minute for c in got] == [1, 2]


def test_insert_missing_adds_only_new_candles_and_never_rewrites(mongo_db):
    store = CandleStore(mongo_db, STREAMING_1M)
    store.ensure_indexes()
    first = store.insert_missing(
        [_candle(m, close="100.00000000", event_s=59, closed=True) for m in (0, 1)]
    )
    changed = _candle(1, close="999.00000000", event_s=70, closed=True)
    again = store.insert_missing(
        [changed, _candle(2, close="100.00000000", event_s=59, closed=True)]
    )
    assert (first.inserted, first.unchanged) == (2, 0)
    assert (again.inserted, again.unchanged) == (1, 1)
    assert [c.close for c in store.find("BTCUSDT")] == [Decimal("100.00000000")] * 3
    assert mongo_db[STREAMING_1M].count_documents({}) == 3


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False),
        min_size=8,
        max_size=8,
    ),
    st.booleans(),
)
def test_document_mapping_round_trips_exact_decimals(values: list[Decimal], closed: bool) -> None:
    original = _candle(5, close="1", event_s=30, closed=closed)
    fields = dict(zip(DECIMAL_FIELDS, values, strict=True))
    candle = Candle(**{**{f: getattr(original, f) for f in original.__slots__}, **fields})
    back = candle_from_document(candle_document(candle))
    assert back == candle
    assert [str(getattr(back, f)) for f in DECIMAL_FIELDS] == [str(v) for v in values]


def test_symbol_spans_and_estimated_count(mongo_db):
    store = CandleStore(mongo_db, STREAMING_1M)
    store.upsert([_candle(m, close="100.00000000", event_s=59, closed=True) for m in (0, 1, 4)])
    (span,) = store.symbol_spans()
    first = datetime(2026, 1, 1, tzinfo=UTC)
    assert span == SymbolSpan("BTCUSDT", first, first + timedelta(minutes=4), 3)
    assert store.estimated_count() == 3 and store.symbols() == ["BTCUSDT"]
    assert store.open_times("BTCUSDT", first, first + timedelta(minutes=2)) == [
        first,
        first + timedelta(minutes=1),
    ]
