"""Pure market data: determinism, aggregation, listing, outages, open candle, magnitudes."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.models import aggregate
from cryptobot_core.simulator import (
    Market,
    SimClock,
    SimConfig,
    SymbolListing,
    default_symbols,
    generated_symbols,
)
from cryptobot_core.simulator.market import DAY_MS
from tests.fixtures.simulator import SIM_NOW_MS

NOW = SIM_NOW_MS
H = 60 * MINUTE_MS


def market(**kw: object) -> Market:
    kw.setdefault("clock", SimClock.fixed(NOW))
    return Market(SimConfig(**kw))  # type: ignore[arg-type]


def all_minutes(mk: Market, symbol: str, start: int, end: int) -> list:  # type: ignore[type-arg]
    """Every 1m candle in [start, end], paging like a client."""
    out = []
    while True:
        page = mk.klines(symbol, "1m", start, end, 1000)
        out += page
        if len(page) < 1000:
            return out
        start = page[-1].open_ms + MINUTE_MS


@pytest.fixture(scope="module")
def m() -> Market:
    return market()


def test_same_query_gives_same_bytes_in_two_markets() -> None:
    a, b = market(), market()
    for sym, iv in [("BTCUSDT", "1m"), ("ETHUSDT", "15m"), ("DOGEUSDT", "1d"), ("XRPUSDT", "1w")]:
        assert a.klines_json(sym, iv, NOW - 30 * DAY_MS, limit=1000) == b.klines_json(
            sym, iv, NOW - 30 * DAY_MS, limit=1000
        )


def test_seed_changes_the_data_and_symbols_differ() -> None:
    a, b = market(seed=1), market(seed=2)
    assert a.minute("BTCUSDT", NOW - H) != b.minute("BTCUSDT", NOW - H)
    # Different symbols are independent walks, not the same path rescaled.
    btc = [c.close / c.open for c in a.klines("BTCUSDT", "1h", limit=50)]
    eth = [c.close / c.open for c in a.klines("ETHUSDT", "1h", limit=50)]
    assert btc != eth


def test_minute_is_o1_and_agrees_with_klines(m: Market) -> None:
    t = Interval.M1.floor(NOW) - 10 * MINUTE_MS
    far_future_from_listing = m.minute("BTCUSDT", t)
    assert far_future_from_listing is not None
    assert m.klines("BTCUSDT", "1m", t, t, 1)[0] == far_future_from_listing


def test_open_of_a_minute_is_previous_close_unless_no_trades(m: Market) -> None:
    rows = m.klines("BTCUSDT", "1m", NOW - 2 * DAY_MS, limit=1000)
    for prev, cur in zip(rows, rows[1:], strict=False):
        if prev.volume > 0:
            assert cur.open == prev.close


def test_realistic_magnitudes_and_eight_decimals(m: Market) -> None:
    btc = m.klines_rows("BTCUSDT", "1d", limit=30)
    eth = m.klines_rows("ETHUSDT", "1d", limit=30)
    assert all(10_000 < float(r[4]) < 200_000 for r in btc)
    assert all(1_000 < float(r[4]) < 10_000 for r in eth)
    for row in btc + eth:
        assert len(row) == 12 and row[11] == "0"
        for i in (1, 2, 3, 4, 5, 7, 9, 10):
            assert isinstance(row[i], str) and len(row[i].split(".")[1]) == 8
        assert isinstance(row[0], int) and isinstance(row[6], int) and isinstance(row[8], int)
        assert Decimal(row[3]) <= min(Decimal(row[1]), Decimal(row[4]))
        assert Decimal(row[2]) >= max(Decimal(row[1]), Decimal(row[4]))
        assert Decimal(row[9]) <= Decimal(row[5]) and Decimal(row[10]) <= Decimal(row[7])
    # Prices sit on the tick: 0.01 for BTCUSDT, still written with 8 decimals.
    assert all(r[4].endswith("000000") for r in btc)


def test_zero_volume_minutes_exist_and_keep_the_previous_close() -> None:
    mk = market(
        symbols=[
            SymbolListing(
                "THINUSDT",
                0,
                Decimal("2"),
                tick_size=Decimal("0.0001"),
                step_size=Decimal("0.1"),
                zero_volume_rate=0.2,
            )
        ]
    )
    rows = mk.klines("THINUSDT", "1m", NOW - DAY_MS, limit=1000)
    zero = [(p, c) for p, c in zip(rows, rows[1:], strict=False) if c.volume == 0]
    assert len(zero) > 50
    for prev, cur in zero:
        assert cur.trades == 0 and cur.quote_volume == 0
        assert cur.open == cur.high == cur.low == cur.close == prev.close or prev.volume == 0
    assert mk.klines_rows("THINUSDT", "1m", zero[0][1].open_ms, limit=1)[0][5] == "0.00000000"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    symbol=st.sampled_from(["BTCUSDT", "ETHUSDT", "XRPUSDT", "DOGEUSDT", "BCHUSDT"]),
    interval=st.sampled_from(["3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]),
    offset_min=st.integers(min_value=0, max_value=400 * 1440),
)
def test_any_interval_is_the_aggregate_of_its_minutes(
    m: Market, symbol: str, interval: str, offset_min: int
) -> None:
    iv = Interval(interval)
    t = iv.floor(NOW - offset_min * MINUTE_MS)
    candles = m.klines(symbol, iv, t, t, 1)
    minutes = all_minutes(m, symbol, t, min(iv.close_time(t), NOW))
    assert candles and minutes
    expected = aggregate(minutes, iv)
    assert candles[0] == expected


@pytest.mark.parametrize("interval", ["3d", "1w", "1M"])
def test_long_intervals_are_aggregates_of_days(m: Market, interval: str) -> None:
    iv = Interval(interval)
    for c in m.klines("BNBUSDT", iv, limit=3)[:-1]:
        days = m.klines("BNBUSDT", "1d", c.open_ms, c.close_ms, 1000)
        assert c == aggregate(days, iv)
        assert c.close_ms == iv.close_time(c.open_ms)


def test_open_candle_is_partial_and_grows_to_the_final(m: Market) -> None:
    t = Interval.M1.floor(NOW)
    final = m.minute("BTCUSDT", t)
    assert final is not None
    seen = [
        m.klines("BTCUSDT", "1m", t, t, 1, now_ms=t + e)[0] for e in (0, 10_000, 30_000, 59_999)
    ]
    assert all(not c.is_closed for c in seen)
    for a, b in zip(seen, seen[1:], strict=False):
        assert b.high >= a.high and b.low <= a.low and b.volume >= a.volume and b.trades >= a.trades
    assert seen[-1].volume <= final.volume
    after = m.klines("BTCUSDT", "1m", t, t, 1, now_ms=t + MINUTE_MS)[0]
    assert after == final and after.is_closed


def test_newest_rows_end_with_the_open_candle(m: Market) -> None:
    rows = m.klines("ETHUSDT", "15m", limit=5)
    assert [r.open_ms for r in rows] == [
        Interval.M15.floor(NOW) - i * 15 * MINUTE_MS for i in range(4, -1, -1)
    ]
    assert not rows[-1].is_closed and all(r.is_closed for r in rows[:-1])
    # The open 15m candle aggregates the closed minutes so far plus the current partial minute.
    mins = m.klines("ETHUSDT", "1m", rows[-1].open_ms, NOW, 1000)
    assert rows[-1] == aggregate(mins, Interval.M15)


def test_start_end_inclusive_on_open_time_and_limit(m: Market) -> None:
    t0 = Interval.H1.floor(NOW) - 10 * H
    rows = m.klines("BTCUSDT", "1h", t0, t0 + 3 * H)
    assert [r.open_ms for r in rows] == [t0, t0 + H, t0 + 2 * H, t0 + 3 * H]
    assert [r.open_ms for r in m.klines("BTCUSDT", "1h", t0 + 1, t0 + 3 * H)] == [
        t0 + H,
        t0 + 2 * H,
        t0 + 3 * H,
    ]
    assert len(m.klines("BTCUSDT", "1h", t0, None, 2)) == 2
    # endTime only: the newest `limit` rows up to it.
    assert [r.open_ms for r in m.klines("BTCUSDT", "1h", None, t0, 2)] == [t0 - H, t0]
    assert m.klines("BTCUSDT", "1h", NOW + DAY_MS, None, 10) == []


def test_start_before_listing_returns_from_first_candle() -> None:
    listed = Interval.M1.floor(NOW - 3 * DAY_MS + 7 * MINUTE_MS)
    mk = market(
        symbols=[SymbolListing("NEWUSDT", listed, Decimal("5"), tick_size=Decimal("0.001"))]
    )
    rows = mk.klines("NEWUSDT", "1m", 0, None, 3)
    assert [r.open_ms for r in rows] == [listed, listed + MINUTE_MS, listed + 2 * MINUTE_MS]
    # The hour of the listing exists but holds only its minutes since listing.
    hour = mk.klines("NEWUSDT", "1h", 0, None, 1)[0]
    assert hour.open_ms == Interval.H1.floor(listed)
    assert hour == aggregate(mk.klines("NEWUSDT", "1m", listed, hour.close_ms, 60), Interval.H1)
    assert mk.klines("NEWUSDT", "1m", 0, listed - 1, 10) == []
    assert mk.minute("NEWUSDT", listed - MINUTE_MS) is None
    # Asking for the newest rows never walks back past the listing.
    assert len(mk.klines("NEWUSDT", "1d", limit=1000)) == 4


def test_outages_leave_real_gaps() -> None:
    start = Interval.H1.floor(NOW) - 5 * H + 10 * MINUTE_MS
    end = start + 110 * MINUTE_MS  # 07:10 .. 09:00, so the 08:00 hour is fully out
    mk = market(outages=[(start, end)])
    plain = market()
    rows = mk.klines("BTCUSDT", "1m", start - 2 * MINUTE_MS, end, 1000)
    opens = [r.open_ms for r in rows]
    assert opens == [start - 2 * MINUTE_MS, start - MINUTE_MS, end]
    assert mk.minute("BTCUSDT", start) is None and mk.minute("BTCUSDT", end) is not None
    # A fully covered hour has no candle; a partly covered one aggregates only what exists.
    hours = {r.open_ms: r for r in mk.klines("BTCUSDT", "1h", Interval.H1.floor(start), end, 10)}
    assert Interval.H1.floor(start) + H not in hours
    first = hours[Interval.H1.floor(start)]
    assert first == aggregate(mk.klines("BTCUSDT", "1m", first.open_ms, start - 1, 60), Interval.H1)
    # Data outside the outage is unchanged.
    assert mk.minute("ETHUSDT", start) is None
    assert mk.minute("ETHUSDT", start - MINUTE_MS) == plain.minute("ETHUSDT", start - MINUTE_MS)


def test_per_symbol_outage_and_delisted_symbol() -> None:
    t = Interval.M1.floor(NOW - H)
    mk = market(outages=[(t, t + 5 * MINUTE_MS, "ETHUSDT")])
    assert mk.minute("ETHUSDT", t) is None and mk.minute("BTCUSDT", t) is not None
    luna = mk.listing("LUNAUSDT")
    assert luna.status == "BREAK" and luna.delisted_ms is not None
    last = mk.klines("LUNAUSDT", "1d", limit=1)[0]
    assert last.close_ms == luna.delisted_ms - 1


def test_bad_inputs_are_named() -> None:
    mk = market()
    with pytest.raises(ValidationError, match="unknown symbol 'NOPE'"):
        mk.minute("NOPE", NOW)
    with pytest.raises(ValidationError, match="limit must be 1..1000"):
        mk.klines("BTCUSDT", "1m", limit=1001)
    with pytest.raises(ValidationError, match="invalid interval"):
        mk.klines("BTCUSDT", "7m")
    with pytest.raises(ValidationError, match="after end"):
        mk.klines("BTCUSDT", "1m", NOW, NOW - 1)
    with pytest.raises(ValidationError, match="power of ten"):
        SymbolListing("XUSDT", 0, Decimal("1"), tick_size=Decimal("0.05"))
    with pytest.raises(ValidationError, match="listed twice"):
        SimConfig(symbols=[SymbolListing("XUSDT", 0), SymbolListing("XUSDT", 0)])
    with pytest.raises(ValidationError, match="start < end"):
        SimConfig(outages=[(5, 5)])


def test_clocks() -> None:
    fixed = SimClock.fixed(1000)
    assert fixed.now_ms() == 1000
    fixed.advance(500)
    assert fixed.now_ms() == 1500
    fixed.set(10)
    assert fixed.now_ms() == 10
    fast = SimClock.accelerated(0, 1000)
    a = fast.now_ms()
    b = fast.now_ms()
    assert 0 <= a <= b
    assert fast.real_seconds(60_000) == pytest.approx(0.06)
    with pytest.raises(ValidationError):
        SimClock.real().set(0)
    with pytest.raises(ValidationError):
        SimClock.accelerated(0, 0)


def test_one_second_candles_aggregate_to_the_minute(m: Market) -> None:
    t = Interval.M1.floor(NOW) - 7 * MINUTE_MS
    seconds = m.klines("BTCUSDT", "1s", t, t + MINUTE_MS - 1, 1000)
    assert [c.open_ms for c in seconds] == [t + i * 1000 for i in range(60)]
    minute = m.minute("BTCUSDT", t)
    assert minute is not None and aggregate(seconds, Interval.M1) == minute
    for a, b in zip(seconds, seconds[1:], strict=False):
        assert b.open == a.close
    # The open minute as of now is the aggregate of its seconds so far (the last one open).
    cur = Interval.M1.floor(NOW)
    so_far = m.klines("BTCUSDT", "1s", cur, None, 1000)
    assert so_far[-1].open_ms == Interval.S1.floor(NOW) and not so_far[-1].is_closed
    assert aggregate(so_far, Interval.M1) == m.klines("BTCUSDT", "1m", cur, cur, 1)[0]
    newest = m.klines("ETHUSDT", "1s", limit=120)
    assert len(newest) == 120 and newest[-1].open_ms == Interval.S1.floor(NOW)


def test_many_symbols_at_once_equal_one_symbol_at_a_time() -> None:
    mk = market(symbols=generated_symbols(60, seed=3))
    t0 = Interval.M1.floor(NOW) - 90 * MINUTE_MS
    together = mk.compute_minutes(mk.symbols, t0, 30)
    for i, sym in enumerate(mk.symbols):
        # A different span and block alignment must not change a single value.
        alone = mk.compute_minutes([sym], t0 - 7 * MINUTE_MS, 40)[0][:, 7:37]
        assert (together[i] == alone).all(), sym
        day = t0 - t0 % DAY_MS
        by_day = mk._compute_days(mk._sym(sym), day, 1)
        k = (t0 - day) // MINUTE_MS
        assert (by_day[:, k : k + 30] == together[i]).all(), sym


def test_generated_universe_is_deterministic_and_realistic() -> None:
    universe = generated_symbols(1500, seed=42)
    assert universe == generated_symbols(1500, seed=42)
    assert [s.symbol for s in universe] != [s.symbol for s in generated_symbols(1500, seed=43)]
    names = [s.symbol for s in universe]
    assert len(set(names)) == len(names)
    statuses = Counter(s.status for s in universe)
    assert statuses["TRADING"] == 1500 and sum(statuses.values()) == 1575
    assert set(statuses) == {"TRADING", "BREAK", "HALT", "END_OF_DAY", "CANCEL_ONLY"}
    assert names[:20] == [s.symbol for s in default_symbols()][:20]
    quotes = Counter(s.quote_asset for s in universe)
    assert set(quotes) == {"USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB", "TRY", "EUR"}
    for s in universe:
        assert s.symbol == s.base_asset + s.quote_asset
        if s.status != "TRADING":
            assert s.delisted_ms is not None
    # A small universe is a prefix of the defaults; sizes are validated.
    assert [s.symbol for s in generated_symbols(2)] == ["BTCUSDT", "ETHUSDT", "LUNAUSDT"]
    with pytest.raises(ValidationError, match="from 1 to 20000"):
        generated_symbols(0)


def test_a_generated_market_serves_every_symbol() -> None:
    mk = market(symbols=generated_symbols(300, seed=5))
    for sym in mk.symbols[::10]:
        listing = mk.listing(sym)
        rows = mk.klines_rows(sym, "1h", limit=3)
        if listing.delisted_ms is not None and listing.delisted_ms <= NOW:
            assert rows == [] or rows[-1][6] < listing.delisted_ms
            continue
        assert len(rows) == 3
        for row in rows:
            assert Decimal(row[3]) <= Decimal(row[1]) <= Decimal(row[2])
            assert Decimal(row[5]) >= 0 and row[8] >= 0
