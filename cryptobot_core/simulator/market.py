"""The simulated market data: a pure, seeded function of (seed, symbol, minute); no I/O.

Every 1m candle is computed in O(1) from hashes, never by walking from the listing:

* The price at each minute boundary is ``base * f(x)`` where ``x`` is a sum of value-noise
  layers (scales of 1, 4, 16, ... 65536 minutes, amplitude growing with the square root of the
  scale, so it moves like a random walk) whose knot values come from a counter-based hash
  (splitmix64) of (seed, symbol, scale, knot). ``f`` is a cubic that stays positive and
  increasing. Only +, * and floor are used, so the numbers are the same on every IEEE machine.
* Minute ``m`` opens at the boundary price ``P(m)`` and closes at ``P(m+1)``: the open of a
  minute is the close of the one before. High/low, volumes and trade counts come from
  per-minute hashes. A zero-volume minute has O=H=L=C equal to the previous close.
* Every coarser interval is the exact aggregate of its 1m candles (integer arithmetic on
  tick/step units), and the still-open candle is the aggregate of the minutes so far with the
  current minute's values as of ``now`` (monotone: highs only rise, volumes only grow, and at
  the close they equal the final 1m candle).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.models import Candle, ms_to_dt
from cryptobot_core.simulator.config import SimConfig, SymbolListing

DAY_MS = 1440 * MINUTE_MS
_FAR = 2**62  # a time after every candle
_BLOCK_DAYS = 16
MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
I64 = npt.NDArray[np.int64]

# Per-minute volatility of a volatility-1.0 symbol, and the value-noise scales (minutes).
_SIGMA = 0.0006
_SCALES = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536)
# A uniform knot in [-1, 1] differs from its neighbour by 0.816 on average (std).
_AMPS = tuple(_SIGMA * (s**0.5) / 0.816 for s in _SCALES)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK64 = 0xFFFFFFFFFFFFFFFF
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)

# Field order inside a chunk's value matrix.
FIELDS = (
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_base_volume",
    "taker_buy_quote_volume",
)
O, H, L, C, V, Q, N, TB, TQ = range(9)  # noqa: E741


def _salt(key: int, stream: int) -> np.uint64:
    """A well-mixed 64-bit salt per (symbol key, stream), computed once in Python."""
    z = (key ^ (stream * 0xD1B54A32D192ED03)) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return np.uint64(z ^ (z >> 31))


U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]


def _hash(salt: U64, idx: I64) -> U64:
    """splitmix64 of the counters ``idx`` in the sequences salted by ``salt`` (broadcast)."""
    with np.errstate(over="ignore"):
        z = idx.astype(np.uint64) * _GOLDEN + salt
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


def _uniform(salt: U64, idx: I64) -> F64:
    """Uniform [0, 1) floats, a pure function of (salt, idx)."""
    return (_hash(salt, idx) >> _S11).astype(np.float64) * (1.0 / 9007199254740992.0)


def _uniform3(salt: U64, idx: I64) -> list[F64]:
    """Three independent 21-bit uniforms [0, 1) from one 64-bit hash per index."""
    h = _hash(salt, idx)
    mask = np.uint64(0x1FFFFF)
    scale = 1.0 / 2097152.0
    return [((h >> np.uint64(shift)) & mask).astype(np.float64) * scale for shift in (43, 22, 1)]


# Hash streams: one per value-noise layer, then four for the per-minute draws.
_STREAMS = (*range(len(_SCALES)), 100, 101, 102, 103)


def aggregate(vals: I64, valid: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.bool_], I64]:
    """Exact candle aggregate over the last axis: ``vals`` (..., >=9, n) in FIELDS order.

    Only minutes where ``valid`` (..., n) is set take part. Returns ``(has, agg)``: whether
    any minute was valid, and the aggregate (..., 9) (meaningless where ``has`` is False).
    The rule is associative, so aggregates can be aggregated again.
    """
    n = valid.shape[-1]
    has = np.asarray(valid.any(axis=-1), dtype=np.bool_)
    first = np.argmax(valid, axis=-1)[..., None]
    last = (n - 1 - np.argmax(valid[..., ::-1], axis=-1))[..., None]
    agg = np.empty((*valid.shape[:-1], 9), dtype=np.int64)
    agg[..., O] = np.take_along_axis(vals[..., O, :], first, axis=-1)[..., 0]
    agg[..., C] = np.take_along_axis(vals[..., C, :], last, axis=-1)[..., 0]
    agg[..., H] = np.where(valid, vals[..., H, :], -1).max(axis=-1)
    agg[..., L] = np.where(valid, vals[..., L, :], np.iinfo(np.int64).max).min(axis=-1)
    for f in (V, Q, N, TB, TQ):
        agg[..., f] = np.where(valid, vals[..., f, :], 0).sum(axis=-1)
    return has, agg


_POW10 = tuple(10**i for i in range(9))
_DEC = '"%d.%08d"'
_ROW_TMPL = "[%d," + ",".join([_DEC] * 5) + ",%d," + _DEC + ",%d," + _DEC + "," + _DEC + ',"0"]'


def fmt_units(units: int, decimals: int) -> str:
    """An integer count of 10^-decimals as Binance's 8-decimal string."""
    whole, frac = divmod(units * _POW10[8 - decimals], 100_000_000)
    return f"{whole}.{frac:08d}"


