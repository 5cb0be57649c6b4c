"""Contract tests per endpoint, against a SecantusDB filled by the core's own writers."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cryptobot_api.main import create_app
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, dec_str, ms_to_dt
from cryptobot_core.query import MAX_LIMIT, RESAMPLED_INTERVALS, iso
from cryptobot_core.query.params import source_collection
from cryptobot_core.store import HISTORICAL_15M, STREAMING_1M, CandleStore
from tests.api import seed
from tests.api.conftest import Filled

DECIMALS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
)


def as_json(c: Candle) -> dict[str, object]:
    """A simulator candle in the API's JSON form."""
    return {
        "open_time": iso(c.open_ms),
        "close_time": iso(c.close_ms),
        **{name: dec_str(getattr(c, name)) for name in DECIMALS},
        "trades": c.trades,
        "is_closed": c.is_closed,
        "provisional": False,
    }


def error_of(resp: object, status: int, code: str) -> dict[str, object]:
    """Assert the one error shape and return its detail."""
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    body = resp.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}
    err = body["error"]
    assert err["status"] == status and err["code"] == code and err["message"]
    return err  # type: ignore[no-any-return]


def test_health(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_ready_reports_store_datasets_exchange_and_stream(client: TestClient) -> None:
    resp = client.get("/ready")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ready"
    assert body["store"]["reachable"] is True
    assert body["exchange"]["source"] == "sim" and body["exchange"]["simulated"] is True
    assert body["exchange"]["rest_url"].startswith("http://")
    assert body["exchange"]["fallback_reason"] is None
    hist = body["datasets"]["historical_data_15m"]
    assert hist["newest_open_time"] == iso(seed.HISTORY_END - Interval.M15.ms)
    assert hist["symbols"] == 2 and hist["age_seconds"] > 0
    stream = body["datasets"]["streaming_data_1m"]
    assert stream["newest_open_time"] == iso(seed.STREAM_END) and stream["symbols"] == 1
    assert body["datasets"]["candle_features_15m"]["symbols"] == 1
    assert body["stream"]["producer"]["age_seconds"] >= 0
    assert body["stream"]["consumer"] is None


def test_ready_says_why_auto_fell_back_to_the_simulator(filled: Filled) -> None:
    reason = "https://api.binance.com/api/v3/ping did not answer within 5 s"
    app = create_app(filled.settings.model_copy(update={"exchange_fallback_reason": reason}))
    with TestClient(app) as fell_back:
        exchange = fell_back.get("/ready").json()["exchange"]
    assert exchange["simulated"] is True and exchange["fallback_reason"] == reason


def test_symbols_lists_first_last_and_count_per_dataset(client: TestClient, filled: Filled) -> None:
    body = client.get("/symbols").json()
    by_symbol = {s["symbol"]: s["datasets"] for s in body["symbols"]}
    assert set(by_symbol) == {"BTCUSDT", "ETHUSDT"}
    btc = by_symbol["BTCUSDT"]
    assert btc["15m"] == {
        "first_open_time": iso(seed.HISTORY_START),
        "last_open_time": iso(seed.HISTORY_END - Interval.M15.ms),
        "count": 2016,
    }
    assert btc["1m"]["count"] == 120 - 5 + 1
    assert "1m" not in by_symbol["ETHUSDT"]
    assert by_symbol["ETHUSDT"]["15m"]["count"] == 2012
    assert body["universe"] == {"rule": None, "resolved_at": None, "count": 2}
    assert all(s["configured"] and s["has_data"] for s in body["symbols"])


def test_symbols_under_a_rule_list_the_universe_and_mark_what_has_data(
    filled: Filled, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from cryptobot_core.universe import UniverseRule

    settings = filled.settings.model_copy(update={"symbols": UniverseRule(2, "USDT")})
    with TestClient(create_app(settings), raise_server_exceptions=False) as rule_client:
        # No writer has resolved the rule yet: nothing is configured, the data is listed.
        body = rule_client.get("/symbols").json()
        assert body["universe"] == {"rule": "top:2:USDT", "resolved_at": None, "count": 0}
        assert {s["symbol"]: s["configured"] for s in body["symbols"]} == {
            "BTCUSDT": False,
            "ETHUSDT": False,
        }
        resolved = datetime(2024, 1, 22, 0, 5, tzinfo=UTC)
        filled.db["symbol_universe"].insert_one(
            {"_id": "top:2:USDT", "symbols": ["BTCUSDT", "SOLUSDT"], "resolved_at": resolved}
        )
        try:
            body = rule_client.get("/symbols").json()
            assert body["universe"] == {
                "rule": "top:2:USDT",
                "resolved_at": iso(resolved),
                "count": 2,
            }
            flags = {s["symbol"]: (s["configured"], s["has_data"]) for s in body["symbols"]}
            # SOLUSDT joined (no data yet); ETHUSDT left (its data stays listed).
            assert flags == {
                "BTCUSDT": (True, True),
                "ETHUSDT": (False, True),
                "SOLUSDT": (True, False),
            }
            sol = next(s for s in body["symbols"] if s["symbol"] == "SOLUSDT")
            assert sol["datasets"] == {}
        finally:
            filled.db["symbol_universe"].delete_many({})


def test_candles_15m_are_the_exchange_candles_exactly(client: TestClient, filled: Filled) -> None:
    start, end = seed.HISTORY_START, seed.HISTORY_START + 7 * 86_400_000
    resp = client.get(
        "/candles/BTCUSDT",
        params={"interval": "15m", "start": iso(start), "end": str(end), "limit": 1000},
    )
    body = resp.json()
    assert resp.status_code == 200
    assert body["symbol"] == "BTCUSDT" and body["interval"] == "15m"
    assert body["source_dataset"] == "historical_data_15m"
    expected = seed.klines(filled.market, "BTCUSDT", Interval.M15, start, end)
    assert body["candles"] == [as_json(c) for c in expected]
    assert body["next_cursor"] is None
    # Decimals are strings with the exchange's own digits.
    assert isinstance(body["candles"][0]["open"], str) and "." in body["candles"][0]["open"]


FROM_HISTORY = [
    i.value
    for i in RESAMPLED_INTERVALS
    if source_collection(i) == HISTORICAL_15M and not i.is_calendar
]
FROM_STREAM = [i.value for i in RESAMPLED_INTERVALS if source_collection(i) == STREAMING_1M]


def test_every_binance_interval_from_a_minute_up_is_served() -> None:
    assert set(Interval) - {Interval.S1} == {Interval.M1, Interval.M15, *RESAMPLED_INTERVALS}
    assert FROM_STREAM == ["3m", "5m"]


def test_one_second_is_refused_unless_kept_as_history(client: TestClient) -> None:
    resp = client.get("/candles/BTCUSDT", params={"interval": "1s"})
    assert resp.status_code == 422
    detail = str(resp.json())
    assert "'1s' is not served here" in detail and "1m, 3m" in detail and "1M" in detail


def test_monthly_buckets_follow_the_calendar(client: TestClient, filled: Filled) -> None:
    # November (30 days) and December (31 days) of 15m history for a third symbol.
    start, end = seed.ms("2023-11-01T00:00:00"), seed.ms("2024-01-01T00:00:00")
    history = CandleStore(filled.db, HISTORICAL_15M)
    history.insert_missing(seed.klines(filled.market, "SOLUSDT", Interval.M15, start, end))
    try:
        resp = client.get("/candles/SOLUSDT", params={"interval": "1M", "start": start, "end": end})
        assert resp.status_code == 200, resp.text
        got = resp.json()["candles"]
        want = filled.market.klines("SOLUSDT", Interval.MO1, start, end - 1, 10, now_ms=end)
        assert [c["open_time"] for c in got] == [
            "2023-11-01T00:00:00.000Z",
            "2023-12-01T00:00:00.000Z",
        ]
        assert got == [as_json(c) for c in want]
        assert got[1]["close_time"] == "2023-12-31T23:59:59.999Z"
    finally:
        filled.db[HISTORICAL_15M].delete_many({"symbol": "SOLUSDT"})


@pytest.mark.parametrize("interval", FROM_HISTORY)
@pytest.mark.parametrize("symbol", ["BTCUSDT", "ETHUSDT"])
def test_resampled_candles_equal_the_exchange_candles(
    client: TestClient, filled: Filled, symbol: str, interval: str
) -> None:
    resp = client.get(
        f"/candles/{symbol}",
        params={
            "interval": interval,
            "start": seed.HISTORY_START,
            "end": seed.HISTORY_END,
            "limit": MAX_LIMIT,
        },
    )
    assert resp.status_code == 200, resp.text
    got = resp.json()["candles"]
    expected = seed.klines(
        filled.market, symbol, Interval(interval), seed.HISTORY_START, seed.HISTORY_END
    )
    # Only buckets history covers whole (a 3d bucket can reach past the stored days).
    expected = [c for c in expected if c.close_ms < seed.HISTORY_END]
    assert len(got) == len(expected) > 0
    assert got == [as_json(c) for c in expected]


@pytest.mark.parametrize("interval", FROM_STREAM)
def test_minute_multiples_are_resampled_from_the_stream(
    client: TestClient, filled: Filled, interval: str
) -> None:
    # The stream's first hour or so: every bucket before the five minutes it never received.
    start, end = seed.STREAM_START, Interval(interval).floor(seed.STREAM_HOLE[0])
    resp = client.get("/candles/BTCUSDT", params={"interval": interval, "start": start, "end": end})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["source_dataset"] == STREAMING_1M
    expected = seed.klines(filled.market, "BTCUSDT", Interval(interval), start, end)
    expected = [c for c in expected if c.close_ms < end]
    assert len(body["candles"]) == len(expected) > 0
    assert body["candles"] == [as_json(c) for c in expected]


def test_weekly_buckets_open_on_monday(client: TestClient) -> None:
    got = client.get(
        "/candles/BTCUSDT",
        params={"interval": "1w", "start": "2023-12-28T00:00:00Z", "end": "2024-02-01"},
    ).json()["candles"]
    assert [c["open_time"] for c in got] == [
        "2024-01-01T00:00:00.000Z",
        "2024-01-08T00:00:00.000Z",
        "2024-01-15T00:00:00.000Z",
    ]


def test_incomplete_bucket_only_with_include_open(client: TestClient, filled: Filled) -> None:
    # History ends at 2024-01-22 00:00, so both 12h buckets of 2024-01-21 are complete.
    params = {"interval": "12h", "start": "2024-01-21T00:00:00Z"}
    assert len(client.get("/candles/BTCUSDT", params=params).json()["candles"]) == 2
    # Hide the last 15m candle: its 12h bucket becomes open.
    filled.db["historical_data_15m"].update_one(
        {"symbol": "ETHUSDT", "open_time": ms_to_dt(seed.HISTORY_END - Interval.M15.ms)},
        {"$set": {"is_closed": False}},
    )
    try:
        closed = client.get("/candles/ETHUSDT", params=params).json()["candles"]
        with_open = client.get("/candles/ETHUSDT", params={**params, "include_open": "true"}).json()
        assert len(closed) == 1 and len(with_open["candles"]) == 2
        assert with_open["candles"][-1]["is_closed"] is False
    finally:
        filled.db["historical_data_15m"].update_many(
            {"symbol": "ETHUSDT"}, {"$set": {"is_closed": True}}
        )


def test_cursor_pagination_walks_every_candle_once(client: TestClient) -> None:
    seen: list[str] = []
    params: dict[str, object] = {"interval": "15m", "start": seed.HISTORY_START, "limit": 700}
    pages = 0
    while True:
        body = client.get("/candles/BTCUSDT", params=params).json()
        seen.extend(c["open_time"] for c in body["candles"])
        pages += 1
        if body["next_cursor"] is None:
            break
        params = {"interval": "15m", "cursor": body["next_cursor"], "limit": 700}
    assert pages == 3
    assert len(seen) == len(set(seen)) == 2016


def test_without_start_the_newest_candles_come_back(client: TestClient) -> None:
    body = client.get("/candles/BTCUSDT", params={"interval": "1h", "limit": 3}).json()
    assert [c["open_time"] for c in body["candles"]] == [
        "2024-01-21T21:00:00.000Z",
        "2024-01-21T22:00:00.000Z",
        "2024-01-21T23:00:00.000Z",
    ]


def test_1m_comes_from_the_stream_closed_unless_include_open(client: TestClient) -> None:
    params = {"interval": "1m", "start": seed.STREAM_START}
    closed = client.get("/candles/BTCUSDT", params=params).json()
    assert closed["source_dataset"] == "streaming_data_1m"
    assert len(closed["candles"]) == 115 and all(c["is_closed"] for c in closed["candles"])
    live = client.get("/candles/BTCUSDT", params={**params, "include_open": "true"}).json()
    assert len(live["candles"]) == 116
    assert live["candles"][-1]["open_time"] == iso(seed.STREAM_END)
    assert live["candles"][-1]["is_closed"] is False


def test_latest(client: TestClient, filled: Filled) -> None:
    one = client.get("/candles/BTCUSDT/latest", params={"interval": "1m"}).json()
    assert one["interval"] == "1m" and one["candle"]["open_time"] == iso(seed.STREAM_END)
    fifteen = client.get("/candles/btcusdt/latest", params={"interval": "15m"}).json()
    assert fifteen["symbol"] == "BTCUSDT"
    last = seed.klines(
        filled.market, "BTCUSDT", Interval.M15, seed.HISTORY_END - 900_000, seed.HISTORY_END
    )
    assert fifteen["candle"] == as_json(last[0])
    error_of(
        client.get("/candles/BTCUSDT/latest", params={"interval": "1h"}), 422, "invalid_parameter"
    )


def test_stats_over_a_window(client: TestClient, filled: Filled) -> None:
    start, end = seed.HISTORY_START, seed.HISTORY_START + 86_400_000
    body = client.get(
        "/stats/BTCUSDT", params={"interval": "1h", "start": start, "end": end}
    ).json()
    hours = seed.klines(filled.market, "BTCUSDT", Interval.H1, start, end)
    assert body["count"] == 24 and body["start"] == iso(start) and body["end"] == iso(end)
    assert body["open"] == dec_str(hours[0].open) and body["close"] == dec_str(hours[-1].close)
    assert body["high"] == dec_str(max(h.high for h in hours))
    assert body["low"] == dec_str(min(h.low for h in hours))
    assert Decimal(body["volume"]) == sum(h.volume for h in hours)
    assert body["return"] == pytest.approx(float(hours[-1].close / hours[0].open - 1))
    logs = [
        math.log(float(b.close) / float(a.close)) for a, b in zip(hours, hours[1:], strict=False)
    ]
    mean = sum(logs) / len(logs)
    std = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    assert body["volatility"] == pytest.approx(std)


def test_features(client: TestClient) -> None:
    body = client.get("/features/BTCUSDT", params={"limit": 5}).json()
    rows = body["features"]
    assert len(rows) == 5 and rows[-1]["open_time"] == iso(seed.HISTORY_END - 900_000)
    all_rows = client.get("/features/BTCUSDT").json()["features"]
    assert len(all_rows) == seed.FEATURE_ROWS
    assert all_rows[0]["log_return"] is None  # NaN is not JSON: it becomes null
    assert all_rows[1]["log_return"] == pytest.approx(0.001)
    assert isinstance(all_rows[0]["close"], str)
    assert client.get("/features/ETHUSDT").json() == {"symbol": "ETHUSDT", "features": []}


def test_gaps_lists_missing_closed_candles(client: TestClient) -> None:
    body = client.get("/gaps/BTCUSDT", params={"dataset": "1m", "start": seed.STREAM_START}).json()
    assert body["gaps"] == [
        {"start": iso(seed.STREAM_HOLE[0]), "end": iso(seed.STREAM_HOLE[1]), "missing": 5}
    ]
    eth = client.get(
        "/gaps/ETHUSDT", params={"dataset": "15m", "start": "2024-01-10", "end": "2024-01-11"}
    ).json()
    assert eth["gaps"] == [
        {"start": "2024-01-10T03:15:00.000Z", "end": "2024-01-10T04:15:00.000Z", "missing": 4}
    ]
    assert client.get("/gaps/BTCUSDT", params={"dataset": "15m"}).json()["gaps"] == []


def test_unknown_symbol_is_404_with_a_hint(client: TestClient) -> None:
    for path in (
        "/candles/DOGEBTC",
        "/candles/DOGEBTC/latest",
        "/stats/DOGEBTC",
        "/features/DOGEBTC",
        "/gaps/DOGEBTC",
        "/stream/DOGEBTC",
    ):
        err = error_of(client.get(path), 404, "unknown_symbol")
        assert err["hint"] == "GET /symbols lists the symbols with data"


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"interval": "7m"}, "allowed: 1m, 3m, 5m, 15m, 30m"),
        ({"interval": "1s"}, "allowed"),
        ({"start": "yesterday"}, "ISO-8601"),
        ({"start": "2024-13-01"}, "ISO-8601"),
        ({"end": "-1"}, "epoch milliseconds"),
        ({"limit": 0}, "limit"),
        ({"limit": MAX_LIMIT + 1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "garbage!"}, "cursor"),
        ({"cursor": "-5"}, "cursor"),
        ({"include_open": "maybe"}, "include_open"),
    ],
)
def test_bad_candle_parameters_are_422_saying_what_is_allowed(
    client: TestClient, params: dict[str, object], needle: str
) -> None:
    err = error_of(client.get("/candles/BTCUSDT", params=params), 422, "invalid_parameter")
    assert needle in str(err["message"])


