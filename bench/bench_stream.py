"""Stream benchmarks: latency, throughput, catch-up (own Tansu + SecantusDB + simulator).

    .venv/bin/python bench/bench_stream.py latency    [--seconds 60]
    .venv/bin/python bench/bench_stream.py throughput [--symbols 400 --seconds 120 --update-s 1]
    .venv/bin/python bench/bench_stream.py catchup    [--symbols 400 --minutes 10]
    .venv/bin/python bench/bench_stream.py scale      [--symbols 188 --seconds 60 --update-s 2]

Producer and consumer run as separate processes (``python -m cryptobot_core.stream``) so
their RSS can be read; every rate is also given as a ratio of a baseline measured in the
same run on the same store (a raw pymongo bulk upsert).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from pymongo import MongoClient, UpdateOne

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scaling import cpu_panel, cpu_s  # noqa: E402

from cryptobot_core import services  # noqa: E402
from cryptobot_core.intervals import Interval  # noqa: E402
from cryptobot_core.models import dt_to_ms, ms_to_dt  # noqa: E402
from cryptobot_core.settings import Settings, load_settings  # noqa: E402
from cryptobot_core.simulator import SimClock, SimConfig, SymbolListing  # noqa: E402
from cryptobot_core.store import HEARTBEATS, STREAMING_1M, CandleStore  # noqa: E402
from cryptobot_core.stream import kafka as kafka_util  # noqa: E402
from cryptobot_core.stream.messages import encode_event  # noqa: E402

M1 = Interval.M1


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


class Stack:
    """Own Tansu + SecantusDB (+ optional simulator) and the stream processes."""

    def __init__(self, work: Path, symbols: list[str], sim_port: int | None) -> None:
        self.work = work
        kport, mport = services.free_ports(2)
        self.tansu = services.tansu(kport, work / "tansu.log").start()
        self.mongo = services.secantus(mport, ":memory:", work / "secantus.log").start()
        tag = uuid.uuid4().hex[:6]
        self.settings: Settings = load_settings(
            mongo_uri=f"mongodb://127.0.0.1:{mport}/?directConnection=true",
            mongo_db=f"bench_{tag}",
            exchange="sim",
            kafka_bootstrap_servers=f"127.0.0.1:{kport}",
            kafka_topic=f"bench-{tag}",
            kafka_dead_letter_topic=f"bench-{tag}.dl",
            kafka_consumer_group=f"bench-{tag}",
            symbols=symbols,
            data_dir=work / ".cryptobot",
            sim_port=sim_port or 9443,
        )
        self.client: MongoClient[dict[str, Any]] = MongoClient(
            self.settings.effective_mongo_uri, tz_aware=True
        )
        self.db = self.client[self.settings.database]
        CandleStore(self.db, STREAMING_1M).ensure_indexes()
        kafka_util.ensure_topics(self.settings)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def env(self) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "CRYPTOBOT_MONGO_URI": s.effective_mongo_uri,
            "CRYPTOBOT_MONGO_DB": s.mongo_db,
            "CRYPTOBOT_EXCHANGE": "sim",
            "CRYPTOBOT_KAFKA_BOOTSTRAP_SERVERS": s.effective_kafka_bootstrap,
            "CRYPTOBOT_KAFKA_TOPIC": s.kafka_topic,
            "CRYPTOBOT_KAFKA_DEAD_LETTER_TOPIC": s.kafka_dead_letter_topic,
            "CRYPTOBOT_KAFKA_CONSUMER_GROUP": s.kafka_consumer_group,
            "CRYPTOBOT_SYMBOLS": ",".join(s.symbols),
            "CRYPTOBOT_SIM_PORT": str(s.sim_port),
            "CRYPTOBOT_DATA_DIR": str(s.data_dir),
            "CRYPTOBOT_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }

    def start(self, role: str) -> subprocess.Popen[bytes]:
        verb = {"producer": "produce", "consumer": "consume"}[role]
        log = open(self.work / f"{role}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "cryptobot_core.stream", verb],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[role] = proc
        return proc

    def stop(self, role: str) -> float:
        """SIGTERM a stream process; seconds until it exited."""
        proc = self.procs.pop(role, None)
        t = time.monotonic()
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(60)
        return time.monotonic() - t

    def stats(self, role: str) -> dict[str, Any]:
        doc = self.db[HEARTBEATS].find_one({"_id": role}) or {}
        return doc.get("stats", {})

    def close(self) -> None:
        for role in list(self.procs):
            self.stop(role)
        self.client.close()
        self.tansu.stop()
        self.mongo.stop()


def listings(n: int) -> list[SymbolListing]:
    """n synthetic USDT symbols listed long ago."""
    return [SymbolListing(f"S{i:03d}USDT", 1_500_000_000_000, Decimal("100")) for i in range(n)]


class Watcher:
    """Change stream on streaming_data_1m: latency = arrival wall time - event time."""

    def __init__(self, db: Any) -> None:
        self.latencies_ms: list[float] = []
        self._stop = threading.Event()
        self._db = db
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with self._db[STREAMING_1M].watch(
            full_document="updateLookup", max_await_time_ms=200
        ) as stream:
            while not self._stop.is_set():
                change = stream.try_next()
                if change is None:
                    continue
                doc = change.get("fullDocument") or {}
                ev = doc.get("event_time")
                if ev is not None:
                    self.latencies_ms.append(time.time() * 1000 - dt_to_ms(ev))

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


def _baseline_docs(n: int) -> list[dict[str, Any]]:
    """Small candle-keyed documents both raw baselines write."""
    return [
        {
            "symbol": f"B{i % 400:03d}USDT",
            "open_time": ms_to_dt(1_700_000_000_000 + (i // 400) * 60_000),
            "close": "1.0",
            "volume": "2.0",
            "trades": i,
        }
        for i in range(n)
    ]


def baseline_upsert_rate(db: Any, n: int = 5000) -> float:
    """Docs/s of a raw pymongo bulk upsert (UpdateOne $set, upsert) on the same store."""
    coll = db[f"baseline_{uuid.uuid4().hex[:6]}"]
    coll.create_index([("symbol", 1), ("open_time", 1)], unique=True)
    docs = _baseline_docs(n)
    t = time.perf_counter()
    for i in range(0, n, 1000):
        coll.bulk_write(
            [
                UpdateOne(
                    {"symbol": d["symbol"], "open_time": d["open_time"]}, {"$set": d}, upsert=True
                )
                for d in docs[i : i + 1000]
            ],
            ordered=False,
        )
    rate = n / (time.perf_counter() - t)
    coll.drop()
    return rate


def baseline_insert_many_rate(db: Any, n: int = 5000) -> float:
    """Docs/s of a raw pymongo ``insert_many`` of the same kind of documents, same store."""
    coll = db[f"baseline_{uuid.uuid4().hex[:6]}"]
    coll.create_index([("symbol", 1), ("open_time", 1)], unique=True)
    docs = _baseline_docs(n)
    t = time.perf_counter()
    for i in range(0, n, 1000):
        coll.insert_many(docs[i : i + 1000], ordered=False)
    rate = n / (time.perf_counter() - t)
    coll.drop()
    return rate


class SimProcess:
    """bench/sim_server.py in its own process, so the simulator gets its own CPU time.

    The simulator offers 1,500 symbols at 1 update/s on this machine (docs/benchmarks/
    simulator.md), so it is the feed of every run.
    """

    def __init__(self, symbols: int, update_s: float) -> None:
        argv = [
            sys.executable,
            str(ROOT / "bench" / "sim_server.py"),
            "--symbols",
            str(symbols),
            "--update-s",
            str(update_s),
        ]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.port = int(json.loads(self.proc.stdout.readline())["port"])

    def stop(self) -> dict[str, Any]:
        """Stop it and return its counters."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=60)
        lines = [ln for ln in out.splitlines() if ln.strip()]
        return json.loads(lines[-1]) if lines else {}


