"""Reconciliation: 15 stored 1m candles must aggregate exactly to the stored 15m candle."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptobot_core.intervals import Interval
from cryptobot_core.models import DECIMAL_FIELDS, Candle, aggregate
from cryptobot_core.store import Store

M15 = Interval.M15
COMPARED = (*DECIMAL_FIELDS, "trades")


@dataclass
class Mismatch:
    """One 15-minute window whose 1m aggregate differs from the 15m candle."""

    symbol: str
    open_ms: int
    fields: dict[str, tuple[str, str]]  # name -> (from 1m, from 15m)


@dataclass
class ReconcileReport:
    """Windows compared and the ones that differ."""

    windows_checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every compared window agrees."""
        return not self.mismatches


def compare(minutes: Sequence[Candle], quarter: Candle) -> dict[str, tuple[str, str]]:
    """Fields where the aggregate of 15 one-minute candles differs from the 15m candle."""
    agg = aggregate(minutes, M15)
    out = {}
    for name in COMPARED:
        a, b = getattr(agg, name), getattr(quarter, name)
        if a != b:
            out[name] = (str(a), str(b))
    return out


def reconcile(store: Store, symbols: Sequence[str] | None = None) -> ReconcileReport:
    """Compare every closed 15m window present in both streaming_data_1m and historical_data_15m."""
    stream, history = store.stream, store.history(M15)
    report = ReconcileReport()
    for symbol in symbols or stream.symbols():
        first = stream.find(symbol, limit=1)
        if not first:
            continue
        start = first[0].open_time
        quarters = {c.open_ms: c for c in history.find(symbol, start=start, closed_only=True)}
        if not quarters:
            continue
        windows: dict[int, list[Candle]] = defaultdict(list)
        for c in stream.find(symbol, start=start, closed_only=True):
            windows[M15.floor(c.open_ms)].append(c)
        for open_ms, minutes in sorted(windows.items()):
            quarter = quarters.get(open_ms)
            if quarter is None or len(minutes) != 15:
                continue
            report.windows_checked += 1
            diff = compare(minutes, quarter)
            if diff:
                report.mismatches.append(Mismatch(symbol, open_ms, diff))
    return report
