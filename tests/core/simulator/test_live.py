"""LiveCandles (the WebSocket's incremental view) agrees exactly with the market's klines."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.simulator import Market, SimClock, SimConfig, SymbolListing
from cryptobot_core.simulator.live import LiveCandles
from cryptobot_core.simulator.market import fmt_units
from cryptobot_core.simulator.ws import StreamState, kline_event
from tests.fixtures.simulator import SIM_NOW_MS

NOW = SIM_NOW_MS
H = 60 * MINUTE_MS
# An outage and a listing inside the span the properties below explore.
OUTAGE = (Interval.H1.floor(NOW) - 30 * H + 7 * MINUTE_MS, Interval.H1.floor(NOW) - 28 * H)
NEW_LISTING = Interval.M1.floor(NOW - 20 * H + 13 * MINUTE_MS)


def _market() -> Market:
    symbols = [
        *SimConfig().symbols[:4],
        SymbolListing("NEWUSDT", NEW_LISTING, Decimal("5"), tick_size=Decimal("0.001")),
    ]
    return Market(
        SimConfig(
            symbols=symbols,
            clock=SimClock.fixed(NOW),
            outages=[OUTAGE, (NOW - 5 * H, NOW - 5 * H + 3 * MINUTE_MS, "ETHUSDT")],
        )
    )


@pytest.fixture(scope="module")
def market() -> Market:
    return _market()


def rest_values(market: Market, symbol: str, iv: Interval, open_ms: int, now: int) -> list[int]:
    """The candle as REST returns it, back in integer units."""
    row = market.klines_rows(symbol, iv, open_ms, open_ms, 1, now_ms=now)
    assert row, "REST has no such candle"
    pd, qd = market.decimals(symbol)
    units = [(1, pd), (2, pd), (3, pd), (4, pd), (5, qd), (7, 8), (9, qd), (10, 8)]
    out = {i: int(Decimal(row[0][i]) * 10**d) for i, d in units}
    return [out[1], out[2], out[3], out[4], out[5], out[7], row[0][8], out[9], out[10]]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    symbol=st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT", "NEWUSDT"]),
    interval=st.sampled_from(["1m", "3m", "15m", "1h", "4h", "1d", "1s", "1w"]),
    back_ms=st.integers(min_value=0, max_value=40 * H),
    steps=st.lists(st.integers(min_value=0, max_value=7 * MINUTE_MS), min_size=1, max_size=4),
)
def test_open_candle_and_final_equal_rest_at_any_instant(
    symbol: str, interval: str, back_ms: int, steps: list[int]
) -> None:
    market = _market()
    live = LiveCandles(market)
    iv = Interval(interval)
    now = NOW - back_ms
    # Walk forward as a stream would, so the cached prefixes are extended, not rebuilt.
    for step in steps:
        now += step
        got = live.open_candle(symbol, iv, now)
        t = iv.floor(now)
        rows = market.klines(symbol, iv, t, t, 1, now_ms=now)
        if not rows:
            assert got is None
            continue
        assert got is not None and got[0] == t
        assert got[1] == rest_values(market, symbol, iv, t, now)
        previous = iv.floor(t - 1)
        final = live.final(symbol, iv, previous)
        closed = market.klines(symbol, iv, previous, previous, 1, now_ms=now)
        if closed:
            assert final == rest_values(market, symbol, iv, previous, now)
        else:
            assert final is None


def test_outage_minutes_have_no_open_candle_nor_final(market: Market) -> None:
    live = LiveCandles(market)
    inside = OUTAGE[0] + 5 * MINUTE_MS
    assert live.open_candle("BTCUSDT", Interval.M1, inside + 1234) is None
    assert live.final("BTCUSDT", Interval.M1, inside) is None
    # The hour that starts 7 minutes before the outage keeps only those 7 minutes.
    hour = Interval.H1.floor(OUTAGE[0])
    assert live.final("BTCUSDT", Interval.H1, hour) == rest_values(
        market, "BTCUSDT", Interval.H1, hour, NOW
    )
    assert live.final("BTCUSDT", Interval.H1, hour + H) is None


def test_frames_are_byte_identical_to_the_reference_event(market: Market) -> None:
    for symbol, iv, back in [
        ("BTCUSDT", Interval.M1, 3 * MINUTE_MS),
        ("SOLUSDT", Interval.H1, 5 * H),
        ("NEWUSDT", Interval.M15, 2 * H),
    ]:
        t = iv.floor(NOW - back)
        candle = market.klines(symbol, iv, t, t, 1)[0]
        values = rest_values(market, symbol, iv, t, NOW)
        pd, qd = market.decimals(symbol)
        state = StreamState(f"{symbol.lower()}@kline_{iv.value}", symbol, iv, t, pd, qd)
        event = kline_event(candle, NOW)
        assert state.frame(t, values, True, NOW, False) == json.dumps(event, separators=(",", ":"))
        wrapped = {"stream": state.name, "data": event}
        assert state.frame(t, values, True, NOW, True) == json.dumps(wrapped, separators=(",", ":"))
    # A candle without trades has trade ids -1/-1.
    state = StreamState("btcusdt@kline_1m", "BTCUSDT", Interval.M1, 0, 2, 5)
    frame = json.loads(state.frame(0, [100, 100, 100, 100, 0, 0, 0, 0, 0], False, 5, False))
    assert frame["k"]["f"] == frame["k"]["L"] == -1 and frame["k"]["v"] == fmt_units(0, 5)
