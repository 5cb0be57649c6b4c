"""Benchmark the simulator: REST klines, WebSocket offered rate, archive files.

    .venv/bin/python bench/simulator_bench.py klines   [--days 180 --symbols 20 --workers 16]
    .venv/bin/python bench/simulator_bench.py ws       [--symbols 1500 --seconds 65]
    .venv/bin/python bench/simulator_bench.py archives [--symbols 20 --months 12 --workers 4]
    .venv/bin/python bench/simulator_bench.py ticker   [--symbols 1500]

Every figure is reported with a baseline measured in the same run.

``klines``: 180 days of 15m klines for 20 symbols, in-process and over HTTP:

* Market (in-process): cold cache and warm cache vs. ``json.dumps`` of the very same rows
  (the cost of merely encoding the data).
* HTTP, no latency: sequential page-by-page klines vs. the same number of ``/api/v3/ping``
  requests (pure HTTP overhead), and concurrent vs. sequential klines.
* HTTP, 50 ms latency injected, weight limit 6000 enforced: concurrent vs. sequential.

``ws``: the simulator in its own process (bench/sim_server.py) serving a generated market;
a client subscribes ``--symbols`` 1m streams over 2 connections (URL + SUBSCRIBE, as the
project's client does) and counts what arrives, at 1 update per 2 s and per 1 s per symbol.
The baseline is the target rate (symbols / update interval); the server's CPU share is read
from /proc.

``archives``: a year of 1m monthly files for 20 symbols fetched through the archive URLs by
a minimal exact client (download, SHA-256 check, unzip, parse every value as Decimal), with
the simulator in its own process, cold (every file built) and warm (cached). The baseline is
the same client work on the same zip bytes already in memory: the ratio says how much the
server adds. Also the in-process build of one month of 1m (44,640 rows).

``ticker``: the 24 h tickers of a generated market of 1,575 symbols (first minute, next minute,
same minute), against the naive way: 1,440 1m klines of every symbol, aggregated.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptobot_core.intervals import Interval  # noqa: E402
from cryptobot_core.simulator import (  # noqa: E402
    Faults,
    Market,
    SimClock,
    SimConfig,
    SimulatorServer,
)

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


def klines_bench(args: argparse.Namespace) -> None:
    """REST klines: in-process Market and HTTP, sequential and concurrent."""
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


# ---- ws ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SimProcess:
    """bench/sim_server.py with a generated market, in its own process."""

    def __init__(self, trading: int, update_s: float = 2.0, cache_mb: float = 256.0) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "sim_server.py"),
                "--trading-symbols",
                str(trading),
                "--update-s",
                str(update_s),
                "--archive-cache-mb",
                str(cache_mb),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.proc.stdout is not None
        first = json.loads(self.proc.stdout.readline())
        self.port: int = first["port"]
        self.symbols: list[str] = first["symbols"][:trading]
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> dict[str, Any]:
        """Stop it and return its counters."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=60)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        return dict(json.loads(lines[-1])) if lines else {}


async def _ws_client(
    url: str, streams: list[str], counts: Counter[str], stop: asyncio.Event
) -> None:
    """One connection: streams in the URL up to 4,000 characters, the rest by SUBSCRIBE."""
    in_url: list[str] = []
    length = 0
    for name in streams:
        if length + len(name) + 1 > 4000:
            break
        in_url.append(name)
        length += len(name) + 1
    rest = streams[len(in_url) :]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{url}/stream?streams={'/'.join(in_url)}", max_msg_size=0) as ws,
    ):
        for i in range(0, len(rest), 200):
            await asyncio.sleep(0.25)  # Binance allows 5 incoming messages a second
            await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": rest[i : i + 200]}))
        while not stop.is_set():
            try:
                msg = await asyncio.wait_for(ws.receive(), 1.0)
            except TimeoutError:
                continue
            if msg.type is aiohttp.WSMsgType.TEXT:
                data = msg.data
                if '"x":true' in data:
                    counts["finals"] += 1
                    counts[f"final@{json.loads(data)['data']['k']['t']}"] += 1
                elif '"e":"kline"' in data:
                    counts["updates"] += 1
            elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return


