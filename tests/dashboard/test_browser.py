"""The dashboard in headless Chromium, against the real API over a store filled from the simulator."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from cryptobot_core.intervals import Interval
from cryptobot_core.models import dt_to_ms
from cryptobot_core.services import ManagedProcess, free_ports
from cryptobot_core.settings import Settings

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# The README's screenshots are refreshed on request only, so a test run leaves the tree clean:
# CRYPTOBOT_TEST_UPDATE_SCREENSHOTS=1 .venv/bin/pytest tests/dashboard/test_browser.py
SCREENSHOTS = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SYMBOL = "BTCUSDT"
HISTORY_DAYS = 15
LIVE_HOURS = 6
DAGSTER = "http://127.0.0.1:3999"
# Generous: two cores are shared with other jobs; these bound waits, they assert nothing.
WAIT_MS = 90_000
# Charts whose data traces drew at least one non-empty path.
DRAWN_PLOTS_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(
    p => [...p.querySelectorAll('.cartesianlayer .trace path')].some(
        e => (e.getAttribute('d') || '').length > 10)).length"""


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _fill_store(settings: Settings, mongo_db: Any, now: datetime) -> None:
    """15m history, its features and recent 1m candles, all from the simulator."""
    from cryptobot_core import features
    from cryptobot_core.simulator.config import SimConfig
    from cryptobot_core.simulator.market import Market
    from cryptobot_core.store import HISTORICAL_15M, STREAMING_1M, CandleStore, FeatureStore

    market = Market(SimConfig(seed=42))
    end_15m = Interval.M15.floor(dt_to_ms(now))  # closed candles only
    start_15m = end_15m - HISTORY_DAYS * 86_400_000

    def fetch(interval: Interval, start: int, end: int) -> list[Any]:
        out: list[Any] = []
        while start < end:
            page = market.klines(SYMBOL, interval, start, end - 1, 1000)
            if not page:
                break
            out.extend(page)
            start = page[-1].open_ms + interval.ms
        return out

    history = CandleStore(mongo_db, HISTORICAL_15M)
    history.ensure_indexes()
    candles = fetch(Interval.M15, start_15m, end_15m)
    assert candles, "the simulator returned no 15m candles"
    history.insert_missing(candles)
    stream = CandleStore(mongo_db, STREAMING_1M)
    stream.ensure_indexes()
    now_ms = dt_to_ms(now)
    stream.upsert(fetch(Interval.M1, now_ms - LIVE_HOURS * 3_600_000, now_ms + 60_000))
    rows = list(mongo_db[HISTORICAL_15M].find({"symbol": SYMBOL}).sort("open_time", 1))
    feature_store = FeatureStore(mongo_db)
    feature_store.ensure_indexes()
    feature_store.write(features.feature_documents(_features(rows), rows))