def test_start_at_or_after_end_is_an_empty_window(client: TestClient) -> None:
    start = iso(seed.HISTORY_START + 86_400_000)
    for end in (start, iso(seed.HISTORY_START)):
        for path in ("/candles/BTCUSDT", "/features/BTCUSDT"):
            answer = client.get(path, params={"start": start, "end": end})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body.get("candles", body.get("features")) == [], body
        stats = client.get("/stats/BTCUSDT", params={"start": start, "end": end}).json()
        assert stats["count"] == 0 and stats["start"] == start
        gaps = client.get("/gaps/BTCUSDT", params={"start": start, "end": end}).json()
        assert gaps["gaps"] == []
    # An unknown symbol is still unknown, whatever the window.
    error_of(
        client.get("/candles/DOGEBTC", params={"start": start, "end": start}), 404, "unknown_symbol"
    )


def test_the_cursor_is_the_next_pages_first_open_time(client: TestClient) -> None:
    first = client.get("/candles/BTCUSDT", params={"start": seed.HISTORY_START, "limit": 5}).json()
    cursor = first["next_cursor"]
    assert cursor == str(seed.HISTORY_START + 5 * 900_000)
    by_cursor = client.get("/candles/BTCUSDT", params={"cursor": cursor, "limit": 5}).json()
    by_start = client.get("/candles/BTCUSDT", params={"start": cursor, "limit": 5}).json()
    assert by_cursor == by_start and by_cursor["candles"][0]["open_time"] == iso(int(cursor))


