"""KlineStream against the project's Binance simulator: drops, repair, malformed frames."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from cryptobot_core.exchange import BinanceClient, KlineStream, MalformedFrame, StreamGap
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle
from cryptobot_core.simulator import SimClock, SimConfig, SimulatorServer
from tests.core.exchange.aio import run_async

# A hang (e.g. a task that ignores cancellation) fails fast instead of eating the CI budget.
pytestmark = pytest.mark.timeout(60)

START = 1_763_640_000_000  # 2025-11-20 12:00 UTC
SPEED = 60.0  # one simulated minute per real second
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    """A simulator whose clock runs 60x, so candles close every second."""
    srv = SimulatorServer(
        SimConfig(seed=5, clock=SimClock.accelerated(START + 5_000, SPEED))
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


def finals(items: list[Any], symbol: str) -> dict[int, Candle]:
    """Closed candles of one symbol by open time."""
    return {
        i.open_ms: i for i in items if isinstance(i, Candle) and i.symbol == symbol and i.is_closed
    }


@pytest.mark.slow
def test_dropped_connection_loses_no_closed_candle_once_the_gap_is_repaired(
    server: SimulatorServer,
) -> None:
    items: list[Any] = []

    async def run() -> None:
        # A 1-2 s reconnect delay is a simulated minute or more: finals are surely missed.
        stream = KlineStream(server.ws_url, SYMBOLS, "1m", reconnect_backoff=(2.0, 2.0))

        async def collect_until(done: Any) -> None:
            async for item in stream:
                items.append(item)
                if done():
                    return

        await asyncio.wait_for(
            collect_until(lambda: all(len(finals(items, s)) >= 2 for s in SYMBOLS)), 20
        )
        dropped = await asyncio.to_thread(server.faults.drop_connections)
        assert dropped == 1
        mark = len(items)
        await asyncio.wait_for(
            collect_until(
                lambda: (
                    all(len(finals(items[mark:], s)) >= 2 for s in SYMBOLS)
                    and any(isinstance(i, StreamGap) for i in items[mark:])
                )
            ),
            30,
        )
        await stream.close()
        assert stream.stats.reconnects == 1

    asyncio.run(run())
    gaps = [i for i in items if isinstance(i, StreamGap)]
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.missed_from_ms is not None and gap.missed_from_ms < gap.missed_to_ms
    assert gap.symbols == tuple(SYMBOLS) and gap.interval is Interval.M1
    with BinanceClient(server.url) as client:
        for symbol in SYMBOLS:
            ws = finals(items, symbol)
            repaired = {
                c.open_ms: c
                for c in client.klines(
                    symbol, "1m", Interval.M1.floor(gap.missed_from_ms), gap.missed_to_ms + 1
                )
            }
            assert set(repaired) - set(ws), "the drop must have cost at least one final"
            merged = {**repaired, **ws}
            first, last = min(ws), max(ws)
            assert sorted(merged) == list(range(first, last + 1, 60_000)), (
                f"{symbol}: a closed minute was lost"
            )
            for open_ms, candle in merged.items():
                truth = server.market.candle_at(symbol, "1m", open_ms)
                assert truth is not None and candle.to_rest_row() == truth.to_rest_row()


@run_async
async def test_malformed_frames_from_the_exchange_are_surfaced() -> None:
    srv = SimulatorServer(
        SimConfig(seed=9, clock=SimClock.accelerated(START + 5_000, SPEED))
    ).start()
    try:
        srv.faults.malformed_frame_rate = 0.5
        srv.faults.seed = 1
        stream = KlineStream(srv.ws_url, ["BTCUSDT"], "1m")
        items: list[Any] = []

        async def collect() -> None:
            async for item in stream:
                items.append(item)
                if (
                    sum(isinstance(i, MalformedFrame) for i in items) >= 3
                    and len(finals(items, "BTCUSDT")) >= 2
                ):
                    return

        await asyncio.wait_for(collect(), 20)
        await stream.close()
    finally:
        await asyncio.to_thread(srv.stop)
    bad = [i for i in items if isinstance(i, MalformedFrame)]
    # Counted on arrival; a few may still sit in the queue when the consumer stops.
    assert srv.stats.ws_malformed_sent >= stream.stats.malformed >= len(bad) >= 3
    assert all(b.raw and b.reason for b in bad)
    closed = sorted(finals(items, "BTCUSDT"))
    assert closed == list(range(closed[0], closed[-1] + 1, 60_000)), "a good frame was lost"


@run_async
async def test_streams_the_exchange_refuses_raise_instead_of_retrying_forever() -> None:
    from cryptobot_core.errors import ExchangeError

    srv = SimulatorServer(
        SimConfig(seed=9, clock=SimClock.accelerated(START + 5_000, SPEED))
    ).start()
    try:
        stream = KlineStream(srv.ws_url, ["NOPEUSDT"], "1m")
        with pytest.raises(ExchangeError, match="HTTP 400.*NOPEUSDT|nopeusdt"):
            await asyncio.wait_for(stream.__anext__(), 10)
        await stream.close()
        assert stream.stats.connect_failures == 0
    finally:
        await asyncio.to_thread(srv.stop)


@run_async
async def test_a_ban_on_the_handshake_is_waited_out_not_a_permanent_failure() -> None:
    srv = SimulatorServer(SimConfig(seed=9, ws_update_interval_s=0.25)).start()  # real clock
    try:
        srv.faults.ban_ip(2.0)  # 418 with Retry-After: 2 on every handshake for 2 s
        stream = KlineStream(srv.ws_url, ["BTCUSDT"], "1m", reconnect_backoff=(0.1, 0.2))
        first = await asyncio.wait_for(stream.__anext__(), 20)
        await stream.close()
        assert isinstance(first, (Candle, StreamGap))
        assert stream.stats.connect_failures >= 1
        # It stayed away for the Retry-After instead of retrying every 0.1-0.2 s.
        assert srv.stats.snapshot()["ws_handshakes_refused"] <= 2
    finally:
        await asyncio.to_thread(srv.stop)
