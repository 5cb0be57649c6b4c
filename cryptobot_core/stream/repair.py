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
from cryptobot_core.universe import configured_symbols

log = logging.getLogger(__name__)

M1 = Interval.M1
DAY_MS = Interval.D1.ms
# A recorded gap stays open while repair comes back short; after this many short passes the
# exchange is taken at its word (it has no candle for those minutes) and the gap is closed.
GIVE_UP_AFTER = 10


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
    # Recorded gaps still missing minutes after this pass: left open, retried next time.
    gaps_short: int = 0

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


def _still_missing(gap: StreamGap, remaining: dict[str, set[int]]) -> bool:
    """True when a minute of ``gap`` is still missing for one of its symbols."""
    lo, hi = M1.floor(dt_to_ms(gap.missed_from)), dt_to_ms(gap.missed_to)
    return any(lo <= t <= hi for s in gap.symbols for t in remaining.get(s, ()))


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
            scanned = list(symbols or configured_symbols(settings, db, rest))
            remaining: dict[str, set[int]] = {}
            for symbol in scanned:
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
                    got = {c.open_ms for c in candles}
                    remaining.setdefault(symbol, set()).update(
                        t for t in holes if lo <= t < hi and t not in got
                    )
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
            covered = [
                g for g in gaps if dt_to_ms(g.missed_to) <= end and set(g.symbols) <= set(scanned)
            ]
            short = [g for g in covered if _still_missing(g, remaining)]
            done = [g for g in covered if g not in short]
            report.gaps_resolved = db.stream_gaps.mark_repaired(done, ms_to_dt(end))
            report.gaps_short = len(short)
            if short:
                given_up = db.stream_gaps.note_short(short, ms_to_dt(end), GIVE_UP_AFTER)
                log.warning(
                    "%d recorded gap(s) still miss minutes the exchange did not return; "
                    "retried on the next pass (%d closed as unavailable after %d tries)",
                    len(short),
                    given_up,
                    GIVE_UP_AFTER,
                )
            return report
    finally:
        if own_client:
            rest.close()