def test_other_bad_input(client: TestClient) -> None:
    error_of(client.get("/candles/BTC-USDT"), 422, "invalid_parameter")
    error_of(client.get("/gaps/BTCUSDT", params={"dataset": "5m"}), 422, "invalid_parameter")
    error_of(client.get("/no/such/route"), 404, "not_found")
    error_of(client.post("/health"), 405, "method_not_allowed")


def test_cors_origins_come_from_settings(client: TestClient, filled: Filled) -> None:
    origin = filled.settings.api_cors_origins[0]
    allowed = client.get("/health", headers={"Origin": origin})
    assert allowed.headers["access-control-allow-origin"] == origin
    other = client.get("/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_metrics_count_requests_by_route_and_report_freshness(client: TestClient) -> None:
    client.get("/candles/BTCUSDT/latest")
    client.get("/candles/ETHUSDT/latest", params={"interval": "15m"})
    text = client.get("/metrics").text
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("cryptobot_api_requests_total{")
        and 'route="/candles/{symbol}/latest"' in x
        and 'status="200"' in x
    )
    assert float(line.rsplit(" ", 1)[1]) >= 2
    assert "cryptobot_api_request_duration_seconds_bucket{" in text
    assert 'cryptobot_dataset_age_seconds{dataset="historical_data_15m"}' in text
    assert "cryptobot_store_up 1.0" in text
    assert "BTCUSDT" not in text  # route templates, not raw paths


