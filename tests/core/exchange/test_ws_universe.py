"""A 450-symbol universe (top:450:USDT of a 1,500-symbol market) streamed from the simulator
over several connections within Binance's limits, every closed minute equal to the
exchange's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from cryptobot_core.exchange import BinanceClient, KlineStream
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle
from cryptobot_core.simulator import SimClock, SimConfig, SimulatorServer, generated_symbols
from cryptobot_core.universe import UniverseRule, resolve

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

SPEED = 30.0  # a simulated minute every 2 real seconds
START = 1_763_596_800_000 + 2 * 60_000 + 5_000  # 2025-11-20 00:02:05 UTC
PER_CONNECTION = 200  # below Binance's 1,024, so this universe needs three connections


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    srv = SimulatorServer(
        SimConfig(
            symbols=generated_symbols(1500, seed=42),
            clock=SimClock.accelerated(START, SPEED),
            ws_update_interval_s=SPEED,  # one update per stream per real second
        )
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_a_450_symbol_universe_streams_exactly_over_three_connections(
    server: SimulatorServer,
) -> None:
    with BinanceClient(server.url) as client:
        symbols = resolve(UniverseRule(450, "USDT"), client)
    assert len(symbols) == 450
    finals: dict[str, list[Candle]] = {s: [] for s in symbols}

    async def run() -> KlineStream:
        stream = KlineStream(
            server.ws_url, symbols, "1m", max_streams_per_connection=PER_CONNECTION
        )
        try:
            async with asyncio.timeout(90):
                async for item in stream:
                    if isinstance(item, Candle) and item.is_closed:
                        finals[item.symbol].append(item)
                        if all(len(f) >= 2 for f in finals.values()):
                            return stream
        finally:
            await stream.close()
        return stream

    stream = asyncio.run(run())
    assert stream.stats.connections == 3
    assert server.stats.snapshot()["ws_connections_opened"] == 3
    # Every symbol's closed minutes are the exchange's, value for value, none twice.
    now = server.clock.now_ms()
    for symbol, got in finals.items():
        opens = [c.open_ms for c in got]
        assert len(opens) == len(set(opens)), symbol
        for candle in got:
            (want,) = server.market.klines(
                symbol, Interval.M1, candle.open_ms, candle.open_ms, 1, now_ms=now
            )
            assert candle.to_rest_row() == want.to_rest_row(), (symbol, candle.open_ms)
