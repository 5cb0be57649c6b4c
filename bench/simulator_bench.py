"""Benchmark the simulator: 180 days of 15m klines for 20 symbols, in-process and over HTTP.

Every figure is reported with a baseline measured in the same run:

* Market (in-process): cold cache and warm cache vs. ``json.dumps`` of the very same rows
  (the cost of merely encoding the data).
* HTTP, no latency: sequential page-by-page klines vs. the same number of ``/api/v3/ping``
  requests (pure HTTP overhead), and concurrent vs. sequential klines.
* HTTP, 50 ms latency injected, weight limit 6000 enforced: concurrent vs. sequential.

Run: ``.venv/bin/python bench/simulator_bench.py [--days 180] [--symbols 20] [--workers 16]``
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx

from cryptobot_core.intervals import Interval
from cryptobot_core.simulator import Faults, Market, SimClock, SimConfig, SimulatorServer

NOW_MS = int(datetime(2026, 1, 15, 12, 34, 56, tzinfo=UTC).timestamp() * 1000)
IV = Interval.M15


def pages(days: int) -> list[tuple[int, int]]:
    """(startTime, endTime) of each 1000-candle page over the last ``days`` days."""
    end = IV.floor(NOW_MS) - IV.ms
    start = IV.floor(NOW_MS - days * 86_400_000)
    out = []
    while start <= end:
        out.append((start, end))
        start += 1000 * IV.ms
    return out


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.05)
    args = ap.parse_args()

    config = SimConfig(clock=SimClock.fixed(NOW_MS))
    symbols = [s.symbol for s in config.symbols if s.status == "TRADING"][: args.symbols]
    work = [(sym, s, e) for sym in symbols for s, e in pages(args.days)]
    candles = 0

    # ---- in-process Market -------------------------------------------------------------
    market = Market(config)

    def market_all() -> None:
        nonlocal candles
        candles = 0
        for sym, s, e in work:
            candles += market.klines_json(sym, IV, s, e, 1000).count("],[") + 1

    cold = timed(market_all)
    warm = timed(market_all)
    rows = {(sym, s): json.loads(market.klines_json(sym, IV, s, e, 1000)) for sym, s, e in work}
    encode = timed(lambda: [json.dumps(r, separators=(",", ":")) for r in rows.values()])

    # ---- HTTP --------------------------------------------------------------------------
    server = SimulatorServer(SimConfig(clock=SimClock.fixed(NOW_MS)), faults=Faults()).start()
    try:

        def fetch(client: httpx.Client, item: tuple[str, int, int]) -> int:
            sym, s, e = item
            r = client.get(
                f"{server.url}/api/v3/klines",
                params={
                    "symbol": sym,
                    "interval": "15m",
                    "startTime": s,
                    "endTime": e,
                    "limit": 1000,
                },
            )
            r.raise_for_status()
            return len(r.json())

        def sequential() -> None:
            with httpx.Client(timeout=30) as c:
                for item in work:
                    fetch(c, item)

        def concurrent() -> None:
            with (
                httpx.Client(timeout=30, limits=httpx.Limits(max_connections=args.workers)) as c,
                ThreadPoolExecutor(args.workers) as pool,
            ):
                list(pool.map(lambda it: fetch(c, it), work))

        def pings() -> None:
            with httpx.Client(timeout=30) as c:
                for _ in work:
                    c.get(f"{server.url}/api/v3/ping").raise_for_status()

        http_cold_seq = timed(sequential)  # first pass fills the server's cache
        http_ping = timed(pings)
        http_seq = timed(sequential)
        http_conc = timed(concurrent)
        # Weight budget: every run above is in the same frozen minute, so reset the window.
        server.stats.weight_by_minute.clear()
        server.faults.latency_s = args.latency
        lat_seq = timed(sequential)
        server.stats.weight_by_minute.clear()
        lat_conc = timed(concurrent)
        stats = server.stats.snapshot()
    finally:
        server.stop()

    n = len(work)
    print(
        f"workload: {len(symbols)} symbols x {args.days} days of 15m = {candles} candles, {n} requests"
    )
    print(
        f"market cold   {cold:7.3f}s  {candles / cold:10.0f} candles/s  ratio vs json.dumps {cold / encode:5.2f}x"
    )
    print(
        f"market warm   {warm:7.3f}s  {candles / warm:10.0f} candles/s  ratio vs json.dumps {warm / encode:5.2f}x"
    )
    print(f"json.dumps    {encode:7.3f}s  (baseline)")
    print(
        f"http first pass (cold cache), sequential {http_cold_seq:7.3f}s  {n / http_cold_seq:7.1f} req/s"
    )
    print(f"http ping x{n}, sequential (baseline)    {http_ping:7.3f}s  {n / http_ping:7.1f} req/s")
    print(
        f"http klines, sequential                  {http_seq:7.3f}s  {n / http_seq:7.1f} req/s  ratio vs ping {http_seq / http_ping:5.2f}x"
    )
    print(
        f"http klines, {args.workers} workers                 {http_conc:7.3f}s  {n / http_conc:7.1f} req/s  speed-up vs sequential {http_seq / http_conc:5.2f}x"
    )
    print(
        f"latency {args.latency * 1000:.0f} ms, sequential              {lat_seq:7.3f}s  {n / lat_seq:7.1f} req/s"
    )
    print(
        f"latency {args.latency * 1000:.0f} ms, {args.workers} workers              {lat_conc:7.3f}s  {n / lat_conc:7.1f} req/s  speed-up vs sequential {lat_seq / lat_conc:5.2f}x"
    )
    print(f"responses by status: {stats['responses']}  (429s: {stats['responses'].get(429, 0)})")


if __name__ == "__main__":
    main()
