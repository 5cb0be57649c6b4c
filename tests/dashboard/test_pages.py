"""Page logic with Streamlit's AppTest against a stand-in API over real HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cryptobot_core.services import free_port
from tests.dashboard.standin import StandIn

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
DAGSTER = "http://dagster.example:3000"
TIMEOUT = 30


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the variables under test; no stray .env."""
    for key in list(os.environ):
        if key.startswith("CRYPTOBOT_") and not key.startswith("CRYPTOBOT_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRYPTOBOT_DAGSTER_URL", DAGSTER)


@pytest.fixture
def api(env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    standin = StandIn().start()
    monkeypatch.setenv("CRYPTOBOT_API_URL", standin.url)
    yield standin
    standin.stop()


def texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def run(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_historical_page_draws_price_volume_and_volatility_in_one_chart(api: StandIn) -> None:
    at = run()
    assert not any("provisional" in t for t in texts(at.caption))
    assert texts(at.title) == ["Historical candles"]
    (chart,) = at.get("plotly_chart")
    figure = json.loads(chart.proto.spec)
    assert [t.get("yaxis") for t in figure["data"]] == ["y", "y2", "y2", "y3", "y3"]
    # The default range is the last 7 days: 672 candles at 15m fit, so no coarsening.
    assert {q["interval"] for q in api.candle_requests()} == {"15m"}
    assert not any("instead of" in t for t in texts(at.info))


def test_without_features_the_chart_has_two_panels_and_says_how_to_get_the_third(
    api: StandIn,
) -> None:
    api.has_features = False
    at = run()
    (chart,) = at.get("plotly_chart")
    figure = json.loads(chart.proto.spec)
    assert [t.get("yaxis") for t in figure["data"]] == ["y", "y2", "y2"]
    assert figure["layout"]["title"]["text"] == "BTCUSDT price and volume (15m candles)"
    assert any("materialize candle_features_15m" in t for t in texts(at.info)), texts(at.info)


def test_candles_ahead_of_history_are_named_provisional(api: StandIn) -> None:
    from datetime import timedelta

    api.provisional_from = api.last - timedelta(hours=6)
    at = run()
    (note,) = [t for t in texts(at.caption) if "provisional" in t]
    assert f"{api.provisional_from:%Y-%m-%d %H:%M} UTC" in note


def test_no_data_points_to_dagster(api: StandIn) -> None:
    api.has_data = False
    for page in (None, "live", "status"):
        at = run(page)
        assert any(
            f"No data yet — backfill in Dagster at {DAGSTER}" in t or "No live 1m data yet" in t
            for t in texts(at.info)
        ), texts(at.info)
        assert not at.get("plotly_chart")
    at = run()
    assert f"No data yet — backfill in Dagster at {DAGSTER}" in texts(at.info)


def test_api_down_shows_a_message_and_recovers(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("CRYPTOBOT_API_URL", f"http://127.0.0.1:{port}")
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception
    errors = texts(at.error)
    assert any("API unavailable" in e and f"127.0.0.1:{port}" in e for e in errors), errors
    assert not at.title  # the page stopped after the message
    standin = StandIn().start(port)
    try:
        at.run()
        assert not at.exception
        assert not at.error
        assert texts(at.title) == ["Historical candles"]
    finally:
        standin.stop()


def test_api_error_body_is_shown_not_a_traceback(api: StandIn) -> None:
    original = api.handle

    def failing(path: str, query: dict[str, str]) -> tuple[int, object]:
        if path.startswith("/candles/"):
            return 422, {
                "error": {
                    "status": 422,
                    "code": "invalid_range",
                    "message": "start must be before end",
                    "hint": "use ISO dates",
                }
            }
        return original(path, query)

    api.handle = failing  # type: ignore[method-assign]
    at = run()
    errors = texts(at.error)
    assert any("start must be before end" in e and "use ISO dates" in e for e in errors), errors


@pytest.mark.parametrize("simulated", [True, False])
def test_simulated_banner_on_every_page(api: StandIn, simulated: bool) -> None:
    api.simulated = simulated
    for page in (None, "live", "status"):
        at = run(page)
        banner = [w for w in texts(at.warning) if "Simulated data" in w]
        assert bool(banner) is simulated, (page, texts(at.warning))


def test_banner_says_why_auto_fell_back_to_the_simulator(api: StandIn) -> None:
    api.fallback_reason = "https://api.binance.com/api/v3/ping did not answer within 5 s"
    banner = [w for w in texts(run().warning) if "Simulated data" in w]
    assert banner and "did not answer within 5 s" in banner[0], banner


def test_long_range_requests_a_coarser_interval(api: StandIn) -> None:
    at = run()
    at.selectbox(key="hist_interval").set_value("15m")
    at.date_input(key="hist_range").set_value((date(2026, 1, 1), date(2026, 6, 30))).run()
    assert not at.exception
    last = api.candle_requests()[-1]
    assert last["interval"] == "6h"  # 181 days: 4h = 1086 points, 6h = 724
    assert any("**6h** candles instead of 15m" in t for t in texts(at.info)), texts(at.info)
    assert at.query_params["interval"] == "15m" and at.query_params["start"] == "2026-01-01"

    at.date_input(key="hist_range").set_value((date(2026, 6, 1), date(2026, 6, 7))).run()
    assert api.candle_requests()[-1]["interval"] == "15m"  # 672 points
    assert not any("instead of" in t for t in texts(at.info))


def test_the_interval_picker_offers_what_history_feeds(api: StandIn) -> None:
    options = run().selectbox(key="hist_interval").options
    assert "3m" not in options and options[:3] == ["1m", "15m", "30m"]


def test_the_interval_picker_offers_what_is_stored(api: StandIn) -> None:
    # With 1m history kept, 3m and 5m come from it, so old ranges have them too.
    api.extra_datasets = ("historical_data_1m",)
    at = run()
    assert at.selectbox(key="hist_interval").options[:4] == ["1m", "3m", "5m", "15m"]
    at.selectbox(key="hist_interval").set_value("3m")
    at.date_input(key="hist_range").set_value((date(2026, 6, 1), date(2026, 6, 1))).run()
    assert not at.exception
    assert api.candle_requests()[-1]["interval"] == "3m"  # 480 points


def test_live_page_shows_price_and_24h_change(api: StandIn) -> None:
    at = run("live")
    assert texts(at.title) == ["Live 1m candles"]
    price = at.metric[0]
    assert price.label == "BTCUSDT price"
    assert price.value  # synthetic latest close
    assert "(24 h)" in price.delta
    assert len(at.get("plotly_chart")) == 1


def test_status_page_shows_freshness_and_dagster_link(api: StandIn) -> None:
    at = run("status")
    assert texts(at.title) == ["Data status"]
    table = at.dataframe[0].value
    assert set(table["dataset"]) == {
        "historical_data_15m",
        "streaming_data_1m",
        "candle_features_15m",
    }
    assert set(table["status"]) == {"fresh"}
    assert any(DAGSTER in c for c in texts(at.caption))
    assert "No gaps found in the stored ranges." in texts(at.success)


def test_store_down_is_explained(api: StandIn) -> None:
    original = api.handle

    def handle(path: str, query: dict[str, str]) -> tuple[int, object]:
        if path == "/ready":
            return 503, {
                "status": "unavailable",
                "store": {"reachable": False, "error": "connection refused"},
                "exchange": {"source": "sim", "simulated": True},
                "datasets": None,
                "stream": None,
            }
        return original(path, query)

    api.handle = handle  # type: ignore[method-assign]
    at = run()
    errors = texts(at.error)
    assert any("document store is not reachable (connection refused)" in e for e in errors), errors
    assert not at.get("plotly_chart")


def test_a_link_opens_the_view_it_names(api: StandIn) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(symbol="btcusdt", interval="1h", start="2026-03-01", end="2026-03-10")
    at.run()
    assert not at.exception
    asked = api.candle_requests()[-1]
    assert (asked["interval"], asked["start"], asked["end"]) == (
        "1h",
        "2026-03-01T00:00:00Z",
        "2026-03-11T00:00:00Z",  # the end day is included
    )
    assert not at.warning or all("link" not in t for t in texts(at.warning))


def test_a_wrong_link_says_why_it_shows_something_else(api: StandIn) -> None:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(symbol="BTCUSDT", interval="7m")
    at.run()
    assert not at.exception
    assert any("interval='7m' is not one of 1m, 15m" in t for t in texts(at.warning))
    assert api.candle_requests()[-1]["interval"] == "15m"
    assert len(at.get("plotly_chart")) == 1


def test_a_bad_api_url_is_one_clear_line(env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTOBOT_API_URL", "localhost:8000")
    for page in (None, "live", "status"):
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
        if page:
            at.switch_page(f"views/{page}.py").run()
        assert not at.exception
        errors = texts(at.error)
        assert errors == [
            "**The dashboard is misconfigured.** CRYPTOBOT_API_URL='localhost:8000' is not a "
            "usable URL (it must start with http:// or https://); use e.g. http://127.0.0.1:8000"
        ], errors
        assert not at.title
