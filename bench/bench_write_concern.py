"""The cost of the durable write concern on the consumer's write path.

    .venv/bin/python bench/bench_write_concern.py [--candles 4000 --batch 400 --rounds 3]

Starts its own SecantusDB on a temporary data directory (journaling only matters on disk)
and writes the same kind of batches the consumer writes (``CandleStore.upsert``: the guarded
upsert of 1m candles) through two clients on the same store, alternating rounds:
- ``j:true``, what every writer uses (``cryptobot_core.store.client.connect``);
- ``w:1`` without journal, the baseline.
Prints candles/s of each and the ratio durable / baseline (same run, same store).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptobot_core import services  # noqa: E402
from cryptobot_core.intervals import Interval  # noqa: E402
from cryptobot_core.models import Candle, ms_to_dt  # noqa: E402
from cryptobot_core.settings import load_settings  # noqa: E402
from cryptobot_core.store import STREAMING_1M, CandleStore  # noqa: E402
from cryptobot_core.store.client import connect  # noqa: E402

T0 = 1_767_225_600_000


def candles(n: int, round_no: int) -> list[Candle]:
    """n closed 1m candles over 400 symbols, distinct per round."""
    out = []
    for i in range(n):
        minute = T0 + (round_no * n + i) // 400 * 60_000
        p = Decimal(f"{100 + i % 97}.{i % 100:02d}")
        out.append(
            Candle(
                symbol=f"S{i % 400:03d}USDT",
                interval=Interval.M1,
                open_time=ms_to_dt(minute),
                close_time=ms_to_dt(minute + 59_999),
                open=p,
                high=p + 1,
                low=p - 1,
                close=p,
                volume=Decimal("12.5"),
                quote_volume=Decimal("1250.25"),
                taker_buy_base_volume=Decimal("6.25"),
                taker_buy_quote_volume=Decimal("625.125"),
                trades=i,
                is_closed=True,
                source="ws",
                event_time=ms_to_dt(minute + 59_999),
            )
        )
    return out


def rate(store: CandleStore, batch: list[Candle], size: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(batch), size):
        store.upsert(batch[i : i + size])
    return len(batch) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candles", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=400)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-wc-") as tmp:
        port = services.free_port()
        store_proc = services.secantus(port, Path(tmp) / "data", Path(tmp) / "store.log").start()
        try:
            uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
            settings = load_settings(
                _env_file=None, mongo_uri=uri, mongo_db="bench", exchange="sim"
            )
            durable = connect(settings)
            plain: MongoClient[dict] = MongoClient(uri, tz_aware=True, journal=False)  # type: ignore[type-arg]
            stores = {
                "j_true": CandleStore(durable["bench"], STREAMING_1M),
                "w1_no_journal": CandleStore(plain["bench"], "baseline_1m"),
            }
            for s in stores.values():
                s.ensure_indexes()
            rates: dict[str, list[float]] = {k: [] for k in stores}
            for r in range(args.rounds):
                data = candles(args.candles, r)
                order = list(stores) if r % 2 == 0 else list(reversed(stores))
                for name in order:
                    rates[name].append(rate(stores[name], data, args.batch))
            med = {k: statistics.median(v) for k, v in rates.items()}
            print(
                json.dumps(
                    {
                        "candles_per_round": args.candles,
                        "batch": args.batch,
                        "rounds": args.rounds,
                        "j_true_candles_per_s": round(med["j_true"], 1),
                        "baseline_w1_candles_per_s": round(med["w1_no_journal"], 1),
                        "durable_vs_baseline_ratio": round(med["j_true"] / med["w1_no_journal"], 3),
                    },
                    indent=2,
                )
            )
        finally:
            store_proc.stop()


if __name__ == "__main__":
    main()