def run_live(
    symbols: int,
    seconds: float,
    update_s: float,
    work: Path,
    watch: bool = True,
) -> dict[str, Any]:
    """Simulator → producer → Kafka → consumer → MongoDB for ``seconds``."""
    sim = SimProcess(symbols, update_s)
    stack = Stack(work, [s.symbol for s in listings(symbols)], sim.port)
    sim_stats: dict[str, Any] = {}
    try:
        base = baseline_upsert_rate(stack.db)
        base_insert = baseline_insert_many_rate(stack.db)
        # The change stream costs the store a lookup per write; at 400 msg/s it would
        # compete with the consumer, so the throughput run relies on the consumer's figures.
        watcher = Watcher(stack.db) if watch else None
        consumer = stack.start("consumer")
        producer = stack.start("producer")
        time.sleep(10)  # warm-up: group join, WS connect, subscriptions
        rss0 = {"producer": rss_mb(producer.pid), "consumer": rss_mb(consumer.pid)}
        pids = {
            "producer": producer.pid,
            "consumer": consumer.pid,
            "store": stack.mongo.proc.pid,
            "broker": stack.tansu.proc.pid,
            "feed": sim.proc.pid,
        }
        cpu0 = {name: cpu_s(pid) for name, pid in pids.items()}
        p0 = stack.stats("producer").get("messages", 0)
        lat_from = len(watcher.latencies_ms) if watcher else 0
        pipeline: list[float] = []
        windows: list[tuple[float, float]] = []
        stages: dict[str, list[list[float]]] = {}
        # RSS every minute: a soak must show whether memory levels off, not only its ends.
        rss_series: list[dict[str, float]] = []
        t0 = time.monotonic()
        wall0 = int(time.time() * 1000)
        while time.monotonic() - t0 < seconds:
            time.sleep(3)  # the consumer's heartbeat interval
            c = stack.stats("consumer")
            if c.get("pipeline_ms_p99") is not None:
                pipeline.append(c["pipeline_ms_p99"])
            if c.get("latency_ms_p99") is not None:
                windows.append((c["latency_ms_p50"], c["latency_ms_p99"]))
            for name, p50_p99 in (c.get("stages_ms") or {}).items():
                stages.setdefault(name, []).append(p50_p99)
            if len(rss_series) < (time.monotonic() - t0) // 60:
                rss_series.append(
                    {"producer": rss_mb(producer.pid), "consumer": rss_mb(consumer.pid)}
                )
        elapsed = time.monotonic() - t0
        cpu = {name: (cpu_s(pid) - cpu0[name]) / elapsed for name, pid in pids.items()}
        rss1 = {"producer": rss_mb(producer.pid), "consumer": rss_mb(consumer.pid)}
        lat = watcher.latencies_ms[lat_from:] if watcher else []
        p1 = stack.stats("producer").get("messages", 0)
        wall1 = int(time.time() * 1000)
        producer_stop_s = stack.stop("producer")
        sim_stats = sim.stop()
        pstats = stack.stats("producer")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            cstats = stack.stats("consumer")
            if cstats.get("messages", 0) >= pstats.get("acked", 0) and cstats.get("lag") == 0:
                break
            time.sleep(1)
        time.sleep(4)
        consumer_stop_s = stack.stop("consumer")
        if watcher:
            watcher.stop()
        cstats = stack.stats("consumer")
        # Every minute that closed while connected must be stored, closed, exactly once.
        # Minutes that opened after the warm-up and closed before the producer stopped.
        first, last = M1.floor(wall0) + M1.ms, M1.floor(wall1)
        expected = len(M1.opens_between(first, last)) * symbols
        stored = stack.db[STREAMING_1M].count_documents(
            {"open_time": {"$gte": ms_to_dt(first), "$lt": ms_to_dt(last)}, "is_closed": True}
        )
        rate_in = (p1 - p0) / elapsed
        return {
            "symbols": symbols,
            "seconds": round(elapsed, 1),
            "update_interval_s": update_s,
            "feed": "simulator (bench/sim_server.py)",
            "feed_stats": sim_stats,
            "offered_msgs_per_s": round(rate_in, 1),
            "producer_received": pstats.get("messages"),
            "producer_acked": pstats.get("acked"),
            "producer_failed": pstats.get("failed"),
            "producer_spool_pending": pstats.get("spool_pending"),
            "consumer_messages": cstats.get("messages"),
            "consumer_dead_letters": cstats.get("dead_letters"),
            "loss_messages": (pstats.get("messages") or 0) - (cstats.get("messages") or 0),
            "closed_minutes_expected": expected,
            "closed_minutes_stored": stored,
            "consumer_windows": len(windows),
            "consumer_latency_p50_ms_median_window": statistics.median(w[0] for w in windows)
            if windows
            else None,
            "consumer_latency_p99_ms_median_window": statistics.median(w[1] for w in windows)
            if windows
            else None,
            "consumer_latency_p99_ms_worst_window": max(w[1] for w in windows) if windows else None,
            "windows_p99_over_1s": sum(1 for w in windows if w[1] > 1000),
            "window_p99s_ms": [w[1] for w in windows],
            # Cores used over the measured part of the run, per process (2 cores here).
            "cpu_cores": {name: round(v, 3) for name, v in cpu.items()},
            "changestream_latency_samples": len(lat),
            "changestream_latency_p50_ms": round(pct(lat, 0.5), 1),
            "changestream_latency_p99_ms": round(pct(lat, 0.99), 1),
            "changestream_latency_max_ms": round(max(lat), 1) if lat else None,
            # Where the time goes (per message; the consumer's stages, see ConsumerStats):
            # the median window's p50 and p99, and the worst window's p99.
            "stages_ms_median_window": {
                name: [statistics.median(w[0] for w in ws), statistics.median(w[1] for w in ws)]
                for name, ws in stages.items()
            },
            "stages_p99_ms_worst_window": {
                name: max(w[1] for w in ws) for name, ws in stages.items()
            },
            "pipeline_p99_ms_worst_window": max(pipeline) if pipeline else None,
            "pipeline_p99_ms_median_window": statistics.median(pipeline) if pipeline else None,
            "consumer_rate_msgs_per_s": round(rate_in, 1),
            "baseline_bulk_upsert_docs_per_s": round(base, 1),
            "consumer_rate_vs_baseline_ratio": round(rate_in / base, 3),
            "baseline_insert_many_docs_per_s": round(base_insert, 1),
            "sigterm_to_exit_s": {
                "producer": round(producer_stop_s, 2),
                "consumer": round(consumer_stop_s, 2),
            },
            "rss_mb_start": {k: round(v, 1) for k, v in rss0.items()},
            "rss_mb_end": {k: round(v, 1) for k, v in rss1.items()},
            "rss_growth_pct": {k: round(100 * (rss1[k] / rss0[k] - 1), 1) for k in rss0},
            "rss_mb_each_minute": {
                k: [round(r[k], 1) for r in rss_series] for k in ("producer", "consumer")
            },
        }
    finally:
        stack.close()
        if sim.proc.poll() is None:
            sim.stop()


