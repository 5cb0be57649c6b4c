"""Gap detection in ``streaming_data_1m`` and repair from REST 1m klines (source=repair).

A minute is missing when its candle is absent or not closed in the store although it has
closed on the exchange. The scan covers the UTC day the stream is in (so the hours before
the stream started are filled too) plus every unrepaired span in ``stream_gaps``. Repaired
candles go through the same guarded upsert as the stream: a closed REST candle replaces an
open WebSocket one, and never overwrites a closed one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptobot_core.intervals import Interval
from cryptobot_core.models import Source, dt_to_ms, ms_to_dt
from cryptobot_core.settings import Settings
from cryptobot_core.store import CandleStore, StreamGap, open_store

log = logging.getLogger(__name__)

M1 = Interval.M1
DAY_MS = Interval.D1.ms


@dataclass
class RepairReport:
    """What one repair pass found and fixed."""

    start_ms: int
    end_ms: int
    missing: dict[str, int] = field(default_factory=dict)
    repaired: dict[str, int] = field(default_factory=dict)
    # Minutes the exchange itself has no candle for (real outages): left missing.
    unavailable: dict[str, int] = field(default_factory=dict)
    gaps_resolved: int = 0

    @property
    def total_missing(self) -> int:
        """Missing minutes found over all symbols."""
        return sum(self.missing.values())

    @property
    def total_repaired(self) -> int:
        """Candles written over all symbols."""
        return sum(self.repaired.values())


def missing_minutes(store: CandleStore, symbol: str, start_ms: int, end_ms: int) -> list[int]:
    """Open times (ms) of closed minutes in [start_ms, end_ms) with no closed candle stored."""
    expected = M1.opens_between(start_ms, end_ms)
    if not expected:
        return []
    present = {dt_to_ms(t) for t in store.open_times(symbol, ms_to_dt(start_ms), ms_to_dt(end_ms))}
    return [t for t in expected if t not in present]


def spans(minutes: Sequence[int]) -> list[tuple[int, int]]:
    """Contiguous runs of minute open times as [start, end) spans."""
    out: list[tuple[int, int]] = []
    for t in sorted(minutes):
        if out and out[-1][1] == t:
            out[-1] = (out[-1][0], t + M1.ms)
        else:
            out.append((t, t + M1.ms))
    return out


def scan_window(
    now_ms: int, gaps: Sequence[StreamGap], since_ms: int | None = None
) -> tuple[int, int]:
    """[start, end) to scan: from the UTC day start (or ``since_ms``, or the oldest open gap)
    up to the last minute that has closed at ``now_ms``."""
    end = M1.floor(now_ms)
    start = since_ms if since_ms is not None else end - (end % DAY_MS)
    for g in gaps:
        start = min(start, M1.floor(dt_to_ms(g.missed_from)))
    return start, end


def repair(
    settings: Settings,
    *,
    symbols: Sequence[str] | None = None,
    since_ms: int | None = None,
    now_ms: int | None = None,
    client: Any = None,
) -> RepairReport:
    """Find missing closed minutes and fill them from REST 1m; returns what was done."""
    from cryptobot_core.exchange.rest import BinanceClient  # owned by the exchange package

    own_client = client is None
    rest = client or BinanceClient.from_settings(settings)
    try:
        with open_store(settings) as db:
            store = db.stream
            store.ensure_indexes()
            gaps = db.stream_gaps.open()
            now = now_ms if now_ms is not None else rest.server_time_ms()
            start, end = scan_window(now, gaps, since_ms)
            report = RepairReport(start, end)
            for symbol in symbols or settings.symbols:
                holes = missing_minutes(store, symbol, start, end)
                report.missing[symbol] = len(holes)
                written = 0
                for lo, hi in spans(holes):
                    candles = [
                        c.with_source(Source.REPAIR)
                        for c in rest.klines(symbol, M1, lo, hi)
                        if c.is_closed
                    ]
                    store.upsert(candles)
                    written += len(candles)
                report.repaired[symbol] = written
                report.unavailable[symbol] = len(holes) - written
                if holes:
                    log.info(
                        "repaired %d of %d missing minutes of %s in [%s, %s)",
                        written,
                        len(holes),
                        symbol,
                        ms_to_dt(start),
                        ms_to_dt(end),
                    )
            covered = [g for g in gaps if dt_to_ms(g.missed_to) <= end]
            report.gaps_resolved = db.stream_gaps.mark_repaired(covered, ms_to_dt(end))
            return report
    finally:
        if own_client:
            rest.close()
