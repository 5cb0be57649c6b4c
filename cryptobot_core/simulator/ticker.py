"""24 h rolling statistics (``GET /api/v3/ticker/24hr``) of every symbol, exact and cheap.

The window of a minute ``m`` is the 1,440 closed 1m candles before it, ``[m - 24 h, m)``:
its values are exactly the aggregate of those candles as ``/api/v3/klines`` returns them, so
they stay the same for the whole minute and are computed once per minute for all symbols.

Cost: the window is cut into whole hours plus the two partial hours at its ends. Each hour is
computed once for all symbols in one vectorised pass (``Market.compute_minutes``) and kept as
a per-symbol aggregate; a new minute only re-aggregates slices of the two edge hours.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import numpy.typing as npt

from cryptobot_core.intervals import MINUTE_MS
from cryptobot_core.simulator.market import I64, C, H, L, Market, N, O, Q, V, aggregate, fmt_units

HOUR_MS = 60 * MINUTE_MS
WINDOW_MS = 24 * HOUR_MS
_NO_TRADE = np.iinfo(np.int64).max

FULL_FIELDS = (
    "symbol",
    "priceChange",
    "priceChangePercent",
    "weightedAvgPrice",
    "prevClosePrice",
    "lastPrice",
    "lastQty",
    "bidPrice",
    "bidQty",
    "askPrice",
    "askQty",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "firstId",
    "lastId",
    "count",
)
MINI_FIELDS = (
    "symbol",
    "openPrice",
    "highPrice",
    "lowPrice",
    "lastPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "firstId",
    "lastId",
    "count",
)
_Span = tuple[npt.NDArray[np.bool_], I64, I64, I64]  # has, agg (n, 9), first id, last id


def _span(vals: I64, valid: npt.NDArray[np.bool_], first_minute: int) -> _Span:
    """Aggregate (per symbol) of minutes ``vals`` (n, >=9, k) starting at ``first_minute``."""
    has, agg = aggregate(vals, valid)
    k = valid.shape[-1]
    ids = (first_minute // MINUTE_MS + np.arange(k, dtype=np.int64)) * 100_000
    traded = valid & (vals[:, N, :] > 0)
    first = np.where(traded, ids, _NO_TRADE).min(axis=-1)
    last = np.where(traded, ids + vals[:, N, :] - 1, -1).max(axis=-1)
    return has, agg, first, last


class Tickers:
    """The 24 h tickers of every symbol, as JSON objects, cached for the current minute."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self._symbols = market.symbols
        self._lock = threading.Lock()
        self._hours: OrderedDict[int, tuple[npt.NDArray[np.bool_], I64]] = OrderedDict()
        self._hour_spans: OrderedDict[int, _Span] = OrderedDict()
        self._minute = -1
        self._full: dict[str, str] = {}
        self._mini: dict[str, str] = {}
        self._decimals = [market.decimals(s) for s in self._symbols]
        # A synthetic order book: the best bid is the last price, the ask one tick above, each
        # with a typical minute's volume.
        self._book_qty = []
        for sym, (_, qd) in zip(self._symbols, self._decimals, strict=True):
            listing = market.listing(sym)
            self._book_qty.append(fmt_units(int(listing.base_volume / listing.step_size), qd))

    def tickers(self, now_ms: int, mini: bool = False) -> dict[str, str]:
        """Symbol -> ticker JSON object text for the window before the minute of ``now_ms``."""
        m = now_ms - now_ms % MINUTE_MS
        with self._lock:
            if m != self._minute:
                self._full, self._mini = self._compute(m)
                self._minute = m
            return self._mini if mini else self._full

    def _hour(self, hour: int) -> tuple[npt.NDArray[np.bool_], I64]:
        hit = self._hours.get(hour)
        if hit is None:
            vals = self.market.compute_minutes(self._symbols, hour, 60)
            valid = self.market.valid_matrix(self._symbols, hour, 60)
            hit = (valid, vals)
            self._hours[hour] = hit
            while len(self._hours) > 3:
                self._hours.popitem(last=False)
        return hit

    def _hour_span(self, hour: int) -> _Span:
        hit = self._hour_spans.get(hour)
        if hit is None:
            valid, vals = self._hour(hour)
            hit = _span(vals, valid, hour)
            self._hour_spans[hour] = hit
            while len(self._hour_spans) > 26:
                self._hour_spans.popitem(last=False)
        return hit

    def _slice(self, hour: int, lo: int, hi: int) -> _Span:
        """Aggregate of minutes [lo, hi) of ``hour`` (minute indexes)."""
        valid, vals = self._hour(hour)
        return _span(vals[:, :, lo:hi], valid[:, lo:hi], hour + lo * MINUTE_MS)

    def _compute(self, m: int) -> tuple[dict[str, str], dict[str, str]]:
        start = m - WINDOW_MS
        first_hour = start - start % HOUR_MS
        spans: list[_Span] = []
        if start == first_hour:
            spans = [self._hour_span(first_hour + i * HOUR_MS) for i in range(24)]
        else:
            offset = (start - first_hour) // MINUTE_MS
            spans.append(self._slice(first_hour, offset, 60))
            spans += [self._hour_span(first_hour + i * HOUR_MS) for i in range(1, 24)]
            spans.append(self._slice(first_hour + 24 * HOUR_MS, 0, offset))
        has_k = np.stack([s[0] for s in spans], axis=1)  # (n, k)
        agg_k = np.stack([s[1] for s in spans], axis=2)  # (n, 9, k)
        has, agg = aggregate(agg_k, has_k)
        first = np.stack([s[2] for s in spans], axis=1).min(axis=1)
        last = np.stack([s[3] for s in spans], axis=1).max(axis=1)
        # The candle just before the window (prevClosePrice) and the window's last one (lastQty).
        edges = self.market.compute_minutes(self._symbols, start - MINUTE_MS, 1)[:, :, 0]
        edges_valid = self.market.valid_matrix(self._symbols, start - MINUTE_MS, 1)[:, 0]
        last_minute = self.market.compute_minutes(self._symbols, m - MINUTE_MS, 1)[:, :, 0]
        last_valid = self.market.valid_matrix(self._symbols, m - MINUTE_MS, 1)[:, 0]
        full: dict[str, str] = {}
        mini: dict[str, str] = {}
        zero = "0.00000000"
        for i, sym in enumerate(self._symbols):
            pd, qd = self._decimals[i]
            prev_valid = bool(edges_valid[i])
            prev_close = fmt_units(int(edges[i, C]), pd) if prev_valid else zero
            if bool(has[i]):
                a = [int(x) for x in agg[i]]
                o, hi, lo, c = (fmt_units(a[f], pd) for f in (O, H, L, C))
                volume, quote = fmt_units(a[V], qd), fmt_units(a[Q], 8)
                change = Decimal(c) - Decimal(o)
                pct = (change * 100 / Decimal(o)).quantize(Decimal("0.001"), ROUND_HALF_UP)
                wavg = (
                    (Decimal(quote) / Decimal(volume)).quantize(Decimal("1E-8"), ROUND_HALF_UP)
                    if a[V]
                    else Decimal(0)
                )
                lm_valid = bool(last_valid[i])
                n_last, v_last = int(last_minute[i, N]), int(last_minute[i, V])
                last_qty = fmt_units(v_last // n_last, qd) if lm_valid and n_last else zero
                ask = fmt_units(a[C] + 1, pd)
                count = a[N]
            else:
                o = hi = lo = c = volume = quote = last_qty = ask = zero
                change = pct = wavg = Decimal(0)
                count = 0
            book_qty = self._book_qty[i]
            first_id = int(first[i]) if first[i] != _NO_TRADE else -1
            last_id = int(last[i]) if first[i] != _NO_TRADE else -1
            values = {
                "symbol": f'"{sym}"',
                "priceChange": f'"{change:.8f}"',
                "priceChangePercent": f'"{pct:.3f}"',
                "weightedAvgPrice": f'"{wavg:.8f}"',
                "prevClosePrice": f'"{prev_close}"',
                "lastPrice": f'"{c}"',
                "lastQty": f'"{last_qty}"',
                "bidPrice": f'"{c}"',
                "bidQty": f'"{book_qty}"',
                "askPrice": f'"{ask}"',
                "askQty": f'"{book_qty}"',
                "openPrice": f'"{o}"',
                "highPrice": f'"{hi}"',
                "lowPrice": f'"{lo}"',
                "volume": f'"{volume}"',
                "quoteVolume": f'"{quote}"',
                "openTime": str(start),
                "closeTime": str(m - 1),
                "firstId": str(first_id),
                "lastId": str(last_id),
                "count": str(count),
            }
            full[sym] = "{" + ",".join(f'"{k}":{values[k]}' for k in FULL_FIELDS) + "}"
            mini[sym] = "{" + ",".join(f'"{k}":{values[k]}' for k in MINI_FIELDS) + "}"
        return full, mini
