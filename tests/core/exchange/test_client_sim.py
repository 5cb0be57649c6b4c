"""BinanceClient against the project's Binance simulator over real HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cryptobot_core.errors import (
    BinanceAPIError,
    ExchangeUnavailable,
    InvalidSymbolError,
    IPBannedError,
    RateLimitError,
)
from cryptobot_core.exchange import BinanceClient, WeightBudget
from cryptobot_core.exchange.exchange_info import KLINES_PATH
from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.models import Candle
from cryptobot_core.simulator import SimClock, SimConfig, SimulatorServer

# A hang (e.g. a task that ignores cancellation) fails fast instead of eating the CI budget.
pytestmark = pytest.mark.timeout(60)

DAY_MS = 1440 * MINUTE_MS
# Mid-candle for every interval up to 1h, so the newest candle is still open.
NOW = 1_763_640_000_000 + 37 * MINUTE_MS + 12_345  # 2025-11-20 12:37:12.345 UTC
OUTAGE = (NOW - 3 * DAY_MS, NOW - 3 * DAY_MS + 2 * 3_600_000)


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    """One simulator with a frozen clock and a real outage window, for the module."""
    srv = SimulatorServer(SimConfig(seed=7, clock=SimClock.fixed(NOW), outages=[OUTAGE])).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def sim(server: SimulatorServer) -> Iterator[SimulatorServer]:
    """The module's simulator with faults reset before and after the test."""
    server.faults.reset()
    server.faults.retry_after_s = 0
    yield server
    server.faults.reset()


def fast_client(url: str, **kwargs: Any) -> BinanceClient:
    """A client with tiny backoffs so fault tests stay quick."""
    kwargs.setdefault("backoff", (0.001, 0.01))
    return BinanceClient(url, **kwargs)


def expected(
    sim: SimulatorServer, symbol: str, iv: Interval, start: int, end: int
) -> list[list[Any]]:
    """What the exchange has in [start, end), closed candles only, read from its market model."""
    rows: list[list[Any]] = []
    lo = start
    while lo < end:
        hi = min(end, lo + 1000 * iv.ms)  # at most 1000 opens: the limit never cuts
        rows += [
            c.to_rest_row() for c in sim.market.klines(symbol, iv, lo, hi - 1, 1000) if c.is_closed
        ]
        lo = hi
    return rows


def rows(candles: list[Candle]) -> list[list[Any]]:
    return [c.to_rest_row() for c in candles]


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_pagination_returns_exactly_the_exchange_candles_despite_faults(
    sim: SimulatorServer, data: st.DataObject
) -> None:
    iv = data.draw(
        st.sampled_from([Interval.M1, Interval.M3, Interval.M15, Interval.H1]), label="interval"
    )
    back = data.draw(st.integers(1, 3500), label="intervals back from now")
    span = data.draw(st.integers(1, 3200), label="intervals long")
    jitter = data.draw(st.integers(0, iv.ms - 1), label="unaligned start")
    start = max(0, NOW - back * iv.ms + jitter)
    end = start + span * iv.ms - data.draw(st.integers(0, iv.ms - 1), label="unaligned end")
    sim.faults.seed = data.draw(st.integers(0, 2**32), label="fault seed")
    sim.faults.error_5xx_rate = data.draw(st.sampled_from([0.0, 0.15, 0.3]), label="5xx rate")
    sim.faults.rate_429 = data.draw(st.sampled_from([0.0, 0.1]), label="429 rate")
    # Retry-After 0 here: a 418 with a ban shorter than max_ban_wait_s is waited out.
    sim.faults.rate_418 = data.draw(st.sampled_from([0.0, 0.05]), label="418 rate")
    with fast_client(sim.url, max_retries=20, max_ban_wait_s=1.0) as client:
        got = client.klines("BTCUSDT", iv, start, end)
    want = expected(sim, "BTCUSDT", iv, start, end)
    assert rows(got) == want
    opens = [c.open_ms for c in got]
    assert opens == sorted(set(opens)), "out of order or duplicated"
    assert all(c.is_closed for c in got)
    assert all(start <= o < end for o in opens)


def test_a_range_over_an_outage_keeps_the_exchange_gap(sim: SimulatorServer) -> None:
    start, end = OUTAGE[0] - 3_600_000, OUTAGE[1] + 3_600_000
    with fast_client(sim.url) as client:
        got = client.klines("ETHUSDT", "1m", start, end)
    assert rows(got) == expected(sim, "ETHUSDT", Interval.M1, start, end)
    assert len(got) == 120  # the hour before and the hour after; the outage has none
    assert not any(OUTAGE[0] <= c.open_ms < OUTAGE[1] for c in got)


