"""The live view of the market for the WebSocket: open candles as of any instant, and finals.

REST answers a range by aggregating whole days; a stream needs one candle many times a
second, for up to thousands of symbols. ``LiveCandles`` therefore keeps:

* the final values of the last few minutes for **every** symbol, each minute computed in one
  vectorised pass (``Market.compute_minutes``), so a minute costs a few ms for 1,500 symbols;
* per (symbol, interval) the aggregate of the closed minutes of the candle that is open,
  extended by one minute when a minute closes.

The open candle is that aggregate plus the current minute "as of now" (``partial_values``),
which is exactly what ``Market.klines`` returns for the same instant; a final is the
aggregate of the candle's minutes, exactly the REST row. Intervals without a fixed place in
the UTC day (1s, 3d, 1w, 1M) are delegated to ``Market`` (slower, rarely streamed).
Not thread-safe: the server's event loop is its only user.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.simulator.market import (
    DAY_MS,
    I64,
    TB,
    TQ,
    C,
    H,
    L,
    Market,
    N,
    O,
    Q,
    V,
    aggregate,
    partial_values,
)

Values = list[int]  # one candle in FIELDS order, integer tick / step / 1e-8 units
_SUMS = (V, Q, N, TB, TQ)


def combine(a: Values | None, b: Values | None) -> Values | None:
    """The aggregate of two consecutive candles (``a`` first); either may be missing."""
    if a is None:
        return b
    if b is None:
        return a
    out = [a[O], max(a[H], b[H]), min(a[L], b[L]), b[C], 0, 0, 0, 0, 0]
    for f in _SUMS:
        out[f] = a[f] + b[f]
    return out


@dataclass
class _Prefix:
    """Aggregate of the valid minutes in [group, upto) of one (symbol, interval)."""

    group: int
    upto: int
    values: Values | None


class LiveCandles:
    """Open candles and finals of any (symbol, interval), computed incrementally."""

    def __init__(self, market: Market, minutes_kept: int = 4) -> None:
        self.market = market
        self._symbols = market.symbols
        self._index = {sym: i for i, sym in enumerate(self._symbols)}
        self._minutes: OrderedDict[int, tuple[npt.NDArray[np.bool_], I64]] = OrderedDict()
        self._minutes_kept = minutes_kept
        self._prefixes: dict[tuple[str, Interval], _Prefix] = {}

    @staticmethod
    def incremental(iv: Interval) -> bool:
        """True for intervals served from the per-minute state (1m .. 1d)."""
        return iv is not Interval.S1 and not iv.is_calendar and iv.ms <= DAY_MS

    def minute(self, minute_ms: int) -> tuple[npt.NDArray[np.bool_], I64]:
        """(valid per symbol, final values (symbols, 11)) of every symbol at ``minute_ms``."""
        hit = self._minutes.get(minute_ms)
        if hit is not None:
            return hit
        vals = self.market.compute_minutes(self._symbols, minute_ms, 1)[:, :, 0]
        valid = self.market.valid_matrix(self._symbols, minute_ms, 1)[:, 0]
        entry = (valid, vals)
        self._minutes[minute_ms] = entry
        while len(self._minutes) > self._minutes_kept:
            self._minutes.popitem(last=False)
        return entry

    def _minute_final(
        self, symbol: str, minute_ms: int, shared: bool = False
    ) -> tuple[bool, list[int]]:
        """(valid, 11 final values) of one symbol's minute.

        ``shared``: the minute is the current one, which every stream will ask for, so it is
        computed for all symbols at once and cached. Other minutes (catching up finals under
        an accelerated clock) come from the cache or are computed for this symbol alone.
        """
        hit = self._minutes.get(minute_ms)
        if hit is None and not shared:
            vals = self.market.compute_minutes([symbol], minute_ms, 1)[0, :, 0]
            valid = bool(self.market.valid_minutes(symbol, minute_ms, 1)[0])
            return valid, [int(x) for x in vals]
        valid_all, vals_all = hit if hit is not None else self.minute(minute_ms)
        i = self._index[symbol]
        return bool(valid_all[i]), [int(x) for x in vals_all[i]]

    def _aggregate(self, symbol: str, first_ms: int, end_ms: int) -> Values | None:
        """Aggregate of the valid final minutes of ``symbol`` in [first_ms, end_ms)."""
        count = (end_ms - first_ms) // MINUTE_MS
        if count <= 0:
            return None
        if count == 1:
            valid, v = self._minute_final(symbol, first_ms)
            return v[:9] if valid else None
        vals = self.market.compute_minutes([symbol], first_ms, count)[0]
        mask = self.market.valid_minutes(symbol, first_ms, count)
        has, agg = aggregate(vals, mask)
        return [int(x) for x in agg] if bool(has) else None

    def _prefix(self, symbol: str, iv: Interval, group: int, upto: int) -> Values | None:
        """Aggregate of the valid minutes in [group, upto), extending the cached one."""
        key = (symbol, iv)
        state = self._prefixes.get(key)
        if state is None or state.group != group or state.upto > upto:
            state = _Prefix(group, group, None)
            self._prefixes[key] = state
        if state.upto < upto:
            state.values = combine(state.values, self._aggregate(symbol, state.upto, upto))
            state.upto = upto
        return state.values

    def open_candle(self, symbol: str, iv: Interval, now_ms: int) -> tuple[int, Values] | None:
        """(open time, values as of ``now_ms``) of the candle containing now, or None."""
        group = iv.floor(now_ms)
        if not self.incremental(iv):
            values = self.market.values_at(symbol, iv, group, now_ms)
            return None if values is None else (group, values)
        m = now_ms - now_ms % MINUTE_MS
        valid, v = self._minute_final(symbol, m, shared=True)
        current = partial_values(v, now_ms - m) if valid else None
        if iv is Interval.M1:
            return None if current is None else (m, current)
        values = combine(self._prefix(symbol, iv, group, m), current)
        return None if values is None else (group, values)

    def final(self, symbol: str, iv: Interval, open_ms: int) -> Values | None:
        """Values of the closed candle opening at ``open_ms`` (None: it has no minute)."""
        end = iv.open_after(open_ms)
        if not self.incremental(iv):
            return self.market.values_at(symbol, iv, open_ms, end)
        if iv is Interval.M1:
            valid, v = self._minute_final(symbol, open_ms)
            return v[:9] if valid else None
        return self._prefix(symbol, iv, open_ms, end)