def _features(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The feature rows the Spark asset writes, computed with pandas for test data only.

    The Spark job has its own tests; starting Spark here would cost most of this file's time
    budget on a shared machine, and the dashboard only displays what the API returns.
    """
    import math

    import pandas as pd

    df = pd.DataFrame(
        {
            "open_time": [r["open_time"] for r in rows],
            **{
                k: [float(r[k].to_decimal()) for r in rows]
                for k in ("close", "high", "low", "volume", "quote_volume")
            },
        }
    ).set_index("open_time")
    df["log_return"] = (df["close"] / df["close"].shift(1)).map(math.log)
    df["volatility_1h"] = df["log_return"].rolling("60min", min_periods=2).std()
    df["volatility_24h"] = df["log_return"].rolling("1440min", min_periods=2).std()
    day = df.rolling("1440min")
    df["vwap"] = day["quote_volume"].sum() / day["volume"].sum()
    df["hl_range"] = (df["high"] - df["low"]) / df["close"]
    df["volume_zscore"] = (df["volume"] - day["volume"].mean()) / day["volume"].std()
    out = []
    for ts, rec in df.iterrows():
        item: dict[str, Any] = {"symbol": SYMBOL, "open_time": ts.to_pydatetime()}
        for name in (
            "log_return",
            "volatility_1h",
            "volatility_24h",
            "vwap",
            "hl_range",
            "volume_zscore",
        ):
            value = rec[name]
            item[name] = None if pd.isna(value) else float(value)
        out.append(item)
    return out


@dataclass
class Running:
    api: ManagedProcess
    api_url: str
    dashboard_url: str


@pytest.fixture
def running(
    settings: Settings, mongo_db: Any, mongo_uri: str, db_name: str, tmp_path: Path
) -> Iterator[Running]:
    """The dashboard (streamlit run) on a free port, and the real API (uvicorn), not started yet."""
    _fill_store(settings, mongo_db, datetime.now(UTC))
    api_port, dash_port = free_ports(2)
    api_url = f"http://127.0.0.1:{api_port}"
    api = ManagedProcess(
        name="API (uvicorn)",
        argv=[
            sys.executable,
            "-m",
            "uvicorn",
            "cryptobot_api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(api_port),
        ],
        log_path=tmp_path / "api.log",
        healthy=lambda: _http_ok(f"{api_url}/health"),
        env={
            "CRYPTOBOT_MONGO_URI": mongo_uri,
            "CRYPTOBOT_MONGO_DB": db_name,
            "CRYPTOBOT_EXCHANGE": "sim",
            "CRYPTOBOT_DATA_DIR": str(tmp_path / ".cryptobot"),
        },
        cwd=tmp_path,
        port=api_port,
        startup_timeout=90,
    )
    dash_url = f"http://127.0.0.1:{dash_port}"
    dashboard = ManagedProcess(
        name="dashboard (streamlit)",
        argv=[
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboard" / "app.py"),
            "--server.headless=true",
            f"--server.port={dash_port}",
            "--server.address=127.0.0.1",
            "--browser.gatherUsageStats=false",
            "--server.fileWatcherType=none",
        ],
        log_path=tmp_path / "dashboard.log",
        healthy=lambda: _http_ok(f"{dash_url}/_stcore/health"),
        env={"CRYPTOBOT_API_URL": api_url, "CRYPTOBOT_DAGSTER_URL": DAGSTER},
        cwd=tmp_path,
        port=dash_port,
        startup_timeout=90,
    )
    try:
        dashboard.start()
        yield Running(api=api, api_url=api_url, dashboard_url=dash_url)
    finally:
        dashboard.stop()
        api.stop()


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium; a clear failure (never a skip, never a download) when it is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium with `make browser-deps` "
            "(apt-get install chromium); the browser test never downloads a browser."
        )
    return CHROMIUM


def test_dashboard_renders_in_chromium(chromium: str, running: Running, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = SCREENSHOTS if os.environ.get("CRYPTOBOT_TEST_UPDATE_SCREENSHOTS") == "1" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # Tall enough for every chart: Streamlit scrolls inside its own container, so a
            # full-page screenshot only shows what fits the viewport.
            page = browser.new_page(viewport={"width": 1400, "height": 2300})
            page.set_default_timeout(WAIT_MS)

            # API not started yet: a message, no traceback, and the page heals by itself.
            page.goto(running.dashboard_url + "/")
            page.get_by_text("API unavailable").wait_for()
            assert page.get_by_text("Traceback").count() == 0
            running.api.start()
            # The API must serve the simulator data we wrote, or the test proves nothing.
            ready = httpx.get(f"{running.api_url}/ready", timeout=10).json()
            assert ready["exchange"]["simulated"] is True
            page.get_by_role("heading", name="Historical candles").wait_for()  # no reload

            # Streamlit's developer toolbar items (Deploy, Rerun) are hidden. The dashboard
            # runs from a temporary directory here, so this checks that its config is found
            # next to app.py, not only when started from the repository root.
            page.get_by_test_id("stMainMenu").wait_for()  # the toolbar is drawn
            assert page.get_by_test_id("stAppDeployButton").count() == 0
            assert page.get_by_role("button", name="Deploy").count() == 0

            # Historical: one chart with data, its title and unit-labelled panels.
            page.wait_for_function(f"({DRAWN_PLOTS_JS})() >= 1")
            titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
            assert f"{SYMBOL} price, volume and volatility (15m candles)" in titles, titles
            axes = page.locator(
                ", ".join(f".js-plotly-plot .{y}title" for y in ("y", "y2", "y3"))
            ).all_text_contents()
            assert {"Price (USDT)", "Volume (BTC)", "Volatility (%)"} <= set(axes), axes
            assert page.get_by_text("Simulated data").first.is_visible()
            page.screenshot(path=str(shots / "historical.png"), full_page=True)

            # Live: the 1m chart, the current price and the 24 h change.
            page.set_viewport_size({"width": 1400, "height": 1150})
            page.goto(running.dashboard_url + "/live")
            page.wait_for_function(f"({DRAWN_PLOTS_JS})() >= 1")
            titles = page.locator(".js-plotly-plot .gtitle").all_text_contents()
            assert f"{SYMBOL} live (1m candles, last 3 h)" in titles, titles
            assert page.get_by_text(f"{SYMBOL} price").first.is_visible()
            assert page.get_by_text("(24 h)").first.is_visible()
            assert page.get_by_text("Simulated data").first.is_visible()
            page.screenshot(path=str(shots / "live.png"), full_page=True)

            # Data status: freshness, the source, the Dagster link.
            page.goto(running.dashboard_url + "/status")
            page.get_by_role("heading", name="Freshness").wait_for()
            page.get_by_text("No gaps found").or_(page.get_by_text("gap(s) found")).first.wait_for()
            link = page.get_by_role("link", name="Open the Dagster UI")
            assert link.get_attribute("href") == DAGSTER
            assert page.get_by_text("Simulated data").first.is_visible()
            assert page.get_by_text("Traceback").count() == 0
            page.screenshot(path=str(shots / "status.png"), full_page=True)
        finally:
            browser.close()
