"""WebSocket faults with 240 symbols on one connection, judged on the full stored window.

Each test streams every TRADING symbol of a generated 240-symbol market from the simulator
(its clock 30x: a minute every 2 s) over one combined connection, the streams beyond the
handshake URL added by SUBSCRIBE. One fault is injected mid-stream. Everything the stream
yielded then goes through the real write path into SecantusDB (the guarded upsert for
candles, ``stream_gaps`` for gaps, as the producer and consumer do), and the outcome is the
stored set of the window against the exchange's own candles:

* a planned change of connection (24 h rotation, serverShutdown) loses nothing at all: no
  gap is reported and nothing is missing even before repair;
* an unplanned one (a drop, a silent connection, a few silent streams) may lose finals, but
  every lost minute lies inside a gap the stream reported, and after repair from REST the
  window is exact: 0 lost, 0 duplicated, every value equal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest

from cryptobot_core.exchange import BinanceClient, KlineStream, StreamGap
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, ms_to_dt
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimConfig, SimulatorServer, generated_symbols
from cryptobot_core.store import STREAMING_1M, CandleStore, open_store
from cryptobot_core.store import StreamGap as StoredGap
from cryptobot_core.stream.repair import missing_minutes, repair

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

M1 = Interval.M1
SPEED = 30.0  # a simulated minute every 2 real seconds
START = 1_763_596_800_000 + 2 * 60_000 + 5_000  # 2025-11-20 00:02:05 UTC
MARKET = generated_symbols(240, seed=7)
SYMBOLS = [s.symbol for s in MARKET if s.status == "TRADING"]
URL_LIMIT = 4000  # what KlineStream puts in the handshake URL; the rest goes by SUBSCRIBE


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    srv = SimulatorServer(
        SimConfig(
            seed=7,
            symbols=MARKET,
            clock=SimClock.accelerated(START, SPEED),
            ws_update_interval_s=30.0,  # one update per stream per real second
        )
    ).start()
    try:
        yield srv
    finally:
        srv.stop()


class Collector:
    """Everything a stream yields, and per symbol the closed minutes seen after a mark."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.after_ms = 0
        self.finals_after: dict[str, int] = {}

    def mark(self, after_ms: int) -> None:
        self.after_ms = after_ms
        self.finals_after = {}

    def ready(self, n: int) -> bool:
        return len(self.finals_after) == len(SYMBOLS) and min(self.finals_after.values()) >= n

    async def until(self, stream: KlineStream, n: int, timeout: float) -> None:
        """Collect until every symbol has ``n`` closed minutes opening after the mark."""

        async def run() -> None:
            async for item in stream:
                self.items.append(item)
                if isinstance(item, Candle) and item.is_closed and item.open_ms > self.after_ms:
                    self.finals_after[item.symbol] = self.finals_after.get(item.symbol, 0) + 1
                    if self.ready(n):
                        return

        await asyncio.wait_for(run(), timeout)

    async def for_seconds(self, stream: KlineStream, seconds: float) -> None:
        with pytest.raises(TimeoutError):
            await self.until(stream, 10**9, seconds)


Fault = Callable[[SimulatorServer], Coroutine[Any, Any, None]]


def stream_through_fault(
    server: SimulatorServer, fault: Fault, **options: Any
) -> tuple[KlineStream, list[Any]]:
    """Stream, inject ``fault`` once every symbol flows, stream on until all recovered."""
    assert len(SYMBOLS) >= 200
    assert sum(len(s) + len("@kline_1m/") for s in SYMBOLS) > URL_LIMIT, "SUBSCRIBE not used"
    collector = Collector()

    async def run() -> KlineStream:
        stream = KlineStream(server.ws_url, SYMBOLS, "1m", **options)
        try:
            collector.mark(0)
            await collector.until(stream, 2, 60)  # warm: every symbol has closed minutes
            fault_task = asyncio.create_task(fault(server))
            await collector.for_seconds(stream, 0.5)
            while not fault_task.done():
                await collector.for_seconds(stream, 0.5)
            await fault_task
            collector.mark(server.clock.now_ms())
            await collector.until(stream, 3, 60)  # every symbol flows again, for minutes
            await collector.for_seconds(stream, 3.0)  # continuity verdicts are due
        finally:
            await stream.close()
        return stream

    stream = asyncio.run(run())
    return stream, collector.items


