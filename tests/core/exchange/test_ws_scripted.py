"""KlineStream against a scripted local WebSocket server (real sockets, exact frame control).

The simulator covers realistic streaming; these tests need frames in an exact order
(serverShutdown, silence, overlapping rotation) that only a scripted server gives.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from cryptobot_core.exchange import KlineStream, MalformedFrame, StreamGap
from cryptobot_core.models import Candle, dt_to_ms
from tests.core.exchange.aio import run_async

# A hang (e.g. a task that ignores cancellation) fails fast instead of eating the CI budget.
pytestmark = pytest.mark.timeout(60)

T0 = 1_700_000_040_000  # a minute boundary


def kline(symbol: str, event_ms: int, *, closed: bool = False) -> str:
    """A combined-stream kline frame exactly as Binance sends it."""
    open_ms = event_ms - event_ms % 60_000
    data = {
        "e": "kline",
        "E": event_ms,
        "s": symbol,
        "k": {
            "t": open_ms,
            "T": open_ms + 59_999,
            "s": symbol,
            "i": "1m",
            "f": 1,
            "L": 2,
            "o": "100.00",
            "c": "101.00",
            "h": "102.00",
            "l": "99.00",
            "v": "1.5",
            "n": 3,
            "x": closed,
            "q": "150.0",
            "V": "0.5",
            "Q": "50.0",
            "B": "0",
        },
    }
    return json.dumps({"stream": f"{symbol.lower()}@kline_1m", "data": data})


async def ticker(tick: dict[str, int]) -> None:
    """Advance the shared event counter every 20 ms, like the exchange's clock."""
    while True:
        await asyncio.sleep(0.02)
        tick["k"] += 1


Handler = Callable[[ServerConnection, int], Awaitable[None]]


@asynccontextmanager
async def scripted(handler: Handler) -> AsyncIterator[tuple[str, list[str]]]:
    """Serve ``handler(ws, connection_number)``; yields (ws base url, request paths)."""
    paths: list[str] = []

    async def handle(ws: ServerConnection) -> None:
        assert ws.request is not None
        paths.append(ws.request.path)
        await handler(ws, len(paths))

    async with serve(handle, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}", paths


async def take(stream: KlineStream, n: int, timeout: float = 10.0) -> list[Any]:
    """The next n items of the stream."""
    items: list[Any] = []

    async def collect() -> None:
        async for item in stream:
            items.append(item)
            if len(items) == n:
                return

    await asyncio.wait_for(collect(), timeout)
    return items


@run_async
async def test_malformed_frames_are_counted_and_yielded() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(kline("BTCUSDT", T0 + 1000))
        await ws.send("{not json")
        await ws.send(
            json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": 1, "k": {}}})
        )
        await ws.send(json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "trade", "E": 1}}))
        await ws.send(kline("BTCUSDT", T0 + 3000))
        await ws.wait_closed()

    async with scripted(handler) as (url, paths):
        stream = KlineStream(url, ["btcusdt"], "1m")
        items = await take(stream, 5)
        await stream.close()
    assert paths == ["/stream?streams=btcusdt@kline_1m"]
    assert [type(i).__name__ for i in items] == [
        "Candle",
        "MalformedFrame",
        "MalformedFrame",
        "MalformedFrame",
        "Candle",
    ]
    assert items[1].raw == "{not json" and "not JSON" in items[1].reason
    assert "malformed kline event" in items[2].reason
    assert "trade" in items[3].reason
    assert stream.stats.malformed == 3
    first = items[0]
    assert isinstance(first, Candle) and first.source.value == "ws"
    assert first.event_time is not None and dt_to_ms(first.event_time) == T0 + 1000


