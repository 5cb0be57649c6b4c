"""Server-side resampling of stored candles, and statistics over a window of candles."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from cryptobot_core.intervals import Interval
from cryptobot_core.models import VOLUME_FIELDS, CandleAccumulator, dec_str, dt_to_ms
from cryptobot_core.query.rows import CandleRow, WindowStats, iso
from cryptobot_core.store.codec import (
    Parts,
    parts_add,
    parts_greater,
    parts_text,
    stored_parts,
    stored_text,
)

Bucket = CandleAccumulator[Any, Parts]


def _row(interval: Interval, bucket: int, acc: Bucket, horizon_ms: int, final_ms: int) -> CandleRow:
    volume, quote_volume, taker_base, taker_quote = map(parts_text, acc.volumes)
    end = interval.open_after(bucket)
    return CandleRow(
        open_time=iso(bucket),
        close_time=iso(end - 1),
        open=stored_text(acc.open),
        high=parts_text(acc.high),
        low=parts_text(acc.low),
        close=stored_text(acc.close),
        volume=volume,
        quote_volume=quote_volume,
        taker_buy_base_volume=taker_base,
        taker_buy_quote_volume=taker_quote,
        trades=acc.trades,
        is_closed=acc.closed and end <= horizon_ms,
        provisional=end > final_ms,
    )


def resample(
    docs: Iterable[Mapping[str, Any]],
    interval: Interval,
    horizon_ms: int,
    final_ms: int | None = None,
) -> list[CandleRow]:
    """Aggregate ascending stored candle docs into ``interval`` buckets, as the exchange does.

    A bucket is closed when the source is final up to its end (``horizon_ms``, exclusive).
    The docs may change granularity once (15m history, then 1m stream after it): a bucket
    that reaches past ``final_ms`` (where history ends) is marked provisional.
    The rule is ``CandleAccumulator``'s; a bucket with exchange-side gaps is the aggregate
    of the candles that exist, and a bucket with none is absent. Arithmetic is exact integer
    arithmetic on (coefficient, exponent), as Decimal would do it but without its cost.
    """
    final = (1 << 62) if final_ms is None else final_ms  # None: nothing provisional
    out: list[CandleRow] = []
    acc: Bucket | None = None
    bucket = end = 0
    for doc in docs:
        open_ms = dt_to_ms(doc["open_time"])
        high, low = stored_parts(doc["high"]), stored_parts(doc["low"])
        volumes = [stored_parts(doc[name]) for name in VOLUME_FIELDS]
        trades, closed = int(doc["trades"]), bool(doc.get("is_closed", True))
        if acc is not None and open_ms < end:
            acc.push(high, low, doc["close"], volumes, trades, closed)
            continue
        if acc is not None:
            out.append(_row(interval, bucket, acc, horizon_ms, final))
        bucket = interval.floor(open_ms)
        end = interval.open_after(bucket)
        acc = CandleAccumulator(
            parts_add, parts_greater, doc["open"], high, low, doc["close"], volumes, trades, closed
        )
    if acc is not None:
        out.append(_row(interval, bucket, acc, horizon_ms, final))
    return out


def window_stats(candles: Sequence[CandleRow]) -> WindowStats:
    """Return, volatility (std of log returns), high/low and volume of ascending candles."""
    if not candles:
        return WindowStats(0, None, None, None, None, None, None, None)
    closes = [Decimal(c.close) for c in candles]
    first_open = Decimal(candles[0].open)
    simple = float(closes[-1] / first_open - 1) if first_open else None
    logs = [
        math.log(b / a)
        for a, b in zip(map(float, closes), map(float, closes[1:]), strict=False)
        if a > 0 and b > 0
    ]
    volatility: float | None = None
    if len(logs) >= 2:
        mean = sum(logs) / len(logs)
        volatility = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    return WindowStats(
        count=len(candles),
        open=candles[0].open,
        close=candles[-1].close,
        return_=simple,
        volatility=volatility,
        high=dec_str(max(Decimal(c.high) for c in candles)),
        low=dec_str(min(Decimal(c.low) for c in candles)),
        volume=dec_str(sum((Decimal(c.volume) for c in candles), Decimal(0))),
    )
