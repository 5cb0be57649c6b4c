"""A minimal Binance-shaped kline WebSocket feed for load tests, cheap enough to hit 400 msg/s.

The full simulator computes every candle from its random walk and, on this 2-core machine,
tops out near 120 updates/s for 400 symbols. This feed sends the same frame shape
(combined streams, SUBSCRIBE replies, x=true finals at each minute) with constant prices
and ``E`` = the wall time of sending, so it measures the pipeline, not the simulator.

    .venv/bin/python bench/fast_ws.py --rate-per-symbol 1.0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any
from urllib.parse import parse_qs, urlparse

from websockets.asyncio.server import ServerConnection, serve

SENT = {"updates": 0, "finals": 0}


def event(symbol: str, open_ms: int, now_ms: int, closed: bool) -> str:
    """One combined-stream kline frame."""
    k = {
        "t": open_ms,
        "T": open_ms + 59_999,
        "s": symbol,
        "i": "1m",
        "f": 1,
        "L": 2,
        "o": "100.00",
        "c": "100.50",
        "h": "101.00",
        "l": "99.50",
        "v": "12.50000",
        "n": 42,
        "x": closed,
        "q": "1256.25000000",
        "V": "6.25000",
        "Q": "628.12500000",
        "B": "0",
    }
    data = {"e": "kline", "E": now_ms, "s": symbol, "k": k}
    return json.dumps({"stream": f"{symbol.lower()}@kline_1m", "data": data}, separators=(",", ":"))


async def handler(ws: ServerConnection, rate: float) -> None:
    """Serve one connection: streams from the URL and from SUBSCRIBE messages."""
    path = ws.request.path if ws.request else "/"
    query = parse_qs(urlparse(path).query)
    streams = set(query.get("streams", [""])[0].split("/")) - {""}

    async def reader() -> None:
        async for raw in ws:
            msg: dict[str, Any] = json.loads(raw)
            if msg.get("method") == "SUBSCRIBE":
                streams.update(msg.get("params", []))
            await ws.send(json.dumps({"result": None, "id": msg.get("id")}))

    task = asyncio.create_task(reader())
    minute = int(time.time() * 1000) // 60_000 * 60_000
    sent = 0
    start = time.monotonic()
    try:
        while True:
            symbols = sorted(s.split("@")[0].upper() for s in streams)
            if not symbols:
                await asyncio.sleep(0.05)
                sent, start = 0, time.monotonic()
                continue
            gap = 1.0 / rate / len(symbols)  # spread the updates evenly over the period
            for sym in symbols:
                # Pace against a schedule so the rate holds even when sleeps overshoot.
                sent += 1
                delay = start + sent * gap - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = int(time.time() * 1000)
                cur = now // 60_000 * 60_000
                if cur != minute:
                    for s2 in symbols:  # the finals of the minute that just closed
                        await ws.send(event(s2, minute, now, True))
                        SENT["finals"] += 1
                    minute = cur
                await ws.send(event(sym, cur, now, False))
                SENT["updates"] += 1
    except Exception:  # the client went away
        pass
    finally:
        task.cancel()


async def main() -> None:
    """Serve on a free port, print it, and print the counters on SIGTERM."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate-per-symbol", type=float, default=1.0)
    args = ap.parse_args()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with serve(
        lambda ws: handler(ws, args.rate_per_symbol),
        "127.0.0.1",
        0,
        max_size=2**20,
        ping_interval=20,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(json.dumps({"port": port}), flush=True)
        await stop.wait()
    print(
        json.dumps(
            {"ws_messages_sent": SENT["updates"] + SENT["finals"], "ws_finals_sent": SENT["finals"]}
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
