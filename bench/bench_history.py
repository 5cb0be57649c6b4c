"""Benchmark: a 180-day x 2-symbol history backfill through Dagster vs a raw bulk_write.

Workload (issue 4): every (day, symbol) partition of klines_15m from 180 days back to
yesterday, BTCUSDT and ETHUSDT, from the simulator with no injected latency, into a fresh
SecantusDB. The backfill is executed in-process the way Dagster's backfill daemon splits
it: the asset's multi_run(30) policy gives one run per 30 days per symbol (12 runs), each
materialized with ``dg.materialize`` and Dagster's partition-range tags.

The baseline, measured in the same run against the same store, is a raw pymongo
``bulk_write`` of the very documents the backfill stored, into an empty collection with
the same unique index, with the same write (``UpdateOne($setOnInsert, upsert=True)``) in
the same batch size (one batch per run). An ``InsertOne`` bulk is reported too.

Then candle_features_15m runs once over the same 180 days (single-run backfill policy):
seconds per 10k candles, and the share of Spark start-up (session creation plus a first
trivial job, timed before the run in the same process; the run then reuses that session).

    .venv/bin/python bench/bench_history.py [--days 180] [--symbols BTCUSDT,ETHUSDT]

The history half of the scaling curve (issue 14): the same backfill at 1x, 2x, 4x and 8x
the symbols, each into its own database on the same store, with the CPU each process used,
drawn as docs/benchmarks/history-scaling.png:

    .venv/bin/python bench/bench_history.py --scale --days 30
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
from pymongo import ASCENDING, InsertOne, MongoClient, UpdateOne
from scaling import cpu_panel, cpu_s

from cryptobot_assets.definitions import build_defs
from cryptobot_assets.history.assets import FEATURES_KEY, KLINES_KEY, MAX_DAYS_PER_RUN
from cryptobot_assets.history.partitions import RANGE_END_TAG, RANGE_START_TAG, range_tags
from cryptobot_core import services
from cryptobot_core.features import start_spark
from cryptobot_core.history import plan_runs
from cryptobot_core.settings import load_settings
from cryptobot_core.simulator import default_symbols
from cryptobot_core.store import FEATURES_15M, HISTORICAL_15M

CHILD = textwrap.dedent(
    """
    import json, sys
    from cryptobot_core.simulator import SimClock, SimConfig, SimulatorServer
    server = SimulatorServer(SimConfig(seed=42, clock=SimClock.real())).start()
    print(json.dumps({"port": server.port}), flush=True)
    sys.stdin.read()
    server.stop()
    """
)


class Backfill(NamedTuple):
    """One measured backfill: its figures and what the features step reuses."""

    figures: dict[str, Any]
    defs: dg.Definitions
    instance: dg.DagsterInstance
    db: Any


def backfill(
    uri: str,
    db_name: str,
    sim: subprocess.Popen[str],
    sim_port: int,
    store_pid: int,
    symbols: list[str],
    days: tuple[date, date],
    spark_master: str,
    work: Path,
) -> Backfill:
    """Backfill every (day, symbol) partition in-process, then the raw baselines, same store."""
    first, last = days
    settings = load_settings(
        mongo_uri=uri,
        mongo_db=db_name,
        exchange="sim",
        sim_port=sim_port,
        history_start_date=first,
        spark_master=spark_master,
        symbols=symbols,
    )
    # The code location reads the store URI from its environment, never from config.
    os.environ["CRYPTOBOT_MONGO_URI"] = uri
    defs = build_defs(settings)
    (work / db_name).mkdir()
    instance = dg.DagsterInstance.local_temp(str(work / db_name))
    instance.add_dynamic_partitions("symbols", symbols)
    klines = defs.get_assets_def(KLINES_KEY)
    all_days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    # The ranges the CLI and the catch-up sensor would launch: one run per symbol and 30 days.
    planned = plan_runs([(s, d) for s in symbols for d in all_days], MAX_DAYS_PER_RUN)
    runs = [range_tags(s, a, b) for s, a, b in planned]

    pids = {"store": store_pid, "simulator": sim.pid}
    cpu0 = {name: cpu_s(pid) for name, pid in pids.items()}
    own0 = time.process_time()
    t0 = time.perf_counter()
    for tags in runs:
        res = dg.materialize([klines], instance=instance, resources=defs.resources, tags=tags)
        assert res.success, tags
    backfill_s = time.perf_counter() - t0
    cores = {name: (cpu_s(pid) - cpu0[name]) / backfill_s for name, pid in pids.items()}
    cores["dagster (runs in-process)"] = (time.process_time() - own0) / backfill_s

    client: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True)
    db = client[settings.database]
    docs = list(db[HISTORICAL_15M].find({}, {"_id": 0}).sort([("symbol", 1), ("open_time", 1)]))
    n = len(docs)

    def fresh(name: str) -> Any:
        db.drop_collection(name)
        coll = db[name]
        coll.create_index([("symbol", ASCENDING), ("open_time", ASCENDING)], unique=True)
        return coll

    # Same batches as the runs: one bulk per (symbol, 30 days).
    batches = [
        [d for d in docs if d["symbol"] == sym and first <= d["open_time"].date() <= last]
        for sym, first, last in planned
    ]
    coll = fresh("baseline_upsert")
    t0 = time.perf_counter()
    for batch in batches:
        coll.bulk_write(
            [
                UpdateOne(
                    {"symbol": d["symbol"], "open_time": d["open_time"]},
                    {"$setOnInsert": d},
                    upsert=True,
                )
                for d in batch
            ],
            ordered=False,
        )
    upsert_s = time.perf_counter() - t0
    coll = fresh("baseline_insert")
    t0 = time.perf_counter()
    for batch in batches:
        coll.bulk_write([InsertOne(dict(d)) for d in batch], ordered=False)
    insert_s = time.perf_counter() - t0
    for name in ("baseline_upsert", "baseline_insert"):
        db.drop_collection(name)
    figures = {
        "symbols": len(symbols),
        "partitions": len(all_days) * len(symbols),
        "runs": len(runs),
        "candles": n,
        "dagster_backfill_s": round(backfill_s, 2),
        "dagster_candles_per_s": round(n / backfill_s),
        "raw_upsert_bulk_write_s": round(upsert_s, 2),
        "raw_upsert_candles_per_s": round(n / upsert_s),
        "ratio_vs_upsert_bulk_write": round(upsert_s / backfill_s, 3),
        "raw_insert_bulk_write_s": round(insert_s, 2),
        "ratio_vs_insert_bulk_write": round(insert_s / backfill_s, 3),
        # Cores used during the backfill, per process (2 cores here).
        "cpu_cores": {name: round(v, 3) for name, v in cores.items()},
    }
    return Backfill(figures, defs, instance, db)


def features(point: Backfill, days: tuple[date, date], spark_master: str) -> dict[str, Any]:
    """candle_features_15m once over the whole range, Spark start-up timed on its own first.

    Start-up = session creation + a first trivial job (JVM class loading, Python worker
    start); the features run then reuses this warm session.
    """
    t0 = time.perf_counter()
    start_spark(spark_master).range(1).collect()
    spark_start_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = dg.materialize(
        [point.defs.get_assets_def(FEATURES_KEY), point.defs.get_assets_def(KLINES_KEY)],
        selection=[FEATURES_KEY],
        instance=point.instance,
        resources=point.defs.resources,
        tags={RANGE_START_TAG: days[0].isoformat(), RANGE_END_TAG: days[1].isoformat()},
    )
    assert res.success
    features_s = time.perf_counter() - t0
    feature_rows = point.db[FEATURES_15M].count_documents({})
    total_features_s = spark_start_s + features_s
    return {
        "feature_rows": feature_rows,
        "spark_start_s": round(spark_start_s, 2),
        "features_run_s": round(features_s, 2),
        "features_s_per_10k_candles": round(total_features_s / feature_rows * 10_000, 2),
        "spark_start_share": round(spark_start_s / total_features_s, 3),
    }


SCALE_PNG = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "history-scaling.png"


def draw(points: list[dict[str, Any]], days: int) -> None:
    """Write rate and CPU against symbols, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    symbols = [p["symbols"] for p in points]
    fig, (rate, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    rate.plot(symbols, [p["dagster_candles_per_s"] for p in points], "o-", label="Dagster backfill")
    rate.plot(
        symbols, [p["raw_upsert_candles_per_s"] for p in points], "s--", label="raw upsert bulk"
    )
    rate.plot(
        symbols,
        [p["candles"] / p["raw_insert_bulk_write_s"] for p in points],
        "^:",
        label="raw insert_many",
    )
    rate.set_xscale("log", base=2)
    rate.set_xticks(symbols, [str(s) for s in symbols])
    rate.set_ylim(bottom=0)
    rate.set_xlabel(f"symbols ({days} days of 15m each)")
    rate.set_ylabel("candles stored per second")
    rate.legend(fontsize=8)
    rate.set_title("History write rate")
    cpu_panel(cpu, symbols, [p["cpu_cores"] for p in points], "cores used during the backfill")
    fig.tight_layout()
    fig.savefig(SCALE_PNG, dpi=110)


def main() -> None:
    """Run the benchmark and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="backfill 1x, 2x, 4x and 8x the symbols (the simulator's first ones), no features;"
        " draws docs/benchmarks/history-scaling.png",
    )
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)
    symbols = args.symbols.split(",")
    today = datetime.now(UTC).date()
    days = (today - timedelta(days=args.days), today - timedelta(days=1))

    work = Path(tempfile.mkdtemp(prefix="bench-history-"))
    port = services.free_port()
    store = services.secantus(port, ":memory:", work / "secantus.log").start()
    sim = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert sim.stdout is not None
        sim_port = json.loads(sim.stdout.readline())["port"]
        uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        assert store.proc is not None
        store_pid = store.proc.pid
        if args.scale:
            listed = [s.symbol for s in default_symbols() if s.status == "TRADING"]
            points = []
            for factor in (1, 2, 4, 8):
                chosen = listed[: len(symbols) * factor]
                point = backfill(
                    uri,
                    f"bench_x{factor}",
                    sim,
                    sim_port,
                    store_pid,
                    chosen,
                    days,
                    args.spark_master,
                    work,
                )
                point.db.client.drop_database(point.db.name)
                points.append({"factor": factor, **point.figures})
                print(json.dumps(points[-1]), file=sys.stderr, flush=True)
            draw(points, args.days)
            print(json.dumps({"days": args.days, "points": points}, indent=2))
            return
        point = backfill(
            uri, "bench", sim, sim_port, store_pid, symbols, days, args.spark_master, work
        )
        print(json.dumps({**point.figures, **features(point, days, args.spark_master)}, indent=2))
    finally:
        if sim.stdin:
            sim.stdin.close()
        sim.wait(timeout=10)
        store.stop()


if __name__ == "__main__":
    main()