def run_catchup(symbols: int, minutes: int, work: Path) -> dict[str, Any]:
    """A backlog of ``minutes`` at 1 update/s per symbol, then time the consumer draining it."""
    stack = Stack(work, [s.symbol for s in listings(symbols)], None)
    try:
        from cryptobot_core.simulator import Market

        market = Market(
            SimConfig(symbols=listings(symbols), clock=SimClock.fixed(1_767_312_000_000))
        )
        t0 = 1_767_225_600_000
        producer = KafkaProducer(
            bootstrap_servers=stack.settings.effective_kafka_bootstrap, acks="all", linger_ms=20
        )
        n = 0
        for m in range(minutes):
            opens = t0 + m * M1.ms
            finals = {s.symbol: market.minute(s.symbol, opens) for s in listings(symbols)}
            for sec in range(1, 61):  # 59 open updates then the final, per symbol
                for sym, final in finals.items():
                    if final is None:
                        continue
                    ev = final.to_ws_event()
                    ev["E"] = opens + sec * 1000 - (1 if sec == 60 else 0)
                    ev["k"]["x"] = sec == 60
                    producer.send(
                        stack.settings.kafka_topic, key=sym.encode(), value=encode_event(ev)
                    )
                    n += 1
        producer.flush()
        producer.close()
        base = baseline_upsert_rate(stack.db)
        base_insert = baseline_insert_many_rate(stack.db)
        started = time.monotonic()
        consumer = stack.start("consumer")
        coll = stack.db[STREAMING_1M]
        want = minutes * symbols
        while coll.count_documents({"is_closed": True}) < want:
            if time.monotonic() - started > 900:
                raise RuntimeError("catch-up did not finish in 15 minutes")
            time.sleep(0.25)
        drain = time.monotonic() - started
        rss = rss_mb(consumer.pid)
        stack.stop("consumer")
        written = stack.stats("consumer").get("candles_written", 0)
        return {
            "symbols": symbols,
            "backlog_minutes": minutes,
            "backlog_messages": n,
            "drain_seconds_incl_start_and_group_join": round(drain, 2),
            "simulated_minutes_per_s": round(minutes / drain, 3),
            "messages_per_s": round(n / drain, 1),
            "distinct_candles_per_s": round(want / drain, 1),
            "upserts_after_collapse": written,
            "upserts_per_s": round(written / drain, 1),
            "consumer_upserts_vs_baseline_ratio": round(written / drain / base, 3),
            "baseline_bulk_upsert_docs_per_s": round(base, 1),
            "consumer_upserts_vs_insert_many_ratio": round(written / drain / base_insert, 3),
            "baseline_insert_many_docs_per_s": round(base_insert, 1),
            "consumer_msgs_vs_baseline_ratio": round(n / drain / base, 3),
            "consumer_rss_mb_end": round(rss, 1),
        }
    finally:
        stack.close()