def test_still_open_candle_is_dropped_unless_asked_for(sim: SimulatorServer) -> None:
    iv = Interval.M15
    start, end = iv.floor(NOW) - 10 * iv.ms, iv.floor(NOW) + iv.ms
    with fast_client(sim.url) as client:
        closed = client.klines("BTCUSDT", iv, start, end)
        with_open = client.klines("BTCUSDT", iv, start, end, include_open=True)
    assert len(closed) == 10 and closed[-1].open_ms == iv.floor(NOW) - iv.ms
    assert with_open[:-1] == closed
    last = with_open[-1]
    assert last.open_ms == iv.floor(NOW) and not last.is_closed
    current = sim.market.current("BTCUSDT", iv)
    assert current is not None and last.to_rest_row() == current.to_rest_row()


def test_klines_many_matches_single_fetches(sim: SimulatorServer) -> None:
    start, end = NOW - 25 * DAY_MS, NOW
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "ARBUSDT"]
    with fast_client(sim.url) as client:
        many = client.klines_many([(s, "15m", start, end) for s in symbols], max_workers=4)
    for symbol, got in zip(symbols, many, strict=True):
        assert rows(got) == expected(sim, symbol, Interval.M15, start, end)
        assert len(got) > 2000  # several windows stitched together


def test_invalid_symbol_is_a_typed_error_naming_it_and_never_retried(sim: SimulatorServer) -> None:
    before = sim.stats.snapshot()["responses"].get(400, 0)
    with (
        fast_client(sim.url, learn_limits=False) as client,
        pytest.raises(InvalidSymbolError) as err,
    ):
        client.klines("NOPEUSDT", "1m", NOW - DAY_MS, NOW - DAY_MS + MINUTE_MS)
    assert err.value.code == -1121 and err.value.symbol == "NOPEUSDT"
    assert "NOPEUSDT" in str(err.value) and "Invalid symbol" in str(err.value)
    assert sim.stats.snapshot()["responses"].get(400, 0) == before + 1


def test_invalid_interval_from_the_exchange_carries_code_and_msg(sim: SimulatorServer) -> None:
    before = sim.stats.snapshot()["responses"].get(400, 0)
    with fast_client(sim.url) as client, pytest.raises(BinanceAPIError) as err:
        client.request(KLINES_PATH, {"symbol": "BTCUSDT", "interval": "7m"})
    assert err.value.code == -1120 and err.value.status == 400
    assert err.value.msg
    assert client.stats.retries == 0
    assert sim.stats.snapshot()["responses"].get(400, 0) == before + 1


def test_5xx_is_retried_with_backoff_then_exchange_unavailable(sim: SimulatorServer) -> None:
    sim.faults.error_5xx_rate = 1.0
    slept: list[float] = []
    before = sim.stats.requests
    client = fast_client(sim.url, max_retries=3, sleep=slept.append, learn_limits=False)
    with client, pytest.raises(ExchangeUnavailable, match="after 4 attempts"):
        client.ping()
    assert sim.stats.requests == before + 4
    assert len(slept) == 3 and slept[0] < slept[2]  # exponential
    assert all(0 < s <= 0.01 for s in slept)  # bounded by the cap


def test_5xx_now_and_then_is_absorbed(sim: SimulatorServer) -> None:
    sim.faults.error_5xx_rate = 0.5
    sim.faults.seed = 3
    start, end = NOW - 6 * DAY_MS, NOW - 6 * DAY_MS + 3000 * MINUTE_MS  # clear of the outage
    with fast_client(sim.url, max_retries=30) as client:
        got = client.klines("BTCUSDT", "1m", start, end)
        assert client.stats.server_errors > 0 and client.stats.retries > 0
    assert len(got) == 3000
    assert rows(got) == expected(sim, "BTCUSDT", Interval.M1, start, end)


def test_429_waits_retry_after_for_every_thread_then_raises(sim: SimulatorServer) -> None:
    sim.faults.rate_429 = 1.0
    sim.faults.retry_after_s = 1
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        time.sleep(s)

    budget = WeightBudget(sleep=sleep)
    before = sim.stats.count_429
    client = fast_client(sim.url, budget=budget, max_retries=1, learn_limits=False)
    with client, pytest.raises(RateLimitError) as err:
        client.ping()
    assert err.value.retry_after == 1 and err.value.code == -1003 and err.value.status == 429
    assert sim.stats.count_429 == before + 2  # one retry after waiting
    assert 0.5 < sum(slept) <= 1.0  # Retry-After, counted from when the 429 arrived
    assert budget.stats.pauses >= 1


def test_418_raises_ip_banned_at_once(sim: SimulatorServer) -> None:
    sim.faults.rate_418 = 1.0
    sim.faults.retry_after_s = 120
    budget = WeightBudget()
    before = sim.stats.requests
    client = fast_client(sim.url, budget=budget, learn_limits=False)
    with client, pytest.raises(IPBannedError) as err:
        client.server_time_ms()
    assert err.value.retry_after == 120 and err.value.status == 418
    assert sim.stats.requests == before + 1
    assert budget.stats.pauses == 1  # other threads will not hammer the banned IP