def ws_offered(trading: int, update_s: float, seconds: float) -> dict[str, Any]:
    """Offered updates/s and finals of ``trading`` 1m streams over 2 connections."""
    sim = SimProcess(trading, update_s)
    try:
        streams = [f"{s.lower()}@kline_1m" for s in sim.symbols]
        half = (len(streams) + 1) // 2
        counts: Counter[str] = Counter()

        async def run() -> tuple[Counter[str], Counter[str], float, float]:
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(_ws_client(sim.url, part, counts, stop))
                for part in (streams[:half], streams[half:])
            ]
            await asyncio.sleep(8)  # connect and subscribe everything
            before, cpu0, t0 = Counter(counts), cpu_seconds(sim.proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            after, cpu1, t1 = Counter(counts), cpu_seconds(sim.proc.pid), time.monotonic()
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            return before, after, (cpu1 - cpu0) / (t1 - t0), t1 - t0

        before, after, cpu_share, elapsed = asyncio.run(run())
    finally:
        sim.stop()
    target = trading / update_s
    rate = (after["updates"] - before["updates"]) / elapsed
    per_minute = sorted(
        after[k] for k in after if k.startswith("final@") and after[k] != before.get(k, 0)
    )
    return {
        "symbols": trading,
        "update_interval_s": update_s,
        "seconds": round(elapsed, 1),
        "target_msgs_per_s": target,
        "offered_updates_per_s": round(rate, 1),
        "ratio_to_target": round(rate / target, 3),
        "finals_per_closed_minute": per_minute,
        "server_cpu_share_of_one_core": round(cpu_share, 3),
    }


def ws_bench(args: argparse.Namespace) -> None:
    """Offered rate at 1 update per 2 s and per 1 s, with the finals of each minute."""
    for update_s in (2.0, 1.0):
        print(json.dumps(ws_offered(args.symbols, update_s, args.seconds)), flush=True)


# ---- archives -----------------------------------------------------------------------------


def parse_archive(zip_bytes: bytes, checksum: str, name: str) -> int:
    """What a minimal exact client does with one file: verify, unzip, parse every value."""
    digest, _, stated = checksum.partition("  ")
    if hashlib.sha256(zip_bytes).hexdigest() != digest or stated != name:
        raise ValueError(f"checksum mismatch for {name}")
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as zf:
        text = zf.read(zf.namelist()[0]).decode()
    n = 0
    for row in csv.reader(io.StringIO(text)):
        int(row[0]), int(row[6]), int(row[8])
        for i in (1, 2, 3, 4, 5, 7, 9, 10):
            Decimal(row[i])
        n += 1
    return n


def archives_bench(args: argparse.Namespace) -> None:
    """A year of 1m monthly files for 20 symbols through the archive URLs, cold and warm."""
    from cryptobot_core.simulator.archive import ArchiveFile, Archives
    from cryptobot_core.simulator.faults import Stats

    # One month of 1m, in-process: a cold build, then the cached file.
    market = Market(SimConfig(clock=SimClock.fixed(NOW_MS)))
    archives = Archives(market, 0, 256, Stats())
    month = ArchiveFile.of("BTCUSDT", "1m", "2025-03")
    build_cold = timed(lambda: archives.build(month))
    build_warm = timed(lambda: archives.build(month))
    built = archives.build(month)
    assert built is not None
    parse_one = timed(
        lambda: parse_archive(built.zip_bytes, f"{built.sha256}  {month.name}", month.name)
    )
    print(
        f"one month of 1m ({built.rows} rows, {len(built.zip_bytes)} bytes zipped): "
        f"build cold {build_cold:.3f}s, cached {build_warm * 1000:.2f} ms; the client's "
        f"verify+unzip+parse of it {parse_one:.3f}s (build/parse {build_cold / parse_one:.2f}x)"
    )

    files = [
        ArchiveFile.of(sym, "1m", f"2025-{m:02d}")
        for sym in [s.symbol for s in market.config.symbols if s.status == "TRADING"][
            : args.symbols
        ]
        for m in range(1, args.months + 1)
    ]
    # Big enough to keep every file: the warm pass measures serving, not building.
    sim = SimProcess(args.symbols, cache_mb=4096)
    fetched: dict[str, tuple[bytes, str]] = {}
    try:

        def fetch(client: httpx.Client, file: ArchiveFile) -> int:
            z = client.get(f"{sim.url}/{file.path}")
            c = client.get(f"{sim.url}/{file.path}.CHECKSUM")
            z.raise_for_status()
            c.raise_for_status()
            fetched[file.name] = (z.content, c.text)
            return parse_archive(z.content, c.text, file.name)

        def through_server() -> tuple[float, float, float, int]:
            """(wall s, server CPU s, client CPU s, rows)."""
            cpu0, own0, t0 = cpu_seconds(sim.proc.pid), time.process_time(), time.perf_counter()
            with (
                httpx.Client(timeout=120) as c,
                ThreadPoolExecutor(args.workers) as pool,
            ):
                rows = sum(pool.map(lambda f: fetch(c, f), files))
            return (
                time.perf_counter() - t0,
                cpu_seconds(sim.proc.pid) - cpu0,
                time.process_time() - own0,
                rows,
            )

        cold, cold_cpu, cold_client, rows = through_server()
        warm, warm_cpu, warm_client, _ = through_server()
        stats = sim.stop()
    finally:
        if sim.proc.poll() is None:
            sim.stop()

    def client_only() -> None:
        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(lambda f: parse_archive(*fetched[f.name], f.name), files))

    own0 = time.process_time()
    baseline = timed(client_only)
    baseline_cpu = time.process_time() - own0
    print(
        f"workload: {args.symbols} symbols x {args.months} months of 1m = {len(files)} files, "
        f"{rows} rows, {stats.get('archive_bytes_sent', 0) / 2**20:.0f} MiB sent, "
        f"{stats.get('archive_builds')} builds, {args.workers} client threads"
    )
    print(
        f"client work on in-memory zips (baseline)  {baseline:7.2f}s  1.00x  "
        f"client CPU {baseline_cpu:.1f}s"
    )
    for label, wall, server_cpu, client_cpu in (
        ("cold (builds)", cold, cold_cpu, cold_client),
        ("warm (cached)", warm, warm_cpu, warm_client),
    ):
        share = server_cpu / (server_cpu + client_cpu)
        print(
            f"through the server, {label}        {wall:7.2f}s  {wall / baseline:.2f}x  "
            f"server CPU {server_cpu:.1f}s, client CPU {client_cpu:.1f}s "
            f"(server {share:.0%} of the CPU)"
        )