SCALE_PNG = ROOT / "docs" / "benchmarks" / "stream-scaling.png"


def run_scale(base: int, seconds: float, update_s: float, work: Path) -> dict[str, Any]:
    """Live runs at 1x, 2x, 4x and 8x ``base`` symbols; draws SCALE_PNG."""
    points = []
    for factor in (1, 2, 4, 8):
        (work / f"x{factor}").mkdir()
        out = run_live(base * factor, seconds, update_s, work / f"x{factor}", watch=False)
        points.append(
            {
                "factor": factor,
                "symbols": out["symbols"],
                "msgs_per_s": out["offered_msgs_per_s"],
                "loss_messages": out["loss_messages"],
                "closed_minutes": [out["closed_minutes_stored"], out["closed_minutes_expected"]],
                "p99_ms_median_window": out["consumer_latency_p99_ms_median_window"],
                "p99_ms_worst_window": out["consumer_latency_p99_ms_worst_window"],
                "windows_p99_over_1s": [out["windows_p99_over_1s"], out["consumer_windows"]],
                "cpu_cores": out["cpu_cores"],
                "baseline_bulk_upsert_docs_per_s": out["baseline_bulk_upsert_docs_per_s"],
                "rss_mb_end": out["rss_mb_end"],
            }
        )
        print(json.dumps(points[-1]), file=sys.stderr, flush=True)
    _draw(points, update_s)
    return {"update_interval_s": update_s, "seconds_per_point": seconds, "points": points}