def test_symbol_checks_name_each_bad_symbol(sim: SimulatorServer) -> None:
    with fast_client(sim.url) as client:
        valid, bad = client.check_symbols(["btcusdt", "LUNAUSDT", "NOPEUSDT", "BAD-1", "ETHUSDT"])
        assert valid == ["BTCUSDT", "ETHUSDT"]
        assert "BREAK" in bad["LUNAUSDT"]
        assert "unknown" in bad["NOPEUSDT"]
        assert "BAD-1" in bad
        assert client.validate_symbols(["ethusdt", "BTCUSDT"]) == ["ETHUSDT", "BTCUSDT"]
        with pytest.raises(InvalidSymbolError, match="LUNAUSDT.*BREAK"):
            client.validate_symbols(["BTCUSDT", "LUNAUSDT", "NOPEUSDT"])
        with pytest.raises(InvalidSymbolError, match="NOPEUSDT.*unknown"):
            client.validate_symbols(["NOPEUSDT"])


def test_exchange_info_and_server_time(sim: SimulatorServer) -> None:
    with fast_client(sim.url) as client:
        client.ping()
        assert client.server_time_ms() == NOW
        info = client.exchange_info(["BTCUSDT"])
        assert set(info.symbols) == {"BTCUSDT"}
        assert info.symbols["BTCUSDT"].base_asset == "BTC" and info.symbols["BTCUSDT"].trading
        assert info.request_weight is not None and info.request_weight.limit == 6000
        assert client.budget.limit == 6000 and client.budget.limit_known


def test_from_settings_uses_the_configured_exchange(sim: SimulatorServer) -> None:
    from cryptobot_core.settings import load_settings

    cfg = load_settings(exchange="sim", sim_port=sim.port, http_timeout_s=3.0)
    with BinanceClient.from_settings(cfg) as client:
        assert client.base_url == sim.url
        assert client.server_time_ms() == NOW


def test_concurrent_fetch_of_many_symbols_stays_under_a_small_weight_limit() -> None:
    # The simulator counts weight per minute of its clock; at 60x a minute passes in 1 s.
    speed = 60.0
    clock = SimClock.accelerated(NOW, speed)
    srv = SimulatorServer(SimConfig(seed=11, clock=clock, weight_limit=100)).start()
    try:
        budget = WeightBudget(
            clock=lambda: clock.now_ms() / 1000, sleep=lambda s: time.sleep(s / speed)
        )
        symbols = [s for s in srv.market.symbols if s != "LUNAUSDT"][:20]
        start = NOW - 4 * DAY_MS
        end = start + 2500 * MINUTE_MS  # 3 windows per symbol: 60 requests, 120 weight
        with BinanceClient(srv.url, budget=budget) as client:
            got = client.klines_many([(s, "1m", start, end) for s in symbols], max_workers=8)
        assert budget.limit == 100  # learned from exchangeInfo
        assert srv.stats.count_429 == 0 and srv.stats.count_418 == 0
        assert srv.stats.max_weight_per_minute <= 100
        assert len([m for m, w in srv.stats.weight_by_minute.items() if w]) >= 2, "had to pace"
        for symbol, candles in zip(symbols, got, strict=True):
            assert rows(candles) == expected(srv, symbol, Interval.M1, start, end)
    finally:
        srv.stop()


def test_klines_many_up_to_now_reads_server_time_once_and_drops_open_candles(
    sim: SimulatorServer,
) -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    before = sim.stats.snapshot()["requests_by_path"].get("/api/v3/time", 0)
    with fast_client(sim.url) as client:
        got = client.klines_many([(s, "1h", NOW - 2 * DAY_MS, NOW + 3_600_000) for s in symbols])
    assert sim.stats.snapshot()["requests_by_path"].get("/api/v3/time", 0) == before + 1
    for symbol, candles in zip(symbols, got, strict=True):
        assert rows(candles) == expected(
            sim, symbol, Interval.H1, NOW - 2 * DAY_MS, NOW + 3_600_000
        )
        assert candles[-1].open_ms == Interval.H1.floor(NOW) - 3_600_000


def test_timeouts_are_retried_then_exchange_unavailable(sim: SimulatorServer) -> None:
    sim.faults.latency_s = 0.5
    client = fast_client(sim.url, timeout_s=0.1, max_retries=2, learn_limits=False)
    with client, pytest.raises(ExchangeUnavailable, match="after 3 attempts; last error: timeout"):
        client.ping()
    assert client.stats.transport_errors == 3 and client.stats.retries == 2


def test_connection_refused_is_exchange_unavailable() -> None:
    from cryptobot_core.services import free_port

    client = fast_client(f"http://127.0.0.1:{free_port()}", max_retries=1, learn_limits=False)
    with client, pytest.raises(ExchangeUnavailable, match="connection error"):
        client.server_time_ms()
