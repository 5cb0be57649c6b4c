"""API benchmark: each query over HTTP (real uvicorn) next to the same read with pymongo.

Run: .venv/bin/python bench/bench_api.py [--clients 20] [--months 6]

Starts its own SecantusDB (in memory) and uvicorn on free ports, fills six months of
BTCUSDT 15m history and two hours of 1m stream from the simulator with the core's
writers, then for each query runs ``--clients`` concurrent clients against the API and
against pymongo directly, and prints p50/p99 latency, requests/s and the API/raw ratios
as a Markdown table. Finally it measures live-push delay (SSE) against a raw change stream.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pymongo import DESCENDING, MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptobot_core import services  # noqa: E402
from cryptobot_core.intervals import Interval  # noqa: E402
from cryptobot_core.models import dt_to_ms, ms_to_dt  # noqa: E402
from cryptobot_core.simulator.config import SimConfig  # noqa: E402
from cryptobot_core.simulator.market import Market  # noqa: E402
from cryptobot_core.store import HISTORICAL_15M, STREAMING_1M, CandleStore  # noqa: E402

SYMBOL = "BTCUSDT"
DAY = 86_400_000


def klines(mkt: Market, interval: Interval, start: int, end: int, now: int) -> list[Any]:
    out: list[Any] = []
    t = start
    while t < end:
        page = mkt.klines(SYMBOL, interval, t, end - 1, 1000, now_ms=now)
        if not page:
            break
        out.extend(page)
        t = page[-1].open_ms + interval.ms
    return out


def latencies(
    clients: int, per_client: int, call: Callable[[int], Any]
) -> tuple[list[float], float]:
    """Latencies (ms) of ``clients`` threads each calling ``per_client`` times, and the wall time."""
    lat: list[float] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        mine = []
        for _ in range(per_client):
            t0 = time.perf_counter()
            call(i)
            mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return lat, time.perf_counter() - t0


def summary(lat: list[float], wall: float) -> dict[str, float]:
    lat = sorted(lat)
    return {
        "p50": statistics.median(lat),
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "rps": len(lat) / wall,
        "n": len(lat),
    }


def run(clients: int, per_client: int, call: Callable[[int], Any]) -> dict[str, float]:
    return summary(*latencies(clients, per_client, call))


def run_forked(
    procs: int, clients: int, per_client: int, make_call: Callable[[], Callable[[int], Any]]
) -> dict[str, float]:
    """``run`` with the clients spread over ``procs`` forked processes.

    One Python process driving 20 client threads is itself GIL-bound: a reply can wait in
    the load generator before its thread runs again. ``make_call`` runs in each child, so
    every process opens its own connections.
    """
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    ready = ctx.Barrier(procs)

    def child(n: int) -> None:
        call = make_call()
        call(0)
        ready.wait()
        results.put(latencies(n, per_client, call))

    shares = [clients // procs + (1 if k < clients % procs else 0) for k in range(procs)]
    workers = [ctx.Process(target=child, args=(n,)) for n in shares]
    for w in workers:
        w.start()
    got = [results.get() for _ in workers]
    for w in workers:
        w.join()
    return summary([x for lat, _ in got for x in lat], max(wall for _, wall in got))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=1, help="repeat each client's requests")
    parser.add_argument("--only", default="", help="run only the queries whose name contains this")
    parser.add_argument("--api-workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="spread the latest clients over this many load-generator processes",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    db_port, api_port = services.free_ports(2)
    uri = f"mongodb://127.0.0.1:{db_port}/?directConnection=true"
    store = services.secantus(db_port, ":memory:", tmp / "secantus.log").start()
    api = None
    try:
        mongo: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True, maxPoolSize=50)
        db = mongo["bench_sim"]
        now = dt_to_ms(datetime.now(UTC))
        end = now - now % DAY
        start = end - args.months * 30 * DAY
        mkt = Market(SimConfig(seed=42))
        hist = CandleStore(db, HISTORICAL_15M)
        hist.ensure_indexes()
        t0 = time.perf_counter()
        quarters = klines(mkt, Interval.M15, start, end, end)
        for i in range(0, len(quarters), 2000):
            hist.insert_missing(quarters[i : i + 2000])
        stream = CandleStore(db, STREAMING_1M)
        stream.ensure_indexes()
        minute = now - now % 60_000
        newest = klines(mkt, Interval.M1, minute - 2 * 3_600_000, minute + 60_000, now)
        stream.upsert(newest)
        newest = newest[-1]
        print(
            f"seeded {len(quarters)} 15m + 121 1m candles in {time.perf_counter() - t0:.1f}s",
            file=sys.stderr,
        )

        env = {
            **os.environ,
            "CRYPTOBOT_MONGO_URI": uri,
            "CRYPTOBOT_MONGO_DB": "bench",
            "CRYPTOBOT_EXCHANGE": "sim",
            "CRYPTOBOT_SYMBOLS": SYMBOL,
            # 20 clients each reading 17k candles queue up on one SecantusDB; the raw
            # side has no socket timeout, so give the API a long one too (6 x 20 s).
            "CRYPTOBOT_MONGO_TIMEOUT_MS": "20000",
        }
        api = services.ManagedProcess(
            name="api",
            argv=[
                sys.executable,
                "-m",
                "uvicorn",
                "cryptobot_api.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--workers",
                str(args.api_workers),
            ],
            log_path=tmp / "api.log",
            env=env,
            port=api_port,
            healthy=lambda: services.port_open(api_port),
            cwd=Path(__file__).resolve().parents[1],
        ).start()
        base = f"http://127.0.0.1:{api_port}"
        http = [httpx.Client(base_url=base, timeout=300) for _ in range(args.clients)]
        coll = db[HISTORICAL_15M]
        stream_coll = db[STREAMING_1M]

        def raw_range(lo: int, hi: int) -> Callable[[int], Any]:
            q = {"symbol": SYMBOL, "open_time": {"$gte": ms_to_dt(lo), "$lt": ms_to_dt(hi)}}
            return lambda _: list(coll.find(q, {"_id": 0}).sort("open_time", 1))

        def api_get(
            path: str, params: dict[str, Any], clients: list[httpx.Client] = http
        ) -> Callable[[int], Any]:
            def call(i: int) -> Any:
                resp = clients[i].get(path, params=params)
                resp.raise_for_status()
                return resp.json()

            return call

        def latest_reader(coll: Any) -> Callable[[int], Any]:
            # The bounded form (the newest minutes): an unbounded sort is a full scan here.
            q = {"symbol": SYMBOL, "open_time": {"$gte": ms_to_dt(minute - 3_600_000)}}
            return lambda _: list(coll.find(q, {"_id": 0}).sort("open_time", DESCENDING).limit(1))

        raw_latest = latest_reader(stream_coll)
        latest_path, latest_params = f"/candles/{SYMBOL}/latest", {"interval": "1m"}

        def fresh_api_latest() -> Callable[[int], Any]:
            own = [httpx.Client(base_url=base, timeout=300) for _ in range(args.clients)]
            return api_get(latest_path, latest_params, own)

        def fresh_raw_latest() -> Callable[[int], Any]:
            own: MongoClient[dict[str, Any]] = MongoClient(uri, tz_aware=True, maxPoolSize=50)
            return latest_reader(own["bench_sim"][STREAMING_1M])

        week = (end - 7 * DAY, end)
        cases = [
            (
                "1 week of 15m (672)",
                2,
                api_get(
                    f"/candles/{SYMBOL}",
                    {"interval": "15m", "start": week[0], "end": week[1], "limit": 1000},
                ),
                raw_range(*week),
            ),
            (
                f"{args.months} months of 15m ({len(quarters)})",
                1,
                api_get(
                    f"/candles/{SYMBOL}",
                    {"interval": "15m", "start": start, "end": end, "limit": 20000},
                ),
                raw_range(start, end),
            ),
            (
                f"{args.months} months resampled to 1d",
                1,
                api_get(f"/candles/{SYMBOL}", {"interval": "1d", "start": start, "end": end}),
                raw_range(start, end),
            ),
            ("latest 1m", 10, api_get(latest_path, latest_params), raw_latest),
        ]
        latest_api, latest_raw = cases[-1][2], cases[-1][3]
        # Sanity: both sides return the same number of rows.
        assert len(cases[1][2](0)["candles"]) == len(cases[1][3](0)) == len(quarters)
        rows = []
        staleness: dict[str, float] = {}
        for name, per_client, api_call, raw_call in cases:
            if args.only not in name:
                continue
            api_call(0)
            raw_call(0)
            n = per_client * args.rounds
            if name.startswith("latest") and args.client_procs > 1:
                raw = run_forked(args.client_procs, args.clients, n, fresh_raw_latest)
                got = run_forked(args.client_procs, args.clients, n, fresh_api_latest)
            elif name.startswith("latest"):
                with Freshness(stream, newest) as writes:  # the same writes under both sides
                    raw = run(args.clients, n, raw_call)
                with Freshness(stream, writes.last) as fresh:
                    got = run(args.clients, n, fresh.watch(api_call))
                staleness = fresh.report()
            else:
                raw = run(args.clients, n, raw_call)
                got = run(args.clients, n, api_call)
            rows.append((name, got, raw))
            print(f"done: {name}: api {got}, raw {raw}", file=sys.stderr)

        # The latest target is about one client's latency: measure it alone as well.
        rows.append(("latest 1m, 1 client", run(1, 200, latest_api), run(1, 200, latest_raw)))
        # The floor under every route: /health goes through the same middleware and thread
        # pool and touches no store.
        floor = run(args.clients, 10 * args.rounds, api_get("/health", {}))
        push = measure_push(base, stream, stream_coll, mkt, minute)
        print(
            f"\n{args.clients} concurrent clients ({args.client_procs} load-generator "
            f"process(es), {args.api_workers} API worker(s)); latency in ms; "
            "ratio = API / raw pymongo\n"
        )
        print(
            "| query | API p50 | API p99 | API req/s | raw p50 | raw p99 | raw req/s "
            "| p50 ratio | p99 ratio | req/s ratio (raw/API) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, a, r in rows:
            print(
                f"| {name} | {a['p50']:.1f} | {a['p99']:.1f} | {a['rps']:.1f} | {r['p50']:.1f} "
                f"| {r['p99']:.1f} | {r['rps']:.1f} | {a['p50'] / r['p50']:.2f} "
                f"| {a['p99'] / r['p99']:.2f} | {r['rps'] / a['rps']:.2f} |"
            )
        if staleness:
            print(
                f"\nstaleness under the {args.clients}-client latest run: {staleness['writes']} "
                f"updates of the open minute, {staleness['answers']} answers, "
                f"{staleness['stale']} reflected an update stored > {STALE_MS} ms before it "
                f"arrived; worst lag {staleness['worst_ms']:.0f} ms"
            )
        print(
            f"\nfloor, /health (no store) with {args.clients} clients: p50 {floor['p50']:.1f} ms, "
            f"p99 {floor['p99']:.1f} ms, {floor['rps']:.0f} req/s"
        )
        print(
            f"\nlive push, write -> event received (ms), {len(push['sse'])} writes: "
            f"SSE p50 {statistics.median(push['sse']):.0f}, max {max(push['sse']):.0f}; "
            f"raw change stream p50 {statistics.median(push['watch']):.0f}, "
            f"max {max(push['watch']):.0f}; p50 ratio "
            f"{statistics.median(push['sse']) / max(statistics.median(push['watch']), 0.01):.1f}"
        )
        for client in http:
            client.close()
    finally:
        if api is not None:
            api.stop()
        store.stop()


STALE_MS = 250


class Freshness:
    """Rewrites the open minute every 100 ms while ``latest`` is read, and checks the answers.

    The bound: an answer must reflect every update stored more than ``STALE_MS`` before it
    arrived. Each update raises the candle's trade count (and its event time), so an answer's
    ``trades`` says which updates it saw. Lag of an answer = its arrival minus the store time
    of the first update it missed (0 when it missed none).
    """

    def __init__(self, store: CandleStore, candle: Any) -> None:
        self.store, self.candle = store, candle
        self.last = candle  # the newest version written
        self.stored: list[float] = []  # perf_counter when update k's write returned
        self.seen: list[tuple[float, int]] = []  # (arrival, updates reflected)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def __enter__(self) -> Freshness:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _write(self) -> None:
        base = self.candle.event_time or self.candle.close_time
        while not self._stop.wait(0.1):
            k = len(self.stored) + 1
            self.last = replace(
                self.candle,
                is_closed=False,
                trades=self.candle.trades + k,
                event_time=base + timedelta(milliseconds=k),
            )
            self.store.upsert([self.last])
            self.stored.append(time.perf_counter())

    def watch(self, call: Callable[[int], Any]) -> Callable[[int], Any]:
        def watched(i: int) -> Any:
            body = call(i)
            self.seen.append((time.perf_counter(), body["candle"]["trades"] - self.candle.trades))
            return body

        return watched

    def report(self) -> dict[str, float]:
        # An answer that missed only updates stored after it arrived (or none) is current.
        lags = [
            max((arrival - self.stored[k]) * 1000, 0.0) if k < len(self.stored) else 0.0
            for arrival, k in self.seen
        ]
        return {
            "writes": len(self.stored),
            "answers": len(self.seen),
            "stale": sum(lag > STALE_MS for lag in lags),
            "worst_ms": max(lags, default=0.0),
        }


def measure_push(
    base: str, stream: CandleStore, coll: Any, mkt: Market, minute: int
) -> dict[str, list[float]]:
    """Delay from an upsert to the SSE event, next to a raw change stream on the same writes."""
    sse: list[float] = []
    watch: list[float] = []
    written: dict[str, float] = {}
    watch_seen: dict[str, float] = {}
    stop = threading.Event()

    def watcher() -> None:
        with coll.watch(max_await_time_ms=100) as changes:
            while not stop.is_set():
                change = changes.try_next()
                if change is not None:
                    key = str(change["documentKey"]["_id"])
                    watch_seen.setdefault(key, time.perf_counter())

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    time.sleep(1)
    with (
        httpx.Client(base_url=base, timeout=30) as client,
        client.stream("GET", f"/stream/{SYMBOL}") as resp,
    ):
        lines = resp.iter_lines()
        for i in range(1, 11):
            t = minute + 60_000 * i
            candle = mkt.klines(SYMBOL, Interval.M1, t, t, 1, now_ms=t + 90_000)
            key = datetime.fromtimestamp(t / 1000, UTC).isoformat()
            written[key] = time.perf_counter()
            stream.upsert(candle)
            want = f'"open_time":"{ms_to_dt(t).strftime("%Y-%m-%dT%H:%M:%S")}.000Z"'
            for line in lines:
                if line.startswith("data:") and want in line:
                    sse.append((time.perf_counter() - written[key]) * 1000)
                    break
            doc = coll.find_one({"symbol": SYMBOL, "open_time": ms_to_dt(t)}, {"_id": 1})
            deadline = time.monotonic() + 5
            while str(doc["_id"]) not in watch_seen and time.monotonic() < deadline:
                time.sleep(0.005)
            if str(doc["_id"]) in watch_seen:
                watch.append((watch_seen[str(doc["_id"])] - written[key]) * 1000)
            json.dumps(doc, default=str)
    stop.set()
    thread.join(timeout=5)
    return {"sse": sse, "watch": watch}


if __name__ == "__main__":
    main()
