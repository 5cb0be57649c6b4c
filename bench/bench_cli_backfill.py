"""Benchmark: a small `cryptobot backfill` through Dagster vs fetching and writing directly.

Issue 14: a small backfill from the CLI should finish within 2x the time of fetching and
writing the same candles directly. Both contenders load 15m candles of 2 finished days for
2 symbols (4 partitions) from the same simulator (real clock, in this process) into the
same SecantusDB (separate databases):

- **cli**: `cryptobot backfill --days 2 --symbols A,B` against `dagster dev` (its own
  DAGSTER_HOME, the launcher's instance settings), from the command to its exit;
- **direct**: `fetch_days` + `write_batch`, the same core calls the asset makes, in-process.

Each round uses new symbols, so neither contender finds the data stored. The first round
also pays Dagster's first code-location load; the table shows every round.

    .venv/bin/python bench/bench_cli_backfill.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptobot_core import services  # noqa: E402
from cryptobot_core.exchange import BinanceClient  # noqa: E402
from cryptobot_core.history import ensure_history_indexes, fetch_days, plan_backfill, write_batch  # noqa: E402
from cryptobot_core.launcher.processes import ManagedProcess  # noqa: E402
from cryptobot_core.simulator import SimClock, SimConfig, SimulatorServer  # noqa: E402
from cryptobot_core.store import Store  # noqa: E402

INSTANCE = (ROOT / "cryptobot_core" / "launcher" / "dagster.dev.yaml").read_text()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/server_info", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> None:
    """Run the rounds and print a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cli-backfill-"))
    sim = SimulatorServer(SimConfig(seed=42, clock=SimClock.real())).start()
    mport, dport = services.free_ports(2)
    mongo = services.secantus(mport, ":memory:", work / "secantus.log").start()
    uri = f"mongodb://127.0.0.1:{mport}/?directConnection=true"
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE)
    today = datetime.now(UTC).date()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CRYPTOBOT_MONGO_URI": uri,
        "CRYPTOBOT_MONGO_DB": "cli",
        "CRYPTOBOT_EXCHANGE": "sim",
        "CRYPTOBOT_SIM_HOST": "127.0.0.1",
        "CRYPTOBOT_SIM_PORT": str(sim.port),
        # A symbol the exchange does not list: no symbol partition, so the catch-up sensor
        # has nothing to do and only the backfill under test runs.
        "CRYPTOBOT_SYMBOLS": "NOPEUSDT",
        "CRYPTOBOT_HISTORY_START_DATE": (today - timedelta(days=5)).isoformat(),
        "CRYPTOBOT_DAGSTER_URL": f"http://127.0.0.1:{dport}",
    }
    url = f"http://127.0.0.1:{dport}"
    dagster = ManagedProcess(
        name="dagster dev",
        argv=[
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-m",
            "cryptobot_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(dport),
        ],
        log_path=work / "dagster.log",
        healthy=lambda: _healthy(url),
        env=env,
        cwd=ROOT,
        startup_timeout=180,
        port=dport,
    ).start()
    pairs = [s for s in sim.market.symbols if s not in ("BTCUSDT", "LUNAUSDT")]
    rows = []
    try:
        for n in range(args.rounds):
            a, b, c, d = pairs[4 * n : 4 * n + 4]
            t = time.perf_counter()
            proc = subprocess.run(
                [
                    str(Path(sys.executable).parent / "cryptobot"),
                    "backfill",
                    "--days",
                    "2",
                    "--symbols",
                    f"{a},{b}",
                    "--poll",
                    "0.5",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            cli_s = time.perf_counter() - t
            if proc.returncode != 0:
                raise SystemExit(f"cli backfill failed:\n{proc.stdout}\n{proc.stderr}")
            client: MongoClient = MongoClient(uri, tz_aware=True)
            store = Store(client["direct_sim"])
            t = time.perf_counter()
            with BinanceClient(sim.url, timeout_s=30) as exchange:
                plan = plan_backfill([c, d], 2, today=today, start_date=today - timedelta(days=5))
                ensure_history_indexes(store)
                batch = fetch_days(exchange, plan, exchange.server_time_ms())
                written = write_batch(store, batch)
            direct_s = time.perf_counter() - t
            cli_docs = client["cli_sim"]["historical_data_15m"].count_documents(
                {"symbol": {"$in": [a, b]}}
            )
            client.close()
            rows.append((n + 1, cli_s, direct_s, cli_docs, written.inserted))
    finally:
        dagster.stop(timeout=10)
        mongo.stop()
        sim.stop()
    print("# bench_cli_backfill: 2 symbols x 2 days of 15m (4 partitions, 384 candles)\n")
    print(
        "| round | cli (`cryptobot backfill`) | direct (fetch_days + write_batch) | cli ÷ direct | candles cli / direct |"
    )
    print("|---|---|---|---|---|")
    for n, cli_s, direct_s, cli_docs, direct_docs in rows:
        print(
            f"| {n} | {cli_s:.2f} s | {direct_s:.3f} s | {cli_s / direct_s:.0f} | {cli_docs} / {direct_docs} |"
        )
    print(f"\nlogs in {work}")


if __name__ == "__main__":
    main()