# ---- ticker ---------------------------------------------------------------------------------


def ticker_bench(args: argparse.Namespace) -> None:
    """24 h tickers of a whole market: cold, next minute, same minute, against naive klines."""
    from cryptobot_core.simulator import generated_symbols
    from cryptobot_core.simulator.ticker import Tickers

    config = SimConfig(symbols=generated_symbols(args.symbols), clock=SimClock.fixed(NOW_MS))
    tickers = Tickers(Market(config))
    cold = timed(lambda: tickers.tickers(NOW_MS))
    next_minute = timed(lambda: tickers.tickers(NOW_MS + 60_000))
    same_minute = timed(lambda: tickers.tickers(NOW_MS + 61_000))
    # Baseline: what a client of REST would do, 1,440 1m klines per symbol, aggregated.
    market = Market(config)
    start = NOW_MS - NOW_MS % 60_000 - 86_400_000

    def naive() -> None:
        for sym in market.symbols:
            rows = market.klines(sym, "1m", start, start + 86_399_999, 1000)
            rows += market.klines(sym, "1m", start + 60_000_000, start + 86_399_999, 1000)
            if rows:
                sum(r.volume for r in rows), max(r.high for r in rows)

    baseline = timed(naive)
    n = len(config.symbols)
    print(f"workload: 24 h tickers of {n} symbols")
    print(f"naive: 1m klines of every symbol, aggregated (baseline) {baseline:7.2f}s  1.00x")
    print(f"tickers, first minute (25 hours computed)         {cold:7.2f}s  {cold / baseline:.3f}x")
    print(
        f"tickers, next minute (edges re-aggregated)        {next_minute:7.3f}s  "
        f"{next_minute / baseline:.4f}x"
    )
    print(f"tickers, same minute (cached)                     {same_minute * 1e6:7.1f}us")


def main() -> None:
    """Run one benchmark (klines by default)."""
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "which", nargs="?", default="klines", choices=["klines", "ws", "archives", "ticker"]
    )
    ap.add_argument("--days", type=int, default=180, help="klines: days of 15m per symbol")
    ap.add_argument("--symbols", type=int, help="klines: 20; ws, ticker: 1500; archives: 20")
    ap.add_argument("--workers", type=int, help="klines: 16; archives: 4")
    ap.add_argument("--latency", type=float, default=0.05, help="klines: injected latency")
    ap.add_argument("--seconds", type=float, default=65.0, help="ws: measuring time per rate")
    ap.add_argument("--months", type=int, default=12, help="archives: months of 2025")
    args = ap.parse_args()
    if args.which == "ws":
        args.symbols = args.symbols or 1500
        ws_bench(args)
    elif args.which == "ticker":
        args.symbols = args.symbols or 1500
        ticker_bench(args)
    elif args.which == "archives":
        args.symbols, args.workers = args.symbols or 20, args.workers or 4
        archives_bench(args)
    else:
        args.symbols, args.workers = args.symbols or 20, args.workers or 16
        klines_bench(args)


if __name__ == "__main__":
    main()