def test_openapi_documents_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/candles/{symbol}", "/stream/{symbol}", "/ready", "/metrics"} <= set(spec["paths"])
    assert "examples" in spec["components"]["schemas"]["CandlePublic"]
    assert client.get("/docs").status_code == 200


def test_importing_the_app_reads_no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import cryptobot_api.main as main

    monkeypatch.setenv("CRYPTOBOT_MONGO_URI", "not-a-uri")  # would fail if read at import
    reloaded = importlib.reload(main)
    assert reloaded.app.title == "CryptoBot API"


EDGE_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00",
    "9999-12-31T23:00:00-05:00",
    "9999-12-31T23:59:59.999999",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00:00Z",
    "2999-12-31T23:59:59.999Z",
    "3000-01-01T00:00:00Z",
    "0",
    "32503679999999",
    "99999999999999999999",
]


@pytest.mark.parametrize("when", EDGE_TIMES)
def test_no_time_near_the_ends_of_the_calendar_gives_a_5xx(client: TestClient, when: str) -> None:
    requests: list[tuple[str, dict[str, object]]] = []
    for name in ("start", "end"):
        requests += [("/candles/BTCUSDT", {name: when, "interval": i}) for i in ("1m", "15m", "1w")]
        requests += [(f"/{what}/BTCUSDT", {name: when}) for what in ("stats", "features")]
        requests += [("/gaps/BTCUSDT", {name: when, "dataset": d}) for d in ("1m", "15m")]
    for path, params in requests:
        answer = client.get(path, params=params)
        # Every well-formed time is answered: outside 1970..2999 it reads as the bound.
        assert answer.status_code == 200, (path, params, answer.text)


