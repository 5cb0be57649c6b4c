"""Third-party proof: python-binance works against the simulator by changing only the base URL."""

from __future__ import annotations

from typing import Any

import pytest
from binance.client import Client
from binance.exceptions import BinanceAPIException

from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.simulator import Market, SimulatorServer
from tests.fixtures.simulator import SIM_NOW_MS

NOW = SIM_NOW_MS


def python_binance(server: SimulatorServer) -> Client:
    client = Client(api_key=None, api_secret=None, ping=False)
    # python-binance builds every spot URL as API_URL + "/v3/" + path.
    client.API_URL = server.url + "/api"
    return client


def market_rows(
    market: Market, symbol: str, interval: str, start: int, end: int
) -> list[list[Any]]:
    """Every row in [start, end], paged 1000 at a time straight from the Market."""
    out: list[list[Any]] = []
    iv = Interval(interval)
    while True:
        page = market.klines_rows(symbol, iv, start, end, 1000)
        out += page
        if len(page) < 1000:
            return out
        start = page[-1][0] + iv.ms


def test_python_binance_historical_klines_equal_our_market(simulator: SimulatorServer) -> None:
    client = python_binance(simulator)
    start = NOW - 12 * 86_400_000
    end = Interval.M15.floor(NOW) - 15 * MINUTE_MS
    got = client.get_historical_klines("ETHUSDT", Client.KLINE_INTERVAL_15MINUTE, start, end)
    expected = market_rows(simulator.market, "ETHUSDT", "15m", start, end)
    assert len(got) == len(expected) > 1000  # more than one page
    assert got == expected
    assert simulator.stats.requests_by_path["/api/v3/klines"] >= 3


def test_python_binance_server_time_exchange_info_and_errors(simulator: SimulatorServer) -> None:
    client = python_binance(simulator)
    assert client.get_server_time() == {"serverTime": NOW}
    client.ping()
    info = client.get_symbol_info("BTCUSDT")
    assert info is not None and info["status"] == "TRADING"
    klines = client.get_klines(symbol="BNBUSDT", interval="1h", limit=3)
    assert klines == simulator.market.klines_rows("BNBUSDT", "1h", limit=3)
    with pytest.raises(BinanceAPIException) as err:
        client.get_klines(symbol="NOPEUSDT", interval="1h")
    assert err.value.code == -1121 and err.value.message == "Invalid symbol."
    with pytest.raises(BinanceAPIException) as err:
        client.get_klines(symbol="BTCUSDT", interval="7m")
    assert err.value.code == -1120