def store_and_judge(
    settings: Settings, mongo_db: Any, server: SimulatorServer, items: list[Any]
) -> tuple[dict[str, list[int]], list[StoredGap]]:
    """Write what the stream yielded as the pipeline does; repair; compare with the exchange.

    Returns what was missing before repair, per symbol, and the gaps the stream reported.
    """
    settings = settings.model_copy(update={"symbols": SYMBOLS})
    store = CandleStore(mongo_db, STREAMING_1M)
    store.ensure_indexes()
    store.upsert([i for i in items if isinstance(i, Candle)])
    reported = [g for g in items if isinstance(g, StreamGap)]
    assert all(g.missed_from_ms is not None for g in reported), "a gap with no start"
    gaps = [
        StoredGap.of_span(g.symbols, g.missed_from_ms or 0, g.missed_to_ms, g.reason)
        for g in reported
    ]
    with open_store(settings) as db:
        db.stream_gaps.record(gaps)
    finals: dict[str, list[int]] = {}
    for i in items:
        if isinstance(i, Candle) and i.is_closed:
            finals.setdefault(i.symbol, []).append(i.open_ms)
    # The window every symbol streamed through: from the latest first final to the earliest last.
    lo = max(min(v) for v in finals.values())
    hi = min(max(v) for v in finals.values()) + M1.ms
    assert hi - lo >= 6 * M1.ms, "the window must span the fault"

    missing = {s: missing_minutes(store, s, lo, hi) for s in SYMBOLS}
    missing = {s: v for s, v in missing.items() if v}
    for symbol, minutes in missing.items():
        for t in minutes:
            assert any(
                symbol in g.symbols
                and M1.floor(int(g.missed_from.timestamp() * 1000))
                <= t
                <= int(g.missed_to.timestamp() * 1000)
                for g in gaps
            ), f"{symbol} {ms_to_dt(t)} was lost without a reported gap"

    with BinanceClient(server.url) as client:
        repair(settings, since_ms=lo, now_ms=hi, client=client)
    for symbol in SYMBOLS:
        stored = store.find(symbol, ms_to_dt(lo), ms_to_dt(hi))
        opens = [c.open_ms for c in stored]
        assert opens == M1.opens_between(lo, hi), f"{symbol}: lost or duplicated minutes"
        for c in stored:
            truth = server.market.candle_at(symbol, "1m", c.open_ms)
            assert truth is not None and c.is_closed
            assert c.to_rest_row() == truth.to_rest_row(), f"{symbol} {c.open_time} differs"
    return missing, gaps


async def _drop(server: SimulatorServer) -> None:
    assert await asyncio.to_thread(server.faults.drop_connections) == 1


async def _stall_connection(server: SimulatorServer) -> None:
    server.faults.stall = True
    await asyncio.sleep(4.0)
    server.faults.stall = False


VICTIMS = SYMBOLS[5:245:20]  # a dozen streams spread over the URL part and the SUBSCRIBE part


async def _stall_some_streams(server: SimulatorServer) -> None:
    server.faults.stall_streams(*VICTIMS)
    await asyncio.sleep(6.0)
    server.faults.resume_streams()


async def _announce_shutdown(server: SimulatorServer) -> None:
    assert await asyncio.to_thread(server.faults.announce_shutdown, 4.0) == 1
    await asyncio.sleep(5.0)


async def _let_rotations_happen(server: SimulatorServer) -> None:
    await asyncio.sleep(9.0)


def test_a_dropped_connection_is_repaired_to_the_exact_window(
    settings: Settings, mongo_db: Any, server: SimulatorServer
) -> None:
    # 5 s away at 30x is 2.5 simulated minutes: finals are lost even when a loaded machine
    # makes the simulator's sweep lag a few seconds behind its clock (3 s once was not).
    stream, items = stream_through_fault(server, _drop, reconnect_backoff=(5.0, 5.0))
    missing, gaps = store_and_judge(settings, mongo_db, server, items)
    assert stream.stats.reconnects == 1
    assert missing, "a 5 s reconnect at 30x must have cost finals (else this proves nothing)"
    assert gaps


def test_a_silent_connection_is_replaced_and_repaired_to_the_exact_window(
    settings: Settings, mongo_db: Any, server: SimulatorServer
) -> None:
    stream, items = stream_through_fault(
        server, _stall_connection, silence_timeout_s=1.5, reconnect_backoff=(0.2, 1.0)
    )
    missing, gaps = store_and_judge(settings, mongo_db, server, items)
    assert stream.stats.reconnects >= 1
    assert missing and gaps


def test_streams_silent_on_a_flowing_connection_are_reported_and_repaired(
    settings: Settings, mongo_db: Any, server: SimulatorServer
) -> None:
    stream, items = stream_through_fault(
        server, _stall_some_streams, stream_silence_s=1.5, silence_timeout_s=10.0
    )
    missing, gaps = store_and_judge(settings, mongo_db, server, items)
    assert stream.stats.reconnects == 0, "a per-stream stall must not drop the connection"
    assert stream.stats.stream_stalls >= len(VICTIMS)
    assert set(missing) == set(VICTIMS), "only the silent streams lost minutes"
    assert {s for g in gaps for s in g.symbols} == set(VICTIMS)


def test_rotation_hands_over_every_stream_without_a_gap(
    settings: Settings, mongo_db: Any, server: SimulatorServer
) -> None:
    server.config.ws_max_lifetime_s = 600.0  # the "24 h" cut: 20 real seconds
    stream, items = stream_through_fault(
        server, _let_rotations_happen, rotate_after_s=3.0, silence_timeout_s=10.0
    )
    missing, gaps = store_and_judge(settings, mongo_db, server, items)
    assert stream.stats.rotations >= 2 and stream.stats.reconnects == 0
    assert server.stats.snapshot()["ws_disconnects_lifetime"] == 0, "rotated before the cut"
    assert not gaps and not missing, f"a rotation must lose nothing, even before repair: {missing}"


def test_server_shutdown_hands_over_every_stream_without_a_gap(
    settings: Settings, mongo_db: Any, server: SimulatorServer
) -> None:
    started = time.monotonic()
    stream, items = stream_through_fault(server, _announce_shutdown, silence_timeout_s=10.0)
    missing, gaps = store_and_judge(settings, mongo_db, server, items)
    assert stream.stats.rotations == 1 and stream.stats.reconnects == 0
    assert server.stats.snapshot()["ws_shutdowns_announced"] == 1
    assert not gaps and not missing, "a shutdown with grace must lose nothing, even before repair"
    assert time.monotonic() - started < 120
