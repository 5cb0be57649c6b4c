"""Benchmark: history through Binance's bulk archives vs through REST (issue 13).

    .venv/bin/python bench/bench_archive.py [--symbols 20 --months 1 --latency 0.05]

The simulator runs in its own process (bench/sim_server.py) with ``--latency`` on every REST
and archive request and Binance's REST weight limit (6,000 per minute) enforced; SecantusDB
runs in its own process too.

Workload: ``--months`` closed months of 1m candles for ``--symbols`` symbols (one month x 20
symbols is 892,800 candles; the issue's year is the same per month, twelve times over).

* **fetch**: ``ArchiveKlines.klines_many`` (monthly files, SHA-256 verified, parsed by the
  same exact-decimal parser) against ``BinanceClient.klines_many`` with 32 workers (the
  client's tuned setting), same ranges, same server. Both answers must be equal candle for
  candle, or the benchmark fails. The ratio is REST time / archive time; 429s are counted.
* **end to end**: for the first ``--store-symbols`` symbols, both answers are also written
  into their own empty collection of a fresh SecantusDB through the history writer
  (``insert_missing``, one call per symbol). The ratio is REST (fetch + write) / archive
  (fetch + write) over those symbols; the write share is reported because the store binds.

Symbols are taken one at a time (warm-up, REST, archives, compare, write, drop), so memory
stays at one symbol's candles whatever ``--months`` is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptobot_core import services  # noqa: E402
from cryptobot_core.exchange import BinanceClient  # noqa: E402
from cryptobot_core.exchange.archive import ArchiveKlines  # noqa: E402
from cryptobot_core.intervals import Interval  # noqa: E402
from cryptobot_core.models import Candle  # noqa: E402
from cryptobot_core.settings import load_settings  # noqa: E402
from cryptobot_core.store import open_store  # noqa: E402


def month_bounds(months: int) -> tuple[int, int]:
    """[start, end) of the ``months`` whole UTC months before the current one."""
    now = datetime.now(UTC)
    end = datetime(now.year, now.month, 1, tzinfo=UTC)
    year, month = end.year, end.month - months
    while month < 1:
        year, month = year - 1, month + 12
    start = datetime(year, month, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def write(store: Any, interval: Interval, results: list[list[Candle]]) -> float:
    """Seconds to write every list through the history writer into an empty collection."""
    candles = store.history(interval)
    candles.ensure_indexes()
    t = time.perf_counter()
    for batch in results:
        candles.insert_missing(batch)
    return time.perf_counter() - t


def key(results: list[list[Candle]]) -> list[list[list[Any]]]:
    return [[c.to_rest_row() for c in batch] for batch in results]


def main() -> None:
    """Run the benchmark and print a Markdown report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--months", type=int, default=1)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=32)
    ap.add_argument("--store-symbols", type=int, default=2, help="also written, end to end")
    ap.add_argument("--no-store", action="store_true", help="fetch only")
    args = ap.parse_args()

    sim = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "sim_server.py"),
            "--symbols",
            str(args.symbols),
            "--latency-s",
            str(args.latency),
            "--archive-cache-mb",
            "2048",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    logs = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    mongo_port = services.free_port()
    mongo = None if args.no_store else services.secantus(mongo_port, ":memory:", logs / "db.log")
    try:
        hello = json.loads(sim.stdout.readline())
        url = f"http://127.0.0.1:{hello['port']}"
        symbols = hello["symbols"][: args.symbols]
        start, end = month_bounds(args.months)
        if mongo is not None:
            mongo.start()

        # The simulator builds each file and page once (cached): warm both paths so neither
        # pays for generating the market. One symbol at a time, so memory stays bounded.
        rest_fetch = archive_fetch = rest_write = archive_write = 0.0
        candles = stored = rest_requests = rest_429 = archive_429 = 0
        files = rest_ranges = fallbacks = 0
        megabytes = 0.0
        with BinanceClient(url) as rest:
            for n, symbol in enumerate(symbols):
                one = [(symbol, "1m", start, end)]
                with ArchiveKlines(rest, url) as warm:
                    warm.klines_many(one)
                rest.klines_many(one, max_workers=args.workers)
                before = (rest.stats.requests, rest.stats.rate_limited)
                t = time.perf_counter()
                by_rest = rest.klines_many(one, max_workers=args.workers)
                rest_fetch += time.perf_counter() - t
                rest_requests += rest.stats.requests - before[0]
                rest_429 += rest.stats.rate_limited - before[1]
                with ArchiveKlines(rest, url) as fast:
                    limited = rest.stats.rate_limited
                    t = time.perf_counter()
                    by_archive = fast.klines_many(one)
                    archive_fetch += time.perf_counter() - t
                    archive_429 += rest.stats.rate_limited - limited
                    files += fast.report.files
                    megabytes += fast.report.bytes / 1e6
                    rest_ranges += fast.report.rest_ranges
                    fallbacks += len(fast.report.fallbacks)
                assert key(by_archive) == key(by_rest), f"{symbol}: archive answer differs"
                candles += len(by_rest[0])
                if mongo is not None and n < args.store_symbols:
                    stored += len(by_rest[0])
                    for name, results in (("rest", by_rest), ("archive", by_archive)):
                        settings = load_settings(
                            _env_file=None,
                            mongo_uri=f"mongodb://127.0.0.1:{mongo_port}/?directConnection=true",
                            mongo_db=f"bench_{name}",
                            exchange="binance",
                        )
                        with open_store(settings) as store:
                            seconds = write(store, Interval.M1, results)
                        if name == "rest":
                            rest_write += seconds
                        else:
                            archive_write += seconds
                del by_rest, by_archive

        print(f"## Archive vs REST ({datetime.now(UTC):%Y-%m-%d})\n")
        print(
            f"{len(symbols)} symbols x {args.months} month(s) of 1m = {candles:,} candles, "
            f"{args.latency * 1000:.0f} ms latency, weight limit 6000/min\n"
        )
        print("| | REST (32 workers) | archives | REST ÷ archives |")
        print("|---|---|---|---|")
        print(
            f"| fetch, all symbols (s) | {rest_fetch:.1f} | {archive_fetch:.1f} | "
            f"**{rest_fetch / archive_fetch:.2f}×** |"
        )
        print(
            f"| requests | {rest_requests:,} | {files} files ({megabytes:.0f} MB), "
            f"{rest_ranges} REST ranges | – |"
        )
        print(f"| 429s | {rest_429} | {archive_429} | – |")
        if stored:
            # The fetch share of the stored symbols, scaled by candles (same per symbol).
            share = stored / candles
            total_rest = rest_fetch * share + rest_write
            total_archive = archive_fetch * share + archive_write
            print(
                f"| end to end, first {args.store_symbols} symbols ({stored:,} candles) (s) | "
                f"{total_rest:.1f} | {total_archive:.1f} | **{total_rest / total_archive:.2f}×** |"
            )
            print(
                f"\nstore write share of end to end: REST {rest_write / total_rest:.2f}, "
                f"archives {archive_write / total_archive:.2f}; "
                f"the store took {stored / archive_write:,.0f} candles/s"
            )
        print(f"\ncandles equal, symbol by symbol: yes; archive fallbacks: {fallbacks}")
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        if mongo is not None:
            mongo.stop()


if __name__ == "__main__":
    main()
