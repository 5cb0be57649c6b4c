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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from pymongo import ASCENDING, InsertOne, MongoClient, UpdateOne

from cryptobot_assets.definitions import build_defs
from cryptobot_assets.history.assets import FEATURES_KEY, KLINES_KEY, MAX_DAYS_PER_RUN
from cryptobot_assets.history.partitions import RANGE_END_TAG, RANGE_START_TAG, range_tags
from cryptobot_core import services
from cryptobot_core.features import start_spark
from cryptobot_core.history import contiguous_ranges
from cryptobot_core.settings import load_settings
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


def main() -> None:
    """Run the benchmark and print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=180)
    parser.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    parser.add_argument("--spark-master", default="local[2]")
    args = parser.parse_args()
    logging.getLogger("dagster").setLevel(logging.WARNING)
    symbols = args.symbols.split(",")
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=args.days), today - timedelta(days=1)

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
        settings = load_settings(
            mongo_uri=uri,
            mongo_db="bench",
            exchange="sim",
            sim_port=sim_port,
            history_start_date=first,
            spark_master=args.spark_master,
            symbols=symbols,
        )
        # The code location reads the store URI from its environment, never from config.
        os.environ["CRYPTOBOT_MONGO_URI"] = uri
        defs = build_defs(settings)
        (work / "dagster").mkdir()
        instance = dg.DagsterInstance.local_temp(str(work / "dagster"))
        instance.add_dynamic_partitions("symbols", symbols)
        klines = defs.get_assets_def(KLINES_KEY)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        runs = [
            range_tags(s, a, b)
            for s in symbols
            for a, b in contiguous_ranges(days, MAX_DAYS_PER_RUN)
        ]

        t0 = time.perf_counter()
        for tags in runs:
            res = dg.materialize([klines], instance=instance, resources=defs.resources, tags=tags)
            assert res.success, tags
        backfill_s = time.perf_counter() - t0

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
        batches: list[list[dict[str, Any]]] = []
        for tags in runs:
            sym = tags[RANGE_START_TAG].split("|")[1]
            lo = tags[RANGE_START_TAG].split("|")[0]
            hi = tags[RANGE_END_TAG].split("|")[0]
            batches.append(
                [
                    d
                    for d in docs
                    if d["symbol"] == sym and lo <= d["open_time"].date().isoformat() <= hi
                ]
            )
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

        # Features: one run over the whole range, Spark start-up timed on its own first.
        # Start-up = session creation + a first trivial job (JVM class loading, Python
        # worker start); the features run then reuses this warm session.
        t0 = time.perf_counter()
        start_spark(args.spark_master).range(1).collect()
        spark_start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = dg.materialize(
            [defs.get_assets_def(FEATURES_KEY), klines],
            selection=[FEATURES_KEY],
            instance=instance,
            resources=defs.resources,
            tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        )
        assert res.success
        features_s = time.perf_counter() - t0
        feature_rows = db[FEATURES_15M].count_documents({})
        client.close()
        total_features_s = spark_start_s + features_s
        print(
            json.dumps(
                {
                    "partitions": len(days) * len(symbols),
                    "runs": len(runs),
                    "candles": n,
                    "dagster_backfill_s": round(backfill_s, 2),
                    "dagster_candles_per_s": round(n / backfill_s),
                    "raw_upsert_bulk_write_s": round(upsert_s, 2),
                    "raw_upsert_candles_per_s": round(n / upsert_s),
                    "ratio_vs_upsert_bulk_write": round(upsert_s / backfill_s, 3),
                    "raw_insert_bulk_write_s": round(insert_s, 2),
                    "ratio_vs_insert_bulk_write": round(insert_s / backfill_s, 3),
                    "feature_rows": feature_rows,
                    "spark_start_s": round(spark_start_s, 2),
                    "features_run_s": round(features_s, 2),
                    "features_s_per_10k_candles": round(
                        total_features_s / feature_rows * 10_000, 2
                    ),
                    "spark_start_share": round(spark_start_s / total_features_s, 3),
                },
                indent=2,
            )
        )
    finally:
        if sim.stdin:
            sim.stdin.close()
        sim.wait(timeout=10)
        store.stop()


if __name__ == "__main__":
    main()
