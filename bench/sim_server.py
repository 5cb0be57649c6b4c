"""The simulator in its own process for benchmarks: prints its port, then its stats on SIGTERM.

    .venv/bin/python bench/sim_server.py --symbols 400 --update-s 1.0        # S000USDT ...
    .venv/bin/python bench/sim_server.py --trading-symbols 1500 --update-s 2  # generated market

The first line on stdout is ``{"port": P, "symbols": [...TRADING symbols...]}``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptobot_core.simulator import (  # noqa: E402
    Faults,
    SimClock,
    SimConfig,
    SimulatorServer,
    SymbolListing,
    generated_symbols,
)


def listings(n: int) -> list[SymbolListing]:
    """n synthetic USDT symbols listed long ago (S000USDT, S001USDT, ...)."""
    return [SymbolListing(f"S{i:03d}USDT", 1_500_000_000_000, Decimal("100")) for i in range(n)]


def main() -> None:
    """Serve until SIGTERM."""
    ap = argparse.ArgumentParser()
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--symbols", type=int, default=2, help="synthetic S000USDT... symbols")
    group.add_argument("--trading-symbols", type=int, help="generated_symbols(N) market")
    ap.add_argument("--update-s", type=float, default=1.0)
    ap.add_argument("--archive-cache-mb", type=float, default=256.0)
    ap.add_argument("--latency-s", type=float, default=0.0, help="REST and archive latency")
    args = ap.parse_args()
    symbols = (
        generated_symbols(args.trading_symbols) if args.trading_symbols else listings(args.symbols)
    )
    server = SimulatorServer(
        SimConfig(
            symbols=symbols,
            clock=SimClock.real(),
            ws_update_interval_s=args.update_s,
            archive_cache_mb=args.archive_cache_mb,
        ),
        faults=Faults(latency_s=args.latency_s),
    ).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    trading = [s.symbol for s in symbols if s.status == "TRADING"]
    print(json.dumps({"port": server.port, "symbols": trading}), flush=True)
    done.wait()
    stats = server.stats.snapshot()
    server.stop()
    print(
        json.dumps(
            {
                k: stats[k]
                for k in (
                    "ws_messages_sent",
                    "ws_finals_sent",
                    "ws_malformed_sent",
                    "archive_requests",
                    "archive_builds",
                    "archive_bytes_sent",
                )
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