def _draw(points: list[dict[str, Any]], update_s: float) -> None:
    """Latency and CPU against symbols, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    symbols = [p["symbols"] for p in points]
    fig, (lat, cpu) = plt.subplots(1, 2, figsize=(11, 4.2))
    lat.plot(symbols, [p["p99_ms_median_window"] for p in points], "o-", label="p99, median window")
    lat.plot(symbols, [p["p99_ms_worst_window"] for p in points], "s--", label="p99, worst window")
    lat.axhline(1000, color="red", linewidth=1, label="target: p99 <= 1 s in every window")
    lat.set_xscale("log", base=2)
    lat.set_yscale("log")
    lat.set_xticks(symbols, [str(s) for s in symbols])
    lat.set_xlabel(f"symbols (one update per {update_s:g} s each)")
    lat.set_ylabel("event -> stored latency (ms)")
    lat.legend(fontsize=8)
    lat.set_title("Stream latency")
    order = ("consumer", "store", "producer", "broker", "feed")
    cpu_panel(cpu, symbols, [{n: p["cpu_cores"][n] for n in order} for p in points], "cores used")
    fig.tight_layout()
    fig.savefig(SCALE_PNG, dpi=110)


def main() -> None:
    """Run one benchmark and print its figures as JSON."""
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["latency", "throughput", "catchup", "scale"])
    ap.add_argument("--symbols", type=int)
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--minutes", type=int, default=10)
    ap.add_argument(
        "--update-s",
        type=float,
        default=1.0,
        help="throughput: seconds between kline updates per symbol (Binance: 2)",
    )
    args = ap.parse_args()
    # Logs of the services and stream processes stay in this folder for inspection.
    work = Path(tempfile.mkdtemp(prefix=f"bench-stream-{args.which}-"))
    print(f"logs in {work}", file=sys.stderr)
    if args.which == "latency":
        out = run_live(args.symbols or 2, args.seconds or 60, 0.5, work)
    elif args.which == "throughput":
        out = run_live(args.symbols or 400, args.seconds or 300, args.update_s, work, watch=False)
    elif args.which == "scale":
        out = run_scale(args.symbols or 188, args.seconds or 60, args.update_s, work)
    else:
        out = run_catchup(args.symbols or 400, args.minutes, work)
    out["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