def partial_values(v: list[int], elapsed: int) -> list[int]:
    """A minute's 9 values as of ``elapsed`` ms after its open, from its 11 final values.

    The close moves linearly from open to the final close, high and low jump to their final
    values at their hashed instants, volumes and trades grow in proportion to the time.
    """
    o, h, lo, c, v_, q, n, tb, tq, t_hi, t_lo = v[:11]
    if v_ == 0:
        return [o, h, lo, c, v_, q, n, tb, tq]
    cp = o + (c - o) * elapsed // MINUTE_MS
    hp = h if elapsed >= t_hi else max(o, cp)
    lp = lo if elapsed >= t_lo else min(o, cp)
    vp = v_ * elapsed // MINUTE_MS
    np_ = n * elapsed // MINUTE_MS
    if vp > 0:
        np_ = max(np_, 1)
    return [
        o,
        hp,
        lp,
        cp,
        vp,
        q * elapsed // MINUTE_MS,
        np_,
        tb * elapsed // MINUTE_MS,
        tq * elapsed // MINUTE_MS,
    ]


@dataclass(frozen=True)
class _Sym:
    """Per-symbol constants derived once from the listing."""

    listing: SymbolListing
    key: int
    base_ticks: int
    vol_units: float
    trade_units: float
    pd: int  # price decimals
    qd: int  # quantity decimals
    # quote units (1e-8) per (volume unit * price tick)
    ratio: float
    # Position in the market's symbol list, and the salt of each hash stream.
    index: int
    salts: dict[int, np.uint64]


@dataclass(frozen=True)
class _Params:
    """Per-symbol constants of a list of symbols as column arrays, for vectorised hashing."""

    salts: dict[int, U64]
    vol: F64
    base_ticks: I64
    vol_units: F64
    trade_units: F64
    zero_rate: F64
    ratio: F64
    listed: I64
    delisted: I64
    names: npt.NDArray[np.object_]


@dataclass
class _Chunk:
    """Candles of one interval inside one day (or one >1d period), in integer units."""

    opens: list[int]
    values: list[list[int]]  # one list per candle, in FIELDS order
    json: list[str] | None = None