@run_async
async def test_server_shutdown_hands_over_to_a_new_connection_without_a_gap() -> None:
    tick = {"k": 0}  # one shared event sequence: every connection gets every event

    async def handler(ws: ServerConnection, n: int) -> None:
        k = tick["k"]
        announced_at: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            while k < tick["k"]:
                k += 1
                for symbol in ("BTCUSDT", "ETHUSDT"):
                    await ws.send(kline(symbol, T0 + k * 10))
            if n == 1 and announced_at is None and k >= 10:
                await ws.send(
                    json.dumps({"stream": "btcusdt@kline_1m", "data": {"e": "serverShutdown"}})
                )
                announced_at = loop.time()
            if announced_at is not None and loop.time() - announced_at > 1.0:
                await ws.close(1001, "Server shutdown")  # the grace is over
                return
            await asyncio.sleep(0.005)

    clock = asyncio.create_task(ticker(tick))
    try:
        async with scripted(handler) as (url, paths):
            stream = KlineStream(
                url, ["BTCUSDT", "ETHUSDT"], "1m", reconnect_backoff=(5.0, 5.0), silence_timeout_s=5
            )
            items = await take(stream, 200, timeout=20.0)
            await stream.close()
    finally:
        clock.cancel()
    assert all(isinstance(i, Candle) for i in items), "a handover is not a reconnect: no gap"
    assert stream.stats.rotations == 1 and stream.stats.reconnects == 0
    assert len(paths) == 2
    for symbol in ("BTCUSDT", "ETHUSDT"):
        events = [dt_to_ms(i.event_time) for i in items if i.symbol == symbol]
        assert len(set(events)) == len(events), "an event delivered twice"
        ks = sorted((e - T0) // 10 for e in events)
        assert ks == list(range(ks[0], ks[0] + len(ks))), "an event lost during the handover"


@run_async
async def test_a_shutdown_that_closes_before_the_handover_reconnects_at_once_with_a_gap() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(kline("BTCUSDT", T0 + 1000))
            await ws.send(kline("ETHUSDT", T0 + 1500))
            await ws.send(json.dumps({"stream": "x", "data": {"e": "serverShutdown"}}))
            await ws.close(1001, "Server shutdown")  # no grace at all
        else:
            await ws.send(kline("ETHUSDT", T0 + 9000))
            await ws.wait_closed()

    async with scripted(handler) as (url, _):
        stream = KlineStream(url, ["BTCUSDT", "ETHUSDT"], "1m", reconnect_backoff=(5.0, 5.0))
        items = await take(stream, 4, timeout=4.0)  # a backoff of 5 s would time out
        await stream.close()
    gap = items[2]
    assert isinstance(gap, StreamGap)
    assert gap.symbols == ("BTCUSDT", "ETHUSDT")
    assert (gap.missed_from_ms, gap.missed_to_ms) == (T0 + 1000, T0 + 9000)
    assert isinstance(items[3], Candle) and items[3].symbol == "ETHUSDT"


@run_async
async def test_a_final_that_never_came_is_reported_for_that_symbol_alone() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(kline("BTCUSDT", T0 + 1000))
        await ws.send(kline("ETHUSDT", T0 + 1000))
        await ws.send(kline("ETHUSDT", T0 + 59_999, closed=True))  # ETH's final: fine
        # BTC's final of T0 is lost; its next minute arrives on the same, live connection.
        await ws.send(kline("BTCUSDT", T0 + 61_000))
        await ws.send(kline("ETHUSDT", T0 + 61_000))
        await ws.wait_closed()

    async with scripted(handler) as (url, _):
        stream = KlineStream(url, ["BTCUSDT", "ETHUSDT"], "1m")
        items = await take(stream, 6, timeout=8.0)  # the verdict waits a 2 s grace
        await stream.close()
    gaps = [i for i in items if isinstance(i, StreamGap)]
    assert len(gaps) == 1 and stream.stats.reconnects == 0
    assert gaps[0].symbols == ("BTCUSDT",)
    assert (gaps[0].missed_from_ms, gaps[0].missed_to_ms) == (T0, T0 + 61_000)


@run_async
async def test_silence_watchdog_reconnects_and_reports_the_gap() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.send(kline("BTCUSDT", T0 + 1000))
            await ws.wait_closed()  # a stalled server: open socket, no frames
        else:
            await ws.send(kline("BTCUSDT", T0 + 7000))
            await ws.wait_closed()

    async with scripted(handler) as (url, _):
        stream = KlineStream(url, ["BTCUSDT"], silence_timeout_s=0.5, reconnect_backoff=(0.05, 0.1))
        items = await take(stream, 3)
        await stream.close()
    assert isinstance(items[1], StreamGap)
    assert "silence" in items[1].reason
    assert (items[1].missed_from_ms, items[1].missed_to_ms) == (T0 + 1000, T0 + 7000)


@run_async
async def test_reconnect_with_nothing_seen_reports_unknown_start() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        if n == 1:
            await ws.close()
        else:
            await ws.send(kline("BTCUSDT", T0 + 7000))
            await ws.wait_closed()

    async with scripted(handler) as (url, _):
        stream = KlineStream(url, ["BTCUSDT"], reconnect_backoff=(0.05, 0.1))
        items = await take(stream, 2)
        await stream.close()
    assert isinstance(items[0], StreamGap)
    assert items[0].missed_from_ms is None and items[0].missed_to_ms == T0 + 7000


@run_async
async def test_rotation_overlaps_connections_without_loss_or_duplicates() -> None:
    tick = {"k": 0}  # one shared event sequence: every connection gets every event

    async def handler(ws: ServerConnection, n: int) -> None:
        k = tick["k"]
        while True:
            while k < tick["k"]:
                k += 1
                await ws.send(kline("BTCUSDT", T0 + k * 10))
            await asyncio.sleep(0.005)

    clock = asyncio.create_task(ticker(tick))
    try:
        async with scripted(handler) as (url, paths):
            stream = KlineStream(url, ["BTCUSDT"], rotate_after_s=0.3, silence_timeout_s=2)
            items = await take(stream, 80)
            await stream.close()
    finally:
        clock.cancel()
    assert all(isinstance(i, Candle) for i in items), "rotation is not a reconnect: no gap"
    events = [dt_to_ms(i.event_time) for i in items]
    assert len(set(events)) == len(events), "an event delivered twice"
    ks = sorted((e - T0) // 10 for e in events)
    assert ks == list(range(ks[0], ks[0] + len(ks))), "an event lost during rotation"
    assert stream.stats.rotations >= 2
    assert stream.stats.reconnects == 0
    assert stream.stats.duplicates > 0, "the overlap must have carried the same events twice"
    assert len(paths) >= 3


@run_async
async def test_symbols_are_spread_over_connections() -> None:
    received: dict[int, list[str]] = {}

    async def handler(ws: ServerConnection, n: int) -> None:
        assert ws.request is not None
        streams = ws.request.path.split("streams=", 1)[1].split("/")
        received[n] = streams
        for s in streams:
            await ws.send(kline(s.split("@")[0].upper(), T0 + 1000))
        await ws.wait_closed()

    symbols = ["AAAUSDT", "BBBUSDT", "CCCUSDT", "DDDUSDT", "EEEUSDT"]
    async with scripted(handler) as (url, paths):
        stream = KlineStream(url, symbols, max_streams_per_connection=2)
        assert stream.connection_count == 3
        items = await take(stream, 5)
        await stream.close()
    assert sorted(i.symbol for i in items) == symbols
    assert sorted(len(v) for v in received.values()) == [1, 2, 2]


@run_async
async def test_streams_beyond_the_url_limit_are_subscribed_by_message() -> None:
    subscribed: list[str] = []

    async def handler(ws: ServerConnection, n: int) -> None:
        assert ws.request is not None
        streams = ws.request.path.split("streams=", 1)[1].split("/")
        for s in streams:
            await ws.send(kline(s.split("@")[0].upper(), T0 + 1000))
        async for message in ws:
            request = json.loads(message)
            assert request["method"] == "SUBSCRIBE"
            subscribed.extend(request["params"])
            await ws.send(json.dumps({"result": None, "id": request["id"]}))
            for s in request["params"]:
                await ws.send(kline(s.split("@")[0].upper(), T0 + 1000))

    symbols = [f"S{i:04d}USDT" for i in range(300)]
    async with scripted(handler) as (url, paths):
        stream = KlineStream(url, symbols)
        items = await take(stream, 300)
        await stream.close()
    assert sorted(i.symbol for i in items) == symbols
    assert len(paths) == 1 and len(paths[0]) <= 4000
    assert subscribed and len(subscribed) + paths[0].count("@") == 300


@run_async
async def test_close_from_another_task_ends_the_iteration() -> None:
    async def handler(ws: ServerConnection, n: int) -> None:
        await ws.send(kline("BTCUSDT", T0 + 1000))
        await ws.wait_closed()

    async with scripted(handler) as (url, _):
        stream = KlineStream(url, ["BTCUSDT"])
        got: list[Any] = []

        async def consume() -> None:
            async for item in stream:
                got.append(item)

        consumer = asyncio.create_task(consume())
        while not got:
            await asyncio.sleep(0.01)
        await stream.close()
        await asyncio.wait_for(consumer, 5)  # returns instead of waiting forever
    assert len(got) == 1


def test_bad_stream_arguments_are_rejected() -> None:
    from cryptobot_core.errors import ValidationError

    with pytest.raises(ValidationError, match="allowed"):
        KlineStream("ws://x", ["BTCUSDT"], "2m")
    with pytest.raises(ValidationError, match="ws://"):
        KlineStream("http://x", ["BTCUSDT"])
    with pytest.raises(ValidationError, match="at least one"):
        KlineStream("ws://x", [])
    with pytest.raises(ValidationError, match="BTC/USDT"):
        KlineStream("ws://x", ["BTC/USDT"])


def test_malformed_frame_type_is_exported() -> None:
    assert MalformedFrame("x", "y").reason == "y"
