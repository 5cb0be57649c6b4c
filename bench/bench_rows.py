"""The read side's Python share, in process: stored candle documents to response bytes.

Run: .venv/bin/python bench/bench_rows.py [--candles 17280] [--repeat 15]

No store and no HTTP: the SecantusDB read dominates an API request and varies a lot from
run to run, which hides the cost of the code that turns documents into rows and JSON. This
measures that code alone on simulator candles: native 15m rows, and the same documents
resampled to 1d. The baseline, measured in the same run on the same documents, decodes
every Decimal128 the plain way (``dec_str(value.to_decimal())``) into the same JSON, so the
ratio shows what the codec and the typed rows cost or save. Times are the best CPU time of
``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptobot_api.bodies import candle_body  # noqa: E402
from cryptobot_core.intervals import Interval  # noqa: E402
from cryptobot_core.models import DECIMAL_FIELDS, dec_str  # noqa: E402
from cryptobot_core.query.market import CANDLE_PROJECTION, candle_row  # noqa: E402
from cryptobot_core.query.resample import resample  # noqa: E402
from cryptobot_core.query.rows import iso  # noqa: E402
from cryptobot_core.simulator.config import SimConfig  # noqa: E402
from cryptobot_core.simulator.market import Market  # noqa: E402
from cryptobot_core.store import candle_document  # noqa: E402

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HORIZON = 2**60  # everything is final


def documents(count: int) -> list[dict[str, Any]]:
    """``count`` stored 15m candle documents, projected as the API reads them."""
    market = Market(SimConfig(seed=42))
    candles: list[Any] = []
    start = T0
    while len(candles) < count:
        page = market.klines("BTCUSDT", Interval.M15, start, start + 999 * 900_000, 1000)
        candles += page
        start = page[-1].open_ms + 900_000
    return [
        {k: v for k, v in candle_document(c).items() if k in CANDLE_PROJECTION}
        for c in candles[:count]
    ]


def plain_row(doc: dict[str, Any]) -> dict[str, Any]:
    """The baseline: the same JSON object, decimals decoded the plain way."""
    out: dict[str, Any] = {
        "open_time": iso(doc["open_time"]),
        "close_time": iso(doc["open_time"] + timedelta(milliseconds=899_999)),
    }
    for name in DECIMAL_FIELDS:
        out[name] = dec_str(doc[name].to_decimal())
    out["trades"] = doc["trades"]
    out["is_closed"] = doc["is_closed"]
    return out


def best(fn: Callable[[], object], repeat: int) -> float:
    """Best CPU seconds of ``repeat`` calls (CPU time: other load on the machine adds less)."""
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=17_280, help="15m documents (6 months)")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    docs = documents(args.candles)

    def dumps(rows: list[dict[str, Any]]) -> bytes:
        return json.dumps(rows, separators=(",", ":")).encode()

    def native() -> bytes:
        return dumps([candle_body(candle_row(d, Interval.M15)) for d in docs])

    def resampled() -> bytes:
        return dumps([candle_body(r) for r in resample(docs, Interval.D1, HORIZON)])

    def baseline() -> bytes:
        return dumps([plain_row(d) for d in docs])

    # The native rows must be exactly the baseline's bytes, or the comparison means nothing.
    assert native() == baseline(), "native rows differ from the plain decoding"
    base = best(baseline, args.repeat)
    print(f"{args.candles} stored 15m documents; best CPU time of {args.repeat}\n")
    print("| case | ms | ratio to plain decoding |")
    print("|---|---|---|")
    print(f"| plain decoding (baseline) | {base * 1000:.1f} | 1.00 |")
    for name, fn in (("native 15m rows", native), ("resampled to 1d", resampled)):
        took = best(fn, args.repeat)
        print(f"| {name} | {took * 1000:.1f} | {took / base:.2f} |")


if __name__ == "__main__":
    main()