class Market:
    """Deterministic kline data for the configured symbols; thread-safe, no I/O."""

    def __init__(self, config: SimConfig, *, day_cache: int = 256, chunk_cache: int = 8192) -> None:
        self.config = config
        self.clock = config.clock
        self._syms: dict[str, _Sym] = {}
        for index, listing in enumerate(config.symbols):
            digest = hashlib.blake2b(f"{config.seed}|{listing.symbol}".encode(), digest_size=8)
            key = int.from_bytes(digest.digest(), "little")
            pd, qd = listing.price_decimals, listing.qty_decimals
            vol_units = float(listing.base_volume / listing.step_size)
            self._syms[listing.symbol] = _Sym(
                listing=listing,
                key=key,
                base_ticks=int(listing.base_price / listing.tick_size),
                vol_units=vol_units,
                trade_units=max(1.0, vol_units / 300.0),
                pd=pd,
                qd=qd,
                ratio=float(Decimal(10) ** (8 - pd - qd)),
                index=index,
                salts={stream: _salt(key, stream) for stream in _STREAMS},
            )
        self._params_cache: dict[tuple[str, ...], _Params] = {}
        self._lock = threading.Lock()
        self._days: OrderedDict[tuple[str, int], tuple[npt.NDArray[np.bool_], I64]] = OrderedDict()
        self._chunks: OrderedDict[tuple[str, str, int], _Chunk] = OrderedDict()
        self._day_cache = day_cache
        self._chunk_cache = chunk_cache

    # ---- public API -------------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        """Every listed symbol, in configuration order."""
        return list(self._syms)

    def listing(self, symbol: str) -> SymbolListing:
        """The listing of ``symbol``; ValidationError naming the allowed ones if unknown."""
        return self._sym(symbol).listing

    def minute(self, symbol: str, minute_open_ms: int) -> Candle | None:
        """The final 1m candle opening at ``minute_open_ms`` (None in outages / off listing).

        This ignores the clock: it is the candle as it will be once closed.
        """
        s = self._sym(symbol)
        m0 = Interval.M1.floor(minute_open_ms)
        valid, vals = self._day(s, m0 - m0 % DAY_MS)
        i = (m0 % DAY_MS) // MINUTE_MS
        if not valid[i]:
            return None
        return self._candle(s, Interval.M1, m0, [int(x) for x in vals[:9, i]], closed=True)

    def klines(
        self,
        symbol: str,
        interval: Interval | str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        now_ms: int | None = None,
    ) -> list[Candle]:
        """Candles exactly as ``GET /api/v3/klines`` would return them (open one included)."""
        iv = Interval.parse(interval)
        now = self.clock.now_ms() if now_ms is None else now_ms
        s = self._sym(symbol)
        return [
            self._candle(s, iv, t, v, closed=iv.close_time(t) < now)
            for t, v, _ in self._select(s, iv, start_ms, end_ms, limit, now, want_json=False)
        ]

    def klines_json(
        self,
        symbol: str,
        interval: Interval | str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        now_ms: int | None = None,
    ) -> str:
        """The JSON body of ``GET /api/v3/klines`` (compact, byte-for-byte reproducible)."""
        iv = Interval.parse(interval)
        now = self.clock.now_ms() if now_ms is None else now_ms
        rows = self._select(self._sym(symbol), iv, start_ms, end_ms, limit, now, want_json=True)
        return "[" + ",".join(j for _, _, j in rows) + "]"

    def klines_rows(
        self,
        symbol: str,
        interval: Interval | str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = DEFAULT_LIMIT,
        *,
        now_ms: int | None = None,
    ) -> list[list[Any]]:
        """The rows of ``GET /api/v3/klines`` as Python lists (what a client parses)."""
        import json

        return list(
            json.loads(self.klines_json(symbol, interval, start_ms, end_ms, limit, now_ms=now_ms))
        )

    def current(
        self, symbol: str, interval: Interval | str, now_ms: int | None = None
    ) -> Candle | None:
        """The candle of ``interval`` containing ``now`` with its values as of now (or None)."""
        iv = Interval.parse(interval)
        now = self.clock.now_ms() if now_ms is None else now_ms
        t = iv.floor(now)
        rows = self.klines(symbol, iv, t, t, 1, now_ms=now)
        return rows[0] if rows else None

    def candle_at(self, symbol: str, interval: Interval | str, open_ms: int) -> Candle | None:
        """The final candle of ``interval`` opening at ``open_ms`` (None if it has no minute)."""
        iv = Interval.parse(interval)
        t = iv.floor(open_ms)
        rows = self.klines(symbol, iv, t, t, 1, now_ms=iv.open_after(t))
        return rows[0] if rows else None

    def values_at(
        self, symbol: str, interval: Interval | str, open_ms: int, now_ms: int
    ) -> list[int] | None:
        """Integer values (FIELDS order) of the candle opening at ``open_ms`` as of ``now_ms``."""
        iv = Interval.parse(interval)
        rows = self._select(self._sym(symbol), iv, open_ms, open_ms, 1, now_ms, want_json=False)
        return list(rows[0][1]) if rows else None

    def values_between(
        self, symbol: str, interval: Interval | str, start_ms: int, end_ms: int, now_ms: int
    ) -> list[tuple[int, list[int]]]:
        """(open time, integer values) of every candle opening in [start_ms, end_ms) as of
        ``now_ms``, ascending; pages through ``klines`` internally."""
        iv = Interval.parse(interval)
        s = self._sym(symbol)
        out: list[tuple[int, list[int]]] = []
        t = start_ms
        while t < end_ms:
            page = self._select(s, iv, t, end_ms - 1, MAX_LIMIT, now_ms, want_json=False)
            out += [(open_ms, list(values)) for open_ms, values, _ in page]
            if len(page) < MAX_LIMIT:
                break
            t = iv.open_after(page[-1][0])
        return out

    def decimals(self, symbol: str) -> tuple[int, int]:
        """(price decimals, quantity decimals) of ``symbol``'s integer units."""
        s = self._sym(symbol)
        return s.pd, s.qd

    # ---- internals ----------------------------------------------------------------------

    def _sym(self, symbol: str) -> _Sym:
        try:
            return self._syms[symbol]
        except (KeyError, TypeError):
            raise ValidationError(
                f"unknown symbol {symbol!r}; the simulator lists {', '.join(self._syms)}"
            ) from None

    def _candle(self, s: _Sym, iv: Interval, open_ms: int, v: list[int], closed: bool) -> Candle:
        pd, qd = s.pd, s.qd
        return Candle(
            symbol=s.listing.symbol,
            interval=iv,
            open_time=ms_to_dt(open_ms),
            close_time=ms_to_dt(iv.close_time(open_ms)),
            open=Decimal(fmt_units(v[O], pd)),
            high=Decimal(fmt_units(v[H], pd)),
            low=Decimal(fmt_units(v[L], pd)),
            close=Decimal(fmt_units(v[C], pd)),
            volume=Decimal(fmt_units(v[V], qd)),
            quote_volume=Decimal(fmt_units(v[Q], 8)),
            trades=v[N],
            taker_buy_base_volume=Decimal(fmt_units(v[TB], qd)),
            taker_buy_quote_volume=Decimal(fmt_units(v[TQ], 8)),
            is_closed=closed,
        )

    def _json_rows(self, s: _Sym, span: int, opens: list[int], rows: I64) -> list[str]:
        """Binance JSON rows for candles ``rows`` (n x 9 int64), formatted in one pass each."""
        if not opens:
            return []
        t = np.asarray(opens, dtype=np.int64)

        def split(col: I64, d: int) -> tuple[I64, I64]:
            whole, frac = np.divmod(col, _POW10[d])
            return whole, frac * _POW10[8 - d]

        pd, qd = s.pd, s.qd
        m = np.column_stack(
            [
                t,
                *split(rows[:, O], pd),
                *split(rows[:, H], pd),
                *split(rows[:, L], pd),
                *split(rows[:, C], pd),
                *split(rows[:, V], qd),
                t + span,
                *split(rows[:, Q], 8),
                rows[:, N],
                *split(rows[:, TB], qd),
                *split(rows[:, TQ], 8),
            ]
        )
        return [_ROW_TMPL % tuple(r) for r in m.tolist()]

    def _json_row(
        self, s: _Sym, iv: Interval, t: int, v: list[int], close_ms: int | None = None
    ) -> str:
        pd, qd = s.pd, s.qd
        if close_ms is None:
            close_ms = iv.close_time(t)
        return (
            f'[{t},"{fmt_units(v[O], pd)}","{fmt_units(v[H], pd)}","{fmt_units(v[L], pd)}",'
            f'"{fmt_units(v[C], pd)}","{fmt_units(v[V], qd)}",{close_ms},'
            f'"{fmt_units(v[Q], 8)}",{v[N]},"{fmt_units(v[TB], qd)}","{fmt_units(v[TQ], 8)}","0"]'
        )

    def _static_valid(self, s: _Sym, day: int) -> npt.NDArray[np.bool_]:
        """Minutes of ``day`` that have a candle, ignoring the clock (listing, outages)."""
        return self.valid_minutes(s.listing.symbol, day, 1440)

    def valid_minutes(self, symbol: str, first_ms: int, count: int) -> npt.NDArray[np.bool_]:
        """Which of ``count`` minutes from ``first_ms`` have a candle (listing, outages)."""
        return self.valid_matrix([symbol], first_ms, count)[0]

    def valid_matrix(
        self, symbols: Sequence[str], first_ms: int, count: int
    ) -> npt.NDArray[np.bool_]:
        """(len(symbols), count): which minutes have a candle, ignoring the clock.

        A minute has a candle from the listing on, before the delisting, outside outages.
        """
        p = self._params(symbols)
        minutes = first_ms + np.arange(count, dtype=np.int64).reshape(1, -1) * MINUTE_MS
        valid = (minutes >= p.listed) & (minutes < p.delisted)
        for outage in self.config.outages:
            out = (minutes >= outage[0]) & (minutes < outage[1])
            if len(outage) == 3:
                out = out & (p.names == outage[2])
            valid &= ~out
        return valid

    def _day(self, s: _Sym, day: int) -> tuple[npt.NDArray[np.bool_], I64]:
        """(valid mask, values[11, 1440]) of one UTC day; cached."""
        key = (s.listing.symbol, day)
        with self._lock:
            hit = self._days.get(key)
            if hit is not None:
                self._days.move_to_end(key)
                return hit
        # Compute a block of aligned days at once: numpy's per-call overhead dominates at 1440
        # elements, so a 16-day block costs little more than one day. Results do not depend on
        # the blocking (every value is a pure function of its minute).
        first = day - day % (_BLOCK_DAYS * DAY_MS)
        block = self._compute_days(s, first, _BLOCK_DAYS)
        # Copies, not views: a cached day must not keep its whole 16-day block alive.
        result = (
            self._static_valid(s, day),
            block[:, (day - first) // MINUTE_MS : (day - first) // MINUTE_MS + 1440].copy(),
        )
        with self._lock:
            for k in range(_BLOCK_DAYS):
                d = first + k * DAY_MS
                if d == day or (s.listing.symbol, d) in self._days:
                    continue
                self._days[(s.listing.symbol, d)] = (
                    self._static_valid(s, d),
                    block[:, k * 1440 : (k + 1) * 1440].copy(),
                )
            self._days[key] = result
            self._days.move_to_end(key)
            while len(self._days) > self._day_cache:
                self._days.popitem(last=False)
        return result

    def _compute_days(self, s: _Sym, day: int, ndays: int) -> I64:
        """Final 1m values (11 rows x 1440*ndays minutes) from ``day`` on."""
        return self.compute_minutes([s.listing.symbol], day, 1440 * ndays)[0]

    def _params(self, symbols: Sequence[str]) -> _Params:
        key = tuple(symbols)
        hit = self._params_cache.get(key)
        if hit is not None:
            return hit
        syms = [self._sym(name) for name in key]

        def col(values: list[Any], dtype: Any) -> Any:
            return np.asarray(values, dtype=dtype).reshape(-1, 1)

        params = _Params(
            salts={stream: col([s.salts[stream] for s in syms], np.uint64) for stream in _STREAMS},
            vol=col([s.listing.volatility for s in syms], np.float64),
            base_ticks=col([s.base_ticks for s in syms], np.int64),
            vol_units=col([s.vol_units for s in syms], np.float64),
            trade_units=col([s.trade_units for s in syms], np.float64),
            zero_rate=col([s.listing.zero_volume_rate for s in syms], np.float64),
            ratio=col([s.ratio for s in syms], np.float64),
            listed=col([s.listing.listed_ms for s in syms], np.int64),
            delisted=col(
                [
                    s.listing.delisted_ms if s.listing.delisted_ms is not None else _FAR
                    for s in syms
                ],
                np.int64,
            ),
            names=col(list(key), object),
        )
        with self._lock:
            if len(self._params_cache) > 64:
                self._params_cache.clear()
            self._params_cache[key] = params
        return params

    def compute_minutes(self, symbols: Sequence[str], first_ms: int, count: int) -> I64:
        """Final 1m values, shape (len(symbols), 11, count), of the minutes from ``first_ms``.

        Rows are FIELDS then the high and low instants (ms into the minute). Every value is a
        pure function of (seed, symbol, minute), so one call over many symbols or many minutes
        gives exactly what separate calls give; listing and outages are not applied here
        (see ``valid_minutes``).
        """
        # One symbol: plain scalars and 1-D arrays (numpy is ~25% faster without broadcasting).
        # Many: per-symbol constants as column arrays against a row of minutes. The arithmetic
        # per element is the same IEEE operations either way, hence the same bits.
        single = len(symbols) == 1
        p: _Params | _Sym = self._sym(symbols[0]) if single else self._params(symbols)
        line = first_ms // MINUTE_MS + np.arange(count + 1, dtype=np.int64)  # minute boundaries
        bounds = line if single else line.reshape(1, -1)
        if isinstance(p, _Sym):
            salts: dict[int, Any] = p.salts
            vol: Any = p.listing.volatility
            base_ticks: Any = p.base_ticks
            vol_units: Any = p.vol_units
            zero_rate: Any = p.listing.zero_volume_rate
            ratio: Any = p.ratio
            trade_units: Any = p.trade_units
        else:
            salts, vol, base_ticks = p.salts, p.vol, p.base_ticks
            vol_units, zero_rate, ratio, trade_units = (
                p.vol_units,
                p.zero_rate,
                p.ratio,
                p.trade_units,
            )
        x = np.zeros(bounds.shape if single else (len(symbols), count + 1), dtype=np.float64)
        for n, (scale, amp) in enumerate(zip(_SCALES, _AMPS, strict=True)):
            salt = salts[n]
            if scale == 1:  # knots at every boundary: no interpolation needed
                x += (amp * vol) * (_uniform(salt, bounds) * 2.0 - 1.0)
                continue
            k0 = line // scale
            frac = (line - k0 * scale).astype(np.float64) / scale
            # Hash each knot once: a span covers only count/scale + 2 knots of this scale.
            first = int(k0[0])
            span = np.arange(first, int(k0[-1]) + 2, dtype=np.int64)
            at = k0 - first
            if single:  # plain indexing: twice as fast as knots[..., at]
                knots = _uniform(salt, span) * 2.0 - 1.0
                a, b = knots[at], knots[at + 1]
            else:
                knots = _uniform(salt, span.reshape(1, -1)) * 2.0 - 1.0
                a, b = knots[:, at], knots[:, at + 1]
            x += amp * vol * (a + (b - a) * frac)
        x = np.clip(x, -1.5, 1.5)
        price = base_ticks * (1.0 + x + x * x / 2.0 + x * x * x / 6.0)
        prices = np.maximum(np.floor(price + 0.5), 2.0).astype(np.int64)
        o, c = prices[..., :-1], prices[..., 1:]
        mins = bounds[..., :-1]
        u = [w for stream in _STREAMS[-4:] for w in _uniform3(salts[stream], mins)]
        spread = np.maximum(1.0, o * (_SIGMA * vol * 1.2))
        hi = np.maximum(o, c) + np.floor(u[0] * u[0] * spread).astype(np.int64)
        lo = np.maximum(1, np.minimum(o, c) - np.floor(u[1] * u[1] * spread).astype(np.int64))
        move = np.abs(c - o).astype(np.float64) / o
        volume = vol_units * (0.3 + 1.4 * u[2]) * (1.0 + 4.0 * u[3] ** 8) * (1.0 + 300.0 * move)
        v = np.floor(volume).astype(np.int64)
        zero = (u[7] < zero_rate) | (v <= 0)
        v = np.where(zero, 0, v)
        vwap = lo + (hi - lo) * (0.25 + 0.5 * u[5])
        q = np.floor(v * vwap * ratio).astype(np.int64)
        tb = np.floor(v * (0.3 + 0.4 * u[4])).astype(np.int64)
        tq = np.floor(tb * vwap * ratio).astype(np.int64)
        trades = np.maximum(1, np.floor(v / trade_units * (0.6 + 0.8 * u[6]))).astype(np.int64)
        trades = np.where(zero, 0, trades)
        # A minute without trades keeps the previous close everywhere.
        hi = np.where(zero, o, hi)
        lo = np.where(zero, o, lo)
        cl = np.where(zero, o, c)
        t_hi = np.floor(u[8] * MINUTE_MS).astype(np.int64)
        t_lo = np.floor(u[9] * MINUTE_MS).astype(np.int64)
        # Stacked field-major (a contiguous copy), then viewed as (symbols, fields, minutes).
        out = np.stack([o, hi, lo, cl, v, q, trades, tb, tq, t_hi, t_lo])
        return out[np.newaxis] if single else out.transpose(1, 0, 2)

    @staticmethod
    def _partial(vals: I64, i: int, elapsed: int) -> list[int]:
        """Minute ``i`` of a day as of ``elapsed`` ms after its open (0 <= elapsed < 60000)."""
        return partial_values([int(x) for x in vals[:, i]], elapsed)

    def _day_chunk(self, s: _Sym, iv: Interval, day: int, now: int, want_json: bool) -> _Chunk:
        """Candles of ``iv`` (<= 1d) opening in ``day`` as of ``now``; closed days are cached."""
        closed_day = day + DAY_MS <= now
        key = (s.listing.symbol, iv.value, day)
        if closed_day:
            with self._lock:
                hit = self._chunks.get(key)
                if hit is not None:
                    self._chunks.move_to_end(key)
                    if want_json and hit.json is None:
                        hit.json = self._json_rows(
                            s,
                            iv.ms - 1,
                            hit.opens,
                            np.asarray(hit.values, dtype=np.int64).reshape(-1, 9),
                        )
                    return hit
        static = self._static_valid(s, day)
        if day > now or not static.any():
            return _Chunk([], [], [])
        valid, vals = self._day(s, day)
        valid = valid.copy()
        if not closed_day:
            cur = (now - day) // MINUTE_MS  # minute containing now
            valid[cur + 1 :] = False
        k = iv.ms // MINUTE_MS
        g = 1440 // k
        vm = valid.reshape(g, k)
        has = vm.any(axis=1)
        groups = np.nonzero(has)[0]
        chunk = _Chunk([], [])
        if len(groups):
            _, agg_gk = aggregate(vals[:9].reshape(9, g, k).transpose(1, 0, 2), vm)
            agg = np.ascontiguousarray(agg_gk.T)
            if not closed_day and valid.any():
                cur = (now - day) // MINUTE_MS
                if static[cur]:
                    self._patch_partial(agg, vals, cur, k, vm, now - (day + cur * MINUTE_MS))
            step_ms = iv.ms
            chunk.opens = [day + int(gi) * step_ms for gi in groups]
            rows_np = np.ascontiguousarray(agg[:, groups].T)
            chunk.values = rows_np.tolist()
            if want_json or closed_day:
                chunk.json = self._json_rows(s, iv.ms - 1, chunk.opens, rows_np)
        else:
            chunk.json = []
        if closed_day:
            with self._lock:
                self._chunks[key] = chunk
                if len(self._chunks) > self._chunk_cache:
                    self._chunks.popitem(last=False)
        return chunk

    def _patch_partial(
        self, agg: I64, vals: I64, cur: int, k: int, vm: npt.NDArray[np.bool_], elapsed: int
    ) -> None:
        """Replace the current minute's final values by its values as of now in its group."""
        gi, pos = divmod(cur, k)
        part = self._partial(vals, cur, elapsed)
        members = [j for j in range(k) if vm[gi, j] and j != pos]
        start = gi * k
        if members:
            first = min(members + [pos])
            agg[O, gi] = int(vals[O, start + first]) if first != pos else part[O]
        else:
            agg[O, gi] = part[O]
        agg[C, gi] = part[C]  # the current minute is the last valid one
        agg[H, gi] = max([int(vals[H, start + j]) for j in members] + [part[H]])
        agg[L, gi] = min([int(vals[L, start + j]) for j in members] + [part[L]])
        for f in (V, Q, N, TB, TQ):
            agg[f, gi] = sum(int(vals[f, start + j]) for j in members) + part[f]

    def _second_chunk(self, s: _Sym, minute: int, now: int) -> _Chunk:
        """The 1s candles of one minute as of ``now``: slices of the minute's own path.

        Second j spans elapsed (j*1000, (j+1)*1000] of the minute's partial-value curve, so the
        seconds aggregate exactly to the 1m candle and to the open minute as of any second.
        """
        if minute > now:
            return _Chunk([], [], [])
        day = minute - minute % DAY_MS
        valid, vals = self._day(s, day)
        i = (minute - day) // MINUTE_MS
        if not valid[i]:
            return _Chunk([], [], [])
        t_hi, t_lo = int(vals[9, i]), int(vals[10, i])
        opens: list[int] = []
        values: list[list[int]] = []
        prev = self._partial(vals, i, 0)
        for j in range(60):
            e1 = j * 1000
            if minute + e1 > now:
                break
            e2 = min(e1 + 1000, now - minute)
            cur = self._partial(vals, i, e2) if e2 < MINUTE_MS else [int(x) for x in vals[:9, i]]
            o, c = prev[C], cur[C]
            if prev[V] == cur[V] == 0 and int(vals[V, i]) == 0:
                row = [o, o, o, o, 0, 0, 0, 0, 0]
            else:
                hi = int(vals[H, i]) if (e1 < t_hi <= e2 or (j == 0 and t_hi == 0)) else max(o, c)
                lo = int(vals[L, i]) if (e1 < t_lo <= e2 or (j == 0 and t_lo == 0)) else min(o, c)
                row = [o, max(hi, o, c), min(lo, o, c), c] + [
                    cur[f] - prev[f] for f in (V, Q, N, TB, TQ)
                ]
            opens.append(minute + e1)
            values.append(row)
            prev = cur
        rows = np.asarray(values, dtype=np.int64).reshape(-1, 9)
        return _Chunk(opens, values, self._json_rows(s, 999, opens, rows))

    def _period_chunk(self, s: _Sym, iv: Interval, open_ms: int, now: int) -> _Chunk:
        """The single candle of a >1d interval opening at ``open_ms``, from its days' 1d candles."""
        days: list[list[int]] = []
        d = open_ms
        end = iv.open_after(open_ms)
        while d < end and d <= now:
            days.extend(self._day_chunk(s, Interval.D1, d, now, want_json=False).values)
            d += DAY_MS
        if not days:
            return _Chunk([], [], [])
        v = [days[0][O], max(x[H] for x in days), min(x[L] for x in days), days[-1][C]]
        v += [sum(x[f] for x in days) for f in (V, Q, N, TB, TQ)]
        return _Chunk([open_ms], [v], [self._json_row(s, iv, open_ms, v)])

    def _chunks_from(
        self, s: _Sym, iv: Interval, t: int, step: int, now: int, want_json: bool
    ) -> Iterator[tuple[int, int, _Chunk]]:
        """(span start, span end, chunk) walking forward (step=1) or back (-1) from ``t``."""
        if iv is Interval.S1:
            m = t - t % MINUTE_MS
            while True:
                yield m, m + MINUTE_MS, self._second_chunk(s, m, now)
                m += step * MINUTE_MS
        elif iv.is_calendar or iv.ms > DAY_MS:
            p = iv.floor(t)
            while True:
                nxt = iv.open_after(p)
                yield p, nxt, self._period_chunk(s, iv, p, now)
                p = nxt if step > 0 else iv.floor(p - 1)
        else:
            d = t - t % DAY_MS
            while True:
                yield d, d + DAY_MS, self._day_chunk(s, iv, d, now, want_json)
                d += step * DAY_MS

    def _select(
        self,
        s: _Sym,
        iv: Interval,
        start: int | None,
        end: int | None,
        limit: int,
        now: int,
        want_json: bool,
    ) -> list[tuple[int, list[int], str]]:
        """(open_ms, values, json) of the rows Binance returns, ascending."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValidationError(f"limit must be 1..{MAX_LIMIT}, got {limit}")
        if start is not None and end is not None and start > end:
            raise ValidationError(f"start {start} is after end {end}")
        listed = s.listing.listed_ms
        last_ok = now
        if s.listing.delisted_ms is not None:
            last_ok = min(last_ok, s.listing.delisted_ms - 1)
        hi = last_ok if end is None else min(end, last_ok)
        out: list[tuple[int, list[int], str]] = []
        if start is not None:
            # A start before the listing simply finds no minute until the first candle.
            first = iv.floor(max(start, listed))
            if first > hi:
                return out
            for span_start, _, chunk in self._chunks_from(s, iv, first, 1, now, want_json):
                if span_start > hi:
                    return out
                jsons = chunk.json or [""] * len(chunk.opens)
                for t, v, j in zip(chunk.opens, chunk.values, jsons, strict=True):
                    if t > hi:
                        return out
                    if t >= start:
                        out.append((t, v, j))
                        if len(out) == limit:
                            return out
        if hi < listed:
            return out
        for _, span_end, chunk in self._chunks_from(s, iv, iv.floor(hi), -1, now, want_json):
            if span_end <= listed:
                break
            jsons = chunk.json or [""] * len(chunk.opens)
            for t, v, j in zip(
                reversed(chunk.opens), reversed(chunk.values), reversed(jsons), strict=True
            ):
                if t <= hi:
                    out.append((t, v, j))
                    if len(out) == limit:
                        return out[::-1]
        return out[::-1]
