"""Benchmark: BinanceClient.klines_many vs a sequential page-by-page loop, same run, and
against its own ceiling: a raw concurrent fetch of the same pages plus ``json.loads``.

Workload (issue 3): 180 days of 15m candles for 20 symbols from the simulator, with 50 ms
latency injected per request and Binance's 6000/min weight limit enforced. The simulator
runs in a child process (its own interpreter, so it does not share the client's GIL).

The baseline is the usual python-binance loop: one request at a time, ``startTime`` +
``limit=1000``, next start = last open + interval, rows parsed into the same typed
candles (without python-binance's 1 s sleep every 3 requests, which would only flatter
the ratio). Passes alternate (baseline, client, baseline, client) and the best of each is
reported, to damp noise from other processes on the machine.

The ceiling (issue 13) is what no client can beat from this server: the same one-page
windows fetched by the same number of threads with a bare ``httpx.Client`` and parsed with
``json.loads`` only, no typed candles. The client's time divided by that is its overhead.

    .venv/bin/python bench/bench_client.py [--symbols 20] [--days 180] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from cryptobot_core.exchange import BinanceClient
from cryptobot_core.exchange.rest import windows
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle

CHILD = textwrap.dedent(
    """
    import json, sys
    from cryptobot_core.simulator import SimClock, SimConfig, SimulatorServer
    server = SimulatorServer(SimConfig(seed=42, clock=SimClock.real(), weight_limit=6000)).start()
    server.faults.latency_s = float(sys.argv[1])
    print(json.dumps({"url": server.url, "symbols": server.market.symbols}), flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            snap = server.stats.snapshot()
            snap["weight_by_minute"] = {str(k): v for k, v in snap["weight_by_minute"].items()}
            snap["responses"] = {str(k): v for k, v in snap["responses"].items()}
            print(json.dumps(snap), flush=True)
    server.stop()
    """
)


def sequential(url: str, symbols: list[str], iv: Interval, start: int, end: int) -> tuple[int, int]:
    """python-binance style: one page after another; returns (candles, requests)."""
    n = requests = 0
    with httpx.Client(base_url=url, timeout=30) as http:
        for symbol in symbols:
            cursor = start
            while cursor < end:
                resp = http.get(
                    "/api/v3/klines",
                    params={
                        "symbol": symbol,
                        "interval": iv.value,
                        "startTime": cursor,
                        "endTime": end - 1,
                        "limit": 1000,
                    },
                )
                requests += 1
                resp.raise_for_status()
                rows = resp.json()
                candles = Candle.from_rest_rows(symbol, iv, rows)
                n += len(candles)
                if len(rows) < 1000:
                    break
                cursor = iv.open_after(candles[-1].open_ms)
    return n, requests


def concurrent(
    url: str, symbols: list[str], iv: Interval, start: int, end: int, workers: int
) -> tuple[int, int, int]:
    """BinanceClient.klines_many; returns (candles, requests, max weight reserved in a window)."""
    with BinanceClient(url, timeout_s=30) as client:
        got = client.klines_many([(s, iv, start, end) for s in symbols], max_workers=workers)
        return sum(len(c) for c in got), client.stats.requests, client.budget.stats.max_used


def raw(url: str, symbols: list[str], iv: Interval, start: int, end: int, workers: int) -> int:
    """The ceiling: the client's page windows, fetched concurrently, ``json.loads`` only."""
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    with httpx.Client(base_url=url, timeout=30, limits=limits) as http:

        def page(job: tuple[str, int, int]) -> int:
            symbol, lo, hi = job
            resp = http.get(
                "/api/v3/klines",
                params={
                    "symbol": symbol,
                    "interval": iv.value,
                    "startTime": lo,
                    "endTime": hi - 1,
                    "limit": 1000,
                },
            )
            resp.raise_for_status()
            return len(json.loads(resp.content))

        jobs = [(s, lo, hi) for s in symbols for lo, hi in windows(iv, start, end)]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(pool.map(page, jobs))


def main() -> None:
    """Run the benchmark and print a Markdown report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--days", type=int, default=180)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--passes", type=int, default=2)
    args = ap.parse_args()

    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(args.latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        hello = json.loads(child.stdout.readline())
        url = hello["url"]
        symbols = [s for s in hello["symbols"] if s != "LUNAUSDT"][: args.symbols]
        iv = Interval.M15
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        end = int(today.timestamp() * 1000)
        start = int((today - timedelta(days=args.days)).timestamp() * 1000)

        # Warm the simulator's caches so neither contender pays for data generation.
        concurrent(url, symbols, iv, start, end, args.workers)

        base: list[float] = []
        ours: list[float] = []
        ceiling: list[float] = []
        cpu: dict[str, float] = {"base": 0.0, "ours": 0.0, "raw": 0.0}
        results: dict[str, Any] = {}
        for _ in range(args.passes):
            t, c = time.perf_counter(), time.process_time()
            n_base, req_base = sequential(url, symbols, iv, start, end)
            base.append(time.perf_counter() - t)
            cpu["base"] = time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            n_ours, req_ours, max_reserved = concurrent(url, symbols, iv, start, end, args.workers)
            ours.append(time.perf_counter() - t)
            cpu["ours"] = time.process_time() - c
            t, c = time.perf_counter(), time.process_time()
            n_raw = raw(url, symbols, iv, start, end, args.workers)
            ceiling.append(time.perf_counter() - t)
            cpu["raw"] = time.process_time() - c
            assert n_ours == n_base == n_raw, f"different results: {n_ours}, {n_base}, {n_raw}"
            results = {
                "candles": n_ours,
                "req_base": req_base,
                "req_ours": req_ours,
                "max_reserved": max_reserved,
            }

        child.stdin.write("stats\n")
        child.stdin.flush()
        stats = json.loads(child.stdout.readline())
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=30)

    b, o, r = min(base), min(ours), min(ceiling)
    weights = stats["weight_by_minute"].values()
    print(
        f"# bench_client: {len(symbols)} symbols x {args.days} days of 15m, {args.latency * 1000:.0f} ms latency\n"
    )
    print(f"| contender | wall time (best of {args.passes}) | requests | requests/s |")
    print("|---|---|---|---|")
    print(
        f"| sequential page loop (baseline) | {b:.2f} s | {results['req_base']} | {results['req_base'] / b:.1f} |"
    )
    print(
        f"| BinanceClient.klines_many ({args.workers} workers) | {o:.2f} s | {results['req_ours']} | {results['req_ours'] / o:.1f} |"
    )
    print(
        f"| raw fetch + json.loads ({args.workers} threads, the ceiling) | {r:.2f} s | {results['req_ours']} | {results['req_ours'] / r:.1f} |"
    )
    print()
    print(
        f"- client ÷ ceiling: **{o / r:.2f}** (all passes: raw {[round(x, 2) for x in ceiling]}); "
        f"CPU of the last pass: client {cpu['ours']:.2f} s, raw {cpu['raw']:.2f} s"
    )
    print(
        f"- speed-up vs baseline: **{b / o:.1f}x** (all passes: baseline {[round(x, 2) for x in base]}, client {[round(x, 2) for x in ours]})"
    )
    print(
        f"- candles per run: {results['candles']}; client CPU time of the last pass: "
        f"baseline {cpu['base']:.2f} s, client {cpu['ours']:.2f} s (the floor of the client's wall time)"
    )
    print(
        f"- 429 responses: {stats['responses'].get('429', 0)}, 418 responses: {stats['responses'].get('418', 0)}"
    )
    print(
        f"- weight used per minute (server, whole run incl. baseline): max {max(weights, default=0)} of 6000; "
        f"client budget max reserved in a window: {results['max_reserved']}"
    )


if __name__ == "__main__":
    main()