@pytest.mark.parametrize("interval", ["30m", "4h", "1d", "1w"])
def test_a_resampled_page_reads_a_bounded_number_of_source_candles(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, interval: str
) -> None:
    from cryptobot_core.query.params import MAX_WINDOW_SLOTS

    query = client.app.state.query  # type: ignore[attr-defined]
    windows: list[tuple[int, int]] = []
    find = query._find

    def spy(collection: str, symbol: str, lo: int, hi: int, **kwargs: object) -> object:
        windows.append((lo, hi))
        return find(collection, symbol, lo, hi, **kwargs)

    monkeypatch.setattr(query, "_find", spy)
    pages, cursor, rows = 0, None, []
    params: dict[str, object] = {"interval": interval, "limit": 20_000, "start": 0}
    while True:
        answer = client.get(
            "/candles/BTCUSDT", params={**params, "cursor": cursor} if cursor else params
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rows += body["candles"]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor or pages > 50:
            break
    # Every read spans at most MAX_WINDOW_SLOTS 15-minute candles, whatever the limit asked.
    assert windows and all((hi - lo) // 900_000 <= MAX_WINDOW_SLOTS for lo, hi in windows)
    # And following the cursor still gives every bucket once, in order.
    opens = [r["open_time"] for r in rows]
    assert opens == sorted(set(opens)) and opens


def test_an_oversized_window_is_narrowed_to_the_newest_stored_data(client: TestClient) -> None:
    from cryptobot_core.query import MAX_WINDOW_SLOTS, parse_time

    body = client.get(
        "/stats/BTCUSDT", params={"interval": "1m", "start": "0", "end": "9999-01-01T00:00:00Z"}
    ).json()
    start, end = parse_time(body["start"], "start"), parse_time(body["end"], "end")
    assert start is not None and end is not None and end - start == MAX_WINDOW_SLOTS * 60_000
    assert end <= seed.STREAM_END + 60_000 and body["count"] > 0
