"""REST contract: shapes, parameters, error codes, weights, limits and faults, over real HTTP."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest

from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.simulator import Faults, SimulatorServer, generated_symbols
from tests.fixtures.simulator import SIM_NOW_MS, MakeSimulator

NOW = SIM_NOW_MS


def get(server: SimulatorServer, path: str, **params: object) -> httpx.Response:
    return httpx.get(server.url + path, params=params, timeout=10)  # type: ignore[arg-type]


def assert_error(resp: httpx.Response, status: int, code: int, msg: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.json() == {"code": code, "msg": msg}
    assert "X-MBX-USED-WEIGHT-1M" in resp.headers


def test_ping_and_time(simulator: SimulatorServer) -> None:
    r = get(simulator, "/api/v3/ping")
    assert r.status_code == 200 and r.json() == {} and r.headers["X-MBX-USED-WEIGHT-1M"] == "1"
    r = get(simulator, "/api/v3/time")
    assert r.json() == {"serverTime": NOW} and r.headers["X-MBX-USED-WEIGHT-1M"] == "2"
    assert r.headers["Content-Type"].startswith("application/json")


def test_exchange_info_shape(simulator: SimulatorServer) -> None:
    r = get(simulator, "/api/v3/exchangeInfo")
    body = r.json()
    assert r.headers["X-MBX-USED-WEIGHT-1M"] == "20"
    assert set(body) == {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"}
    assert body["timezone"] == "UTC" and body["serverTime"] == NOW
    assert {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 6000,
    } in body["rateLimits"]
    names = [s["symbol"] for s in body["symbols"]]
    assert names[:5] == ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"] and len(names) == 21
    statuses = {s["symbol"]: s["status"] for s in body["symbols"]}
    assert statuses["LUNAUSDT"] == "BREAK" and statuses["BTCUSDT"] == "TRADING"
    btc = body["symbols"][0]
    assert btc["baseAsset"] == "BTC" and btc["quoteAsset"] == "USDT"
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    for f in btc["filters"]:
        for key, value in f.items():
            assert isinstance(value, str | int | bool), (key, value)
            if key.endswith(("Price", "Qty", "Size", "Notional")):
                assert isinstance(value, str)


def test_exchange_info_symbol_params(simulator: SimulatorServer) -> None:
    one = get(simulator, "/api/v3/exchangeInfo", symbol="ETHUSDT").json()
    assert [s["symbol"] for s in one["symbols"]] == ["ETHUSDT"]
    two = get(simulator, "/api/v3/exchangeInfo", symbols='["BTCUSDT","SOLUSDT"]').json()
    assert [s["symbol"] for s in two["symbols"]] == ["BTCUSDT", "SOLUSDT"]
    brk = get(simulator, "/api/v3/exchangeInfo", symbolStatus="BREAK").json()
    assert [s["symbol"] for s in brk["symbols"]] == ["LUNAUSDT"]
    assert_error(
        get(simulator, "/api/v3/exchangeInfo", symbol="NOPEUSDT"), 400, -1121, "Invalid symbol."
    )
    assert_error(
        get(simulator, "/api/v3/exchangeInfo", symbols='["BTCUSDT","NOPE"]'),
        400,
        -1121,
        "Invalid symbol.",
    )
    r = get(simulator, "/api/v3/exchangeInfo", symbols="BTCUSDT")
    assert r.status_code == 400 and r.json()["code"] == -1100 and "'symbols'" in r.json()["msg"]
    assert_error(
        get(simulator, "/api/v3/exchangeInfo", symbol="btcusdt"),
        400,
        -1100,
        "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.",
    )
    assert_error(
        get(simulator, "/api/v3/exchangeInfo", symbol="BTCUSDT", symbols='["BTCUSDT"]'),
        400,
        -1128,
        "Combination of optional parameters invalid.",
    )


def test_klines_rows_match_the_market_exactly(simulator: SimulatorServer) -> None:
    start = NOW - 3 * 86_400_000
    r = get(
        simulator, "/api/v3/klines", symbol="BTCUSDT", interval="15m", startTime=start, limit=1000
    )
    assert r.status_code == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == "2"
    rows = r.json()
    expected = [
        c.to_rest_row() for c in simulator.market.klines("BTCUSDT", "15m", start, None, 1000)
    ]
    assert rows == expected
    assert rows[0][0] == Interval.M15.floor(start) + 15 * MINUTE_MS  # first open >= startTime
    assert rows[-1][0] == Interval.M15.floor(NOW)  # the open candle is included
    assert all(b[0] - a[0] == 15 * MINUTE_MS for a, b in zip(rows, rows[1:], strict=False))
    ui = get(
        simulator, "/api/v3/uiKlines", symbol="BTCUSDT", interval="15m", startTime=start, limit=1000
    )
    assert ui.json() == rows


def test_klines_defaults_and_time_selection(simulator: SimulatorServer) -> None:
    rows = get(simulator, "/api/v3/klines", symbol="ETHUSDT", interval="1m").json()
    assert len(rows) == 500 and rows[-1][0] == Interval.M1.floor(NOW)
    t0 = Interval.H1.floor(NOW) - 5 * 3_600_000
    both = get(
        simulator,
        "/api/v3/klines",
        symbol="ETHUSDT",
        interval="1h",
        startTime=t0,
        endTime=t0 + 7_200_000,
    ).json()
    assert [r[0] for r in both] == [t0, t0 + 3_600_000, t0 + 7_200_000]
    end_only = get(
        simulator, "/api/v3/klines", symbol="ETHUSDT", interval="1h", endTime=t0, limit=2
    ).json()
    assert [r[0] for r in end_only] == [t0 - 3_600_000, t0]
    future = get(
        simulator, "/api/v3/klines", symbol="ETHUSDT", interval="1h", startTime=NOW + 86_400_000
    )
    assert future.status_code == 200 and future.json() == []
    first = get(
        simulator, "/api/v3/klines", symbol="SOLUSDT", interval="1d", startTime=0, limit=1
    ).json()
    assert (
        first[0][0]
        == simulator.market.listing("SOLUSDT").listed_ms
        - simulator.market.listing("SOLUSDT").listed_ms % 86_400_000
    )
    assert (
        get(
            simulator, "/api/v3/klines", symbol="BTCUSDT", interval="1m", timeZone="0", limit=1
        ).status_code
        == 200
    )


def test_same_bytes_from_two_servers(make_simulator: MakeSimulator) -> None:
    a, b = make_simulator(), make_simulator()
    params = {"symbol": "DOGEUSDT", "interval": "5m", "startTime": NOW - 86_400_000, "limit": 1000}
    assert get(a, "/api/v3/klines", **params).content == get(b, "/api/v3/klines", **params).content
    c = make_simulator(seed=7)
    assert get(a, "/api/v3/klines", **params).content != get(c, "/api/v3/klines", **params).content


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        (
            {"interval": "1m"},
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ),
        (
            {"symbol": "", "interval": "1m"},
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ),
        (
            {"symbol": "BTCUSDT"},
            -1102,
            "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.",
        ),
        (
            {"symbol": "btcusdt", "interval": "1m"},
            -1100,
            "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.",
        ),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "startTime": "yesterday"},
            -1100,
            "Illegal characters found in parameter 'startTime'; legal range is '^[0-9]{1,20}$'.",
        ),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "endTime": "-5"},
            -1100,
            "Illegal characters found in parameter 'endTime'; legal range is '^[0-9]{1,20}$'.",
        ),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "limit": "ten"},
            -1100,
            "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
        ),
        ({"symbol": "BTCUSDT", "interval": "7m"}, -1120, "Invalid interval."),
        ({"symbol": "NOPEUSDT", "interval": "1m"}, -1121, "Invalid symbol."),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "limit": 1001},
            -1130,
            "Data sent for parameter 'limit' is not valid.",
        ),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "limit": 0},
            -1130,
            "Data sent for parameter 'limit' is not valid.",
        ),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "startTime": 2000, "endTime": 1000},
            -1023,
            "Start time is greater than end time.",
        ),
        (
            {"symbol": "BTCUSDT", "interval": "1m", "startTime": 1000, "foo": 1},
            -1104,
            "Not all sent parameters were read; read '3' parameter(s) but was sent '4'.",
        ),
    ],
)
def test_klines_errors(
    simulator: SimulatorServer, params: dict[str, object], code: int, msg: str
) -> None:
    assert_error(get(simulator, "/api/v3/klines", **params), 400, code, msg)


def test_klines_error_for_non_utc_timezone_says_what_is_allowed(simulator: SimulatorServer) -> None:
    r = get(simulator, "/api/v3/klines", symbol="BTCUSDT", interval="1d", timeZone="+08:00")
    assert r.status_code == 400 and r.json()["code"] == -1130 and "UTC only" in r.json()["msg"]


def test_duplicate_parameter(simulator: SimulatorServer) -> None:
    r = httpx.get(simulator.url + "/api/v3/klines?symbol=BTCUSDT&symbol=ETHUSDT&interval=1m")
    assert_error(r, 400, -1101, "Duplicate values for a parameter detected.")


def test_weight_limit_gives_429_with_retry_after_then_418(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(weight_limit=10, ban_after_429s=2, ban_s=120)
    statuses = []
    for _ in range(5):
        r = get(sim, "/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=1)
        statuses.append(r.status_code)
    assert statuses == [200] * 5
    r = get(sim, "/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=1)
    assert r.status_code == 429 and r.json()["code"] == -1003
    assert "current limit is 10 request weight per 1 MINUTE" in r.json()["msg"]
    # Retry-After counts the seconds to the next minute of the simulator's clock (12:35:00).
    assert r.headers["Retry-After"] == "4" and r.headers["X-MBX-USED-WEIGHT-1M"] == "12"
    assert get(sim, "/api/v3/ping").status_code == 429
    banned = get(sim, "/api/v3/ping")
    assert banned.status_code == 418 and banned.json()["code"] == -1003
    assert "IP banned until" in banned.json()["msg"] and banned.headers["Retry-After"] == "120"
    # The ban outlasts the weight window; it ends when the clock passes it.
    sim.clock.advance(61_000)
    assert get(sim, "/api/v3/ping").status_code == 418
    sim.clock.advance(60_000)
    ok = get(sim, "/api/v3/ping")
    assert ok.status_code == 200 and ok.headers["X-MBX-USED-WEIGHT-1M"] == "1"
    assert sim.stats.count_429 == 2 and sim.stats.count_418 == 2 and sim.stats.bans == 1
    assert sim.stats.max_weight_per_minute > 10


def test_weight_window_follows_the_clock_minute(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(weight_limit=4)
    assert get(sim, "/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=1).status_code == 200
    assert get(sim, "/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=1).status_code == 200
    assert get(sim, "/api/v3/ping").status_code == 429
    sim.clock.advance(5_000)  # into the next minute: a fresh budget
    r = get(sim, "/api/v3/ping")
    assert r.status_code == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == "1"


def test_injected_faults_5xx_429_418(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(faults=Faults(error_5xx_rate=1.0, seed=3))
    r = get(sim, "/api/v3/ping")
    assert r.status_code in (500, 502, 503, 504) and "X-MBX-USED-WEIGHT-1M" in r.headers
    sim.faults.error_5xx_rate = 0.0
    sim.faults.rate_429 = 1.0
    r = get(sim, "/api/v3/ping")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1" and r.json()["code"] == -1003
    sim.faults.rate_429 = 0.0
    sim.faults.rate_418 = 1.0
    sim.faults.retry_after_s = 3
    r = get(sim, "/api/v3/ping")
    assert r.status_code == 418 and r.headers["Retry-After"] == "3"
    sim.faults.reset()
    assert get(sim, "/api/v3/ping").status_code == 200
    sim.faults.error_5xx_rate = 0.5
    codes = [get(sim, "/api/v3/ping").status_code for _ in range(40)]
    assert 5 < sum(c >= 500 for c in codes) < 35
    with pytest.raises(ValueError, match="probability"):
        sim.faults.rate_429 = 2


def test_latency_is_injected(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(faults=Faults(latency_s=0.3))
    r = get(sim, "/api/v3/ping")
    assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.3


def test_unknown_path_is_404_without_traceback(simulator: SimulatorServer) -> None:
    r = get(simulator, "/api/v3/depth", symbol="BTCUSDT")
    assert r.status_code == 404 and "Traceback" not in r.text


def test_stats_count_requests(simulator: SimulatorServer) -> None:
    for _ in range(3):
        get(simulator, "/api/v3/ping")
    get(simulator, "/api/v3/klines", symbol="X", interval="1m")
    snap = simulator.stats.snapshot()
    assert snap["requests"] == 4 and snap["responses"] == {200: 3, 400: 1}
    assert snap["weight_by_minute"] == {NOW - NOW % MINUTE_MS: 5}
    assert json.dumps(snap)  # plain data


def test_decimals_in_rest_rows_are_exact(simulator: SimulatorServer) -> None:
    row = get(simulator, "/api/v3/klines", symbol="XRPUSDT", interval="1h", limit=1).json()[0]
    assert Decimal(row[1]) == Decimal(row[1]).quantize(Decimal("0.0001"))
    assert len(row[1]) == len(row[1].split(".")[0]) + 9


def minutes_via_rest(server: SimulatorServer, symbol: str, start: int, end: int) -> list[list]:  # type: ignore[type-arg]
    """Every 1m row opening in [start, end], paged over HTTP like a client."""
    rows: list[list] = []  # type: ignore[type-arg]
    while True:
        page = get(
            server,
            "/api/v3/klines",
            symbol=symbol,
            interval="1m",
            startTime=start,
            endTime=end,
            limit=1000,
        ).json()
        rows += page
        if len(page) < 1000:
            return rows
        start = page[-1][0] + MINUTE_MS


def test_ticker_24hr_is_the_exact_aggregate_of_the_last_1440_minutes(
    simulator: SimulatorServer,
) -> None:
    r = get(simulator, "/api/v3/ticker/24hr", symbol="ETHUSDT")
    assert r.status_code == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == "2"
    t = r.json()
    assert list(t) == [
        "symbol",
        "priceChange",
        "priceChangePercent",
        "weightedAvgPrice",
        "prevClosePrice",
        "lastPrice",
        "lastQty",
        "bidPrice",
        "bidQty",
        "askPrice",
        "askQty",
        "openPrice",
        "highPrice",
        "lowPrice",
        "volume",
        "quoteVolume",
        "openTime",
        "closeTime",
        "firstId",
        "lastId",
        "count",
    ]
    minute = NOW - NOW % MINUTE_MS
    assert t["openTime"] == minute - 86_400_000 and t["closeTime"] == minute - 1
    rows = minutes_via_rest(simulator, "ETHUSDT", t["openTime"], t["closeTime"])
    assert len(rows) == 1440
    assert t["openPrice"] == rows[0][1] and t["lastPrice"] == rows[-1][4]
    assert Decimal(t["highPrice"]) == max(Decimal(r[2]) for r in rows)
    assert Decimal(t["lowPrice"]) == min(Decimal(r[3]) for r in rows)
    assert Decimal(t["volume"]) == sum(Decimal(r[5]) for r in rows)
    assert Decimal(t["quoteVolume"]) == sum(Decimal(r[7]) for r in rows)
    assert t["count"] == sum(r[8] for r in rows)
    assert Decimal(t["priceChange"]) == Decimal(rows[-1][4]) - Decimal(rows[0][1])
    traded = [r for r in rows if r[8] > 0]
    assert t["firstId"] == traded[0][0] // MINUTE_MS * 100_000
    assert t["lastId"] == traded[-1][0] // MINUTE_MS * 100_000 + traded[-1][8] - 1
    before = simulator.market.klines_rows("ETHUSDT", "1m", t["openTime"] - MINUTE_MS, limit=1)
    assert t["prevClosePrice"] == before[0][4]
    for key in ("priceChange", "volume", "quoteVolume", "weightedAvgPrice", "lastQty", "bidQty"):
        assert isinstance(t[key], str) and len(t[key].split(".")[1]) == 8
    assert len(t["priceChangePercent"].split(".")[1]) == 3
    # Within the same minute the answer does not change; the next minute moves the window.
    assert get(simulator, "/api/v3/ticker/24hr", symbol="ETHUSDT").json() == t
    simulator.clock.advance(MINUTE_MS)
    later = get(simulator, "/api/v3/ticker/24hr", symbol="ETHUSDT").json()
    assert later["openTime"] == t["openTime"] + MINUTE_MS and later["count"] != t["count"]


def test_ticker_24hr_lists_weights_and_errors(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(symbols=generated_symbols(150, seed=9))
    names = [s.symbol for s in sim.config.symbols]
    everything = get(sim, "/api/v3/ticker/24hr")
    assert everything.headers["X-MBX-USED-WEIGHT-1M"] == "80"
    assert [t["symbol"] for t in everything.json()] == names
    for count, weight in ((20, 2), (21, 40), (100, 40), (101, 80)):
        used = int(get(sim, "/api/v3/ping").headers["X-MBX-USED-WEIGHT-1M"])
        r = get(
            sim, "/api/v3/ticker/24hr", symbols=json.dumps(names[:count], separators=(",", ":"))
        )
        assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) - used == weight
        assert [t["symbol"] for t in r.json()] == names[:count]
    mini = get(sim, "/api/v3/ticker/24hr", symbols='["BTCUSDT","ETHUSDT"]', type="MINI").json()
    assert list(mini[0]) == [
        "symbol",
        "openPrice",
        "highPrice",
        "lowPrice",
        "lastPrice",
        "volume",
        "quoteVolume",
        "openTime",
        "closeTime",
        "firstId",
        "lastId",
        "count",
    ]
    full = {t["symbol"]: t for t in everything.json()}
    assert mini[1]["volume"] == full["ETHUSDT"]["volume"]  # same minute, same window
    broken = get(sim, "/api/v3/ticker/24hr", symbolStatus="BREAK").json()
    statuses = {s.symbol: s.status for s in sim.config.symbols}
    assert broken and all(statuses[t["symbol"]] == "BREAK" for t in broken)
    # A symbol delisted long ago has an empty window.
    luna = get(sim, "/api/v3/ticker/24hr", symbol="LUNAUSDT").json()
    assert luna["count"] == 0 and luna["volume"] == "0.00000000" and luna["firstId"] == -1
    assert_error(
        get(sim, "/api/v3/ticker/24hr", symbol="LUNAUSDT", symbolStatus="TRADING"),
        400,
        -1220,
        "The symbol's status does not match the requested symbolStatus.",
    )
    assert_error(get(sim, "/api/v3/ticker/24hr", symbol="NOPEUSDT"), 400, -1121, "Invalid symbol.")
    assert_error(
        get(sim, "/api/v3/ticker/24hr", symbol="BTCUSDT", symbols='["BTCUSDT"]'),
        400,
        -1128,
        "Combination of optional parameters invalid.",
    )
    assert_error(
        get(sim, "/api/v3/ticker/24hr", type="HUGE"),
        400,
        -1130,
        "Data sent for parameter 'type' is not valid.",
    )


def test_exchange_info_of_a_generated_market(make_simulator: MakeSimulator) -> None:
    sim = make_simulator(symbols=generated_symbols(1500))
    body = get(sim, "/api/v3/exchangeInfo").json()
    assert len(body["symbols"]) == 1575 and body["serverTime"] == NOW
    assert sum(s["status"] == "TRADING" for s in body["symbols"]) == 1500
    assert {s["quoteAsset"] for s in body["symbols"]} >= {"USDT", "BTC", "ETH", "TRY"}
    one = get(sim, "/api/v3/exchangeInfo", symbol=body["symbols"][700]["symbol"]).json()
    assert one["symbols"] == [body["symbols"][700]]


def test_ip_ban_on_demand_refuses_everything_until_it_ends(simulator: SimulatorServer) -> None:
    simulator.faults.ban_ip(600)
    for path, params in [
        ("/api/v3/ping", {}),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m"}),
        ("/api/v3/ticker/24hr", {"symbol": "BTCUSDT"}),
    ]:
        r = get(simulator, path, **params)
        assert r.status_code == 418 and r.headers["Retry-After"] == "600"
        assert r.json()["code"] == -1003 and "IP banned until" in r.json()["msg"]
    assert simulator.stats.requests_during_ban == 3 and simulator.stats.bans == 1
    # Retry-After counts down on the simulated clock; the ban ends exactly then.
    simulator.clock.advance(599_000)
    assert get(simulator, "/api/v3/ping").headers["Retry-After"] == "1"
    simulator.clock.advance(1_000)
    assert get(simulator, "/api/v3/ping").status_code == 200
    assert simulator.stats.requests_during_ban == 4
    simulator.faults.ban_ip(60)
    simulator.faults.lift_bans()
    assert get(simulator, "/api/v3/ping").status_code == 200
    with pytest.raises(ValueError, match="at most 3 days"):
        simulator.faults.ban_ip(0)


def test_throttle_on_demand_answers_429_with_retry_after(simulator: SimulatorServer) -> None:
    simulator.faults.throttle(30)
    r = get(simulator, "/api/v3/klines", symbol="BTCUSDT", interval="1m", limit=1)
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    assert r.json()["code"] == -1003
    assert simulator.stats.requests_during_throttle == 1
    simulator.clock.advance(30_000)
    assert get(simulator, "/api/v3/ping").status_code == 200
    simulator.faults.throttle(30)
    simulator.faults.reset()
    assert get(simulator, "/api/v3/ping").status_code == 200
