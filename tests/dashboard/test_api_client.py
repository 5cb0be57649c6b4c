"""The API client over real HTTP: paging, friendly errors, and no cached failures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from cryptobot_core.services import free_port
from dashboard.api_client import ApiClient, ApiError, ApiUnavailable
from tests.dashboard.standin import StandIn, candle


@pytest.fixture
def api() -> Iterator[StandIn]:
    standin = StandIn().start()
    yield standin
    standin.stop()


def test_candles_follow_the_cursor_without_duplicates(api: StandIn) -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    end = start + timedelta(days=30)  # 2880 rows at 15m: two pages of at most 2000
    series = ApiClient(api.url).candles("BTCUSDT", "15m", start, end)
    times = [c.open_time for c in series.candles]
    assert len(times) == 2880 == len(set(times))
    assert times == sorted(times) and times[0] == start
    assert not series.truncated and series.source_dataset == "historical_data_15m"
    # Exactly the decimal strings the API sent.
    assert str(series.candles[0].close) == candle(start, 900)["close"]
    assert len(api.candle_requests()) == 2
    assert "cursor" in api.candle_requests()[1]


def test_features_page_past_the_api_limit(api: StandIn) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=250)  # 24000 rows > 20000 per answer
    features = ApiClient(api.url).features("BTCUSDT", start, end)
    times = list(features.open_time_ms)
    assert len(times) == 24000 == len(set(times))
    assert times == sorted(times) and times[0] == start.timestamp() * 1000
    assert [q.get("limit") for p, q in api.requests if p.startswith("/features")] == [
        "20000",
        "20000",
    ]


def test_unreachable_api_names_the_url_and_what_to_do() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ApiUnavailable) as info:
        ApiClient(url).symbols()
    assert url in info.value.message
    assert "CRYPTOBOT_API_URL" in info.value.hint


def test_api_error_shapes(api: StandIn) -> None:
    original = api.handle
    answers: dict[str, tuple[int, object]] = {
        "/symbols": (
            400,
            {
                "error": {
                    "status": 400,
                    "code": "bad_symbol",
                    "message": "invalid symbol 'x'",
                    "hint": "use BTCUSDT",
                }
            },
        ),
        "/ready": (503, {"status": "not ready", "store": {"reachable": False}}),
        "/health": (200, b"<html>not the API</html>"),
        "/stats/BTCUSDT": (500, b"Internal Server Error"),
    }

    def handle(path: str, query: dict[str, str]) -> tuple[int, object]:
        return answers.get(path) or original(path, query)

    api.handle = handle  # type: ignore[method-assign]
    client = ApiClient(api.url)
    with pytest.raises(ApiError) as info:
        client.symbols()
    assert (info.value.message, info.value.hint, info.value.status, info.value.code) == (
        "invalid symbol 'x'",
        "use BTCUSDT",
        400,
        "bad_symbol",
    )
    with pytest.raises(ApiError, match="document store is not reachable") as info:
        client.ready()
    assert info.value.status == 503
    with pytest.raises(ApiError, match="not JSON"):
        client.health()
    with pytest.raises(ApiError, match="answered 500"):
        client.stats("BTCUSDT", "1h")


def test_failures_are_not_cached() -> None:
    port = free_port()
    client = ApiClient(f"http://127.0.0.1:{port}")
    with pytest.raises(ApiUnavailable):
        client.ready()
    later = StandIn().start(port)
    try:
        assert client.ready().status == "ready"
    finally:
        later.stop()


def test_latest_is_none_on_404(api: StandIn) -> None:
    original = api.handle

    def handle(path: str, query: dict[str, str]) -> tuple[int, object]:
        if path.endswith("/latest"):
            return 404, {
                "error": {"status": 404, "code": "no_data", "message": "no candles", "hint": ""}
            }
        return original(path, query)

    api.handle = handle  # type: ignore[method-assign]
    assert ApiClient(api.url).latest("BTCUSDT") is None


def test_an_answer_of_the_wrong_shape_names_the_path(api: StandIn) -> None:
    original = api.handle

    def handle(path: str, query: dict[str, str]) -> tuple[int, object]:
        status, body = original(path, query)
        if path.startswith("/candles/") and isinstance(body, dict):
            body["candles"][0]["close"] = 1.5  # a float where the contract has a string
        return status, body

    api.handle = handle  # type: ignore[method-assign]
    with pytest.raises(ApiError) as info:
        ApiClient(api.url).candles("BTCUSDT", "1h")
    assert info.value.message.startswith(
        "The API's answer to /candles/BTCUSDT is not what this dashboard expects"
    )
    assert "same version" in info.value.hint
