"""What the simulated exchange lists and how it behaves: symbols, outages, limits, clock."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from cryptobot_core.errors import ValidationError
from cryptobot_core.exchange.exchange_info import SYMBOL_RE
from cryptobot_core.intervals import MINUTE_MS
from cryptobot_core.simulator.clock import SimClock

STATUSES = ("TRADING", "END_OF_DAY", "HALT", "BREAK", "CANCEL_ONLY")
QUOTE_ASSETS = ("USDT", "FDUSD", "USDC", "BTC", "ETH", "BNB", "EUR", "TRY")


def _ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


def _pow10_exponent(name: str, value: Decimal) -> int:
    """Decimals after the point of a power-of-ten size like 0.01 (2), checked to be 0..8."""
    exp = -value.normalize().as_tuple().exponent  # type: ignore[operator]
    if value <= 0 or value != Decimal(1).scaleb(-exp) or not 0 <= exp <= 8:
        raise ValidationError(f"{name} must be a power of ten from 1 to 0.00000001, got {value}")
    return int(exp)


@dataclass(frozen=True)
class SymbolListing:
    """One symbol the simulator lists, with its listing time and price scale."""

    symbol: str
    listed_ms: int
    base_price: Decimal = Decimal("100")
    status: str = "TRADING"
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")
    # Typical base-asset volume traded per minute.
    base_volume: Decimal = Decimal("10")
    # Scales per-minute volatility (1.0 = about 0.06% per minute, BTC-like).
    volatility: float = 1.0
    # Share of minutes with no trade at all.
    zero_volume_rate: float = 0.003
    # No candles from this time on (a delisted symbol), if set.
    delisted_ms: int | None = None
    base_asset: str = ""
    quote_asset: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not SYMBOL_RE.match(self.symbol):
            raise ValidationError(
                f"symbol must be 2-20 upper-case letters/digits like BTCUSDT, got {self.symbol!r}"
            )
        if self.status not in STATUSES:
            raise ValidationError(f"status of {self.symbol} must be one of {', '.join(STATUSES)}")
        for name in ("base_price", "tick_size", "step_size", "base_volume"):
            value = Decimal(str(getattr(self, name)))
            if not value.is_finite() or value <= 0:
                raise ValidationError(f"{name} of {self.symbol} must be > 0, got {value}")
            object.__setattr__(self, name, value)
        _pow10_exponent(f"tick_size of {self.symbol}", self.tick_size)
        _pow10_exponent(f"step_size of {self.symbol}", self.step_size)
        if self.base_price < self.tick_size * 1000:
            raise ValidationError(
                f"base_price of {self.symbol} must be at least 1000 ticks ({self.tick_size * 1000})"
            )
        if not 0 <= self.zero_volume_rate < 1:
            raise ValidationError(f"zero_volume_rate of {self.symbol} must be in [0, 1)")
        if not 0 < self.volatility <= 10:
            raise ValidationError(f"volatility of {self.symbol} must be in (0, 10]")
        object.__setattr__(self, "listed_ms", int(self.listed_ms) - int(self.listed_ms) % MINUTE_MS)
        if self.delisted_ms is not None and self.delisted_ms <= self.listed_ms:
            raise ValidationError(f"delisted_ms of {self.symbol} must be after listed_ms")
        if not self.quote_asset:
            quote = next((q for q in QUOTE_ASSETS if self.symbol.endswith(q)), self.symbol[-4:])
            object.__setattr__(self, "quote_asset", quote)
        if not self.base_asset:
            object.__setattr__(
                self, "base_asset", self.symbol[: -len(self.quote_asset)] or self.symbol
            )

    @property
    def price_decimals(self) -> int:
        """Decimals of the tick size (2 for 0.01)."""
        return _pow10_exponent("tick_size", self.tick_size)

    @property
    def qty_decimals(self) -> int:
        """Decimals of the lot step size."""
        return _pow10_exponent("step_size", self.step_size)


def _l(
    symbol: str,
    day: str,
    price: str,
    tick: str,
    step: str,
    vol: str,
    volat: float,
    zero: float = 0.003,
    **kw: object,
) -> SymbolListing:
    return SymbolListing(
        symbol,
        _ms(day),
        Decimal(price),
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        base_volume=Decimal(vol),
        volatility=volat,
        zero_volume_rate=zero,
        **kw,  # type: ignore[arg-type]
    )


def default_symbols() -> list[SymbolListing]:
    """Twenty TRADING USDT pairs at realistic prices, listed years ago, plus one in BREAK."""
    return [
        _l("BTCUSDT", "2017-08-17", "60000", "0.01", "0.00001", "15", 1.0, 0.0005),
        _l("ETHUSDT", "2017-08-17", "3000", "0.01", "0.0001", "250", 1.3, 0.0005),
        _l("BNBUSDT", "2017-11-06", "600", "0.01", "0.001", "300", 1.2, 0.001),
        _l("SOLUSDT", "2020-08-11", "150", "0.01", "0.001", "2500", 1.7),
        _l("XRPUSDT", "2018-05-04", "0.6", "0.0001", "0.1", "400000", 1.5),
        _l("ADAUSDT", "2018-04-17", "0.45", "0.0001", "0.1", "300000", 1.6),
        _l("DOGEUSDT", "2019-07-05", "0.12", "0.00001", "1", "2000000", 1.9),
        _l("TRXUSDT", "2018-06-11", "0.12", "0.00001", "0.1", "800000", 1.1),
        _l("LTCUSDT", "2017-12-13", "80", "0.01", "0.001", "1500", 1.4),
        _l("LINKUSDT", "2019-01-16", "15", "0.01", "0.01", "10000", 1.7),
        _l("DOTUSDT", "2020-08-18", "6", "0.001", "0.01", "20000", 1.7),
        _l("AVAXUSDT", "2020-09-22", "30", "0.01", "0.01", "5000", 1.8),
        _l("POLUSDT", "2024-09-13", "0.4", "0.0001", "0.1", "200000", 1.8, 0.01),
        _l("ATOMUSDT", "2019-04-29", "8", "0.001", "0.01", "8000", 1.6, 0.01),
        _l("UNIUSDT", "2020-09-17", "8", "0.001", "0.01", "8000", 1.8, 0.01),
        _l("XLMUSDT", "2018-05-31", "0.1", "0.0001", "1", "500000", 1.4, 0.01),
        _l("BCHUSDT", "2019-11-28", "350", "0.1", "0.001", "300", 1.5, 0.01),
        _l("NEARUSDT", "2020-10-14", "5", "0.001", "0.1", "20000", 1.9, 0.01),
        _l("APTUSDT", "2022-10-19", "9", "0.001", "0.01", "10000", 1.9, 0.01),
        _l("ARBUSDT", "2023-03-23", "1", "0.0001", "0.1", "300000", 1.9, 0.01),
        _l(
            "LUNAUSDT",
            "2020-08-21",
            "0.5",
            "0.0001",
            "0.01",
            "100000",
            2.5,
            0.02,
            status="BREAK",
            delisted_ms=_ms("2022-05-13"),
        ),
    ]


# Quote assets of generated symbols: (asset, share of symbols, value of one unit in USD,
# log10 range of prices in that asset).
_GEN_QUOTES = (
    ("USDT", 0.45, 1.0, (-4.0, 4.5)),
    ("USDC", 0.10, 1.0, (-4.0, 4.5)),
    ("FDUSD", 0.08, 1.0, (-4.0, 4.5)),
    ("BTC", 0.15, 60_000.0, (-5.0, -1.0)),
    ("ETH", 0.07, 3_000.0, (-4.0, 0.0)),
    ("BNB", 0.07, 600.0, (-3.0, 1.0)),
    ("TRY", 0.04, 1 / 35, (-2.0, 6.0)),
    ("EUR", 0.04, 1.08, (-4.0, 4.5)),
)
_GEN_OTHER_STATUSES = ("BREAK", "BREAK", "BREAK", "HALT", "END_OF_DAY", "CANCEL_ONLY")
_CONSONANTS = "BCDFGHJKLMNPRSTVXZ"
_VOWELS = "AEIOUY"
_GEN_LISTED_FROM = _ms("2018-01-01")
_GEN_LISTED_TO = _ms("2025-06-01")
_GEN_DELISTED_TO = _ms("2025-12-01")
_HOUR_MS = 3_600_000


class _Draws:
    """Uniform [0, 1) draws that are a pure function of (seed, symbol number, field name).

    Hash-based rather than ``random.Random`` so the generated universe never depends on how a
    Python version implements its distributions.
    """

    def __init__(self, seed: int, number: int) -> None:
        self.prefix = f"{seed}|{number}|"

    def __call__(self, name: str) -> float:
        digest = hashlib.blake2b((self.prefix + name).encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2.0**64

    def letter(self, name: str, alphabet: str) -> str:
        return alphabet[int(self(name) * len(alphabet))]


def _pow10(exp: int) -> Decimal:
    return Decimal(1).scaleb(exp)


def _generated(seed: int, number: int, taken: set[str], status: str) -> SymbolListing:
    draw = _Draws(seed, number)
    pick = draw("quote")
    quote, _, quote_usd, (lo, hi) = _GEN_QUOTES[-1]
    for entry in _GEN_QUOTES:
        if pick < entry[1]:
            quote, _, quote_usd, (lo, hi) = entry
            break
        pick -= entry[1]
    attempt = 0
    while True:
        length = 3 + int(draw(f"len{attempt}") * 3)
        base = "".join(
            draw.letter(f"c{attempt}.{k}", _CONSONANTS if k % 2 == 0 else _VOWELS)
            for k in range(length)
        )
        if base not in QUOTE_ASSETS and base + quote not in taken:
            break
        attempt += 1
    # Four significant digits; the tick is 4 decades below the price (at most 0.01).
    log_price = lo + (hi - lo) * draw("price")
    decade = math.floor(log_price)
    price = Decimal(f"{10**log_price:.{max(0, 3 - decade)}f}")
    tick_exp = min(-2, max(-8, decade - 4))
    # One lot step is worth about a US cent.
    step_exp = min(0, max(-8, round(-2 - log_price - math.log10(quote_usd))))
    usd_per_minute = 10 ** (1.5 + 4.0 * draw("volume"))  # ~30 to ~300,000 USD a minute
    volume = Decimal(f"{usd_per_minute / quote_usd / float(price):.{-step_exp}f}")
    volume = max(volume, _pow10(step_exp))
    listed = _GEN_LISTED_FROM + int(draw("listed") * (_GEN_LISTED_TO - _GEN_LISTED_FROM))
    listed -= listed % _HOUR_MS
    delisted = None
    if status != "TRADING":
        delisted = listed + 86_400_000 + int(draw("delisted") * (_GEN_DELISTED_TO - listed))
        delisted -= delisted % _HOUR_MS
    return SymbolListing(
        base + quote,
        listed,
        price,
        status=status,
        tick_size=_pow10(tick_exp),
        step_size=_pow10(step_exp),
        base_volume=volume,
        volatility=round(0.8 + 1.7 * draw("volatility"), 3),
        zero_volume_rate=round(10 ** (-3.3 + 2.0 * draw("zero")), 5),
        delisted_ms=delisted,
        base_asset=base,
        quote_asset=quote,
    )


def generated_symbols(trading: int, seed: int = 42) -> list[SymbolListing]:
    """``trading`` TRADING symbols plus one in twenty in other statuses, deterministically.

    The first ones are ``default_symbols()`` (BTCUSDT, ETHUSDT, ... and LUNAUSDT in BREAK), so
    tests written for the default market still find their symbols; the rest have generated
    names over eight quote assets (USDT, USDC, FDUSD, BTC, ETH, BNB, TRY, EUR), tick and step
    sizes that suit their prices, listing dates from 2018 to mid-2025, and the non-TRADING
    ones were delisted before 2025-12. The list is a pure function of (trading, seed).
    """
    if isinstance(trading, bool) or not isinstance(trading, int) or not 1 <= trading <= 20_000:
        raise ValidationError(f"trading must be a whole number from 1 to 20000, got {trading!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValidationError(f"seed must be an integer, got {seed!r}")
    defaults = default_symbols()
    others = max(1, trading // 20)
    out = [s for s in defaults if s.status == "TRADING"][:trading]
    out += [s for s in defaults if s.status != "TRADING"][:others]
    more_trading = trading - sum(s.status == "TRADING" for s in out)
    more_others = others - sum(s.status != "TRADING" for s in out)
    total = more_trading + more_others
    taken = {s.symbol for s in out}
    n_other = 0
    for number in range(total):
        # Spread the non-TRADING symbols evenly through the list.
        status = "TRADING"
        if (number + 1) * more_others // total > number * more_others // total:
            status = _GEN_OTHER_STATUSES[n_other % len(_GEN_OTHER_STATUSES)]
            n_other += 1
        listing = _generated(seed, number, taken, status)
        taken.add(listing.symbol)
        out.append(listing)
    return out


Outage = tuple[int, int] | tuple[int, int, str]


@dataclass
class SimConfig:
    """Everything that defines one simulated exchange; the data is a pure function of it."""

    seed: int = 42
    symbols: Sequence[SymbolListing] = field(default_factory=default_symbols)
    # [start_ms, end_ms) windows with no candles at all; a third element limits one to a symbol.
    outages: Sequence[Outage] = ()
    weight_limit: int = 6000
    # The weight window in simulated seconds: Binance's is 1 minute. A shorter one (advertised
    # in exchangeInfo as SECOND) lets a test cross several windows in little time.
    weight_window_s: int = 60
    clock: SimClock = field(default_factory=SimClock.real)
    ws_update_interval_s: float = 2.0
    ws_ping_interval_s: float = 20.0
    ws_pong_timeout_s: float = 60.0
    ws_max_incoming_per_s: int = 5
    ws_max_streams: int = 1024
    # Binance cuts every connection after 24 h; measured on the simulated clock.
    ws_max_lifetime_s: float = 86_400.0
    # 429s in one weight window before the IP is banned (418), and the ban length.
    ban_after_429s: int = 3
    ban_s: float = 120.0
    # Archive files (data.binance.vision layout) appear this long after their period ends,
    # on the simulated clock; real daily files land 4-6 hours after the day.
    archive_delay_s: float = 6 * 3600.0
    # Memory for built archive files (zip bytes), least recently used dropped first.
    archive_cache_mb: float = 256.0
    _by_name: dict[str, SymbolListing] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValidationError(f"seed must be an integer, got {self.seed!r}")
        self.symbols = list(self.symbols)
        if not self.symbols:
            raise ValidationError("the simulator needs at least one symbol")
        names = [s.symbol for s in self.symbols]
        dupes = sorted(n for n, k in Counter(names).items() if k > 1)
        if dupes:
            raise ValidationError(f"symbols listed twice: {', '.join(dupes)}")
        self._by_name = {s.symbol: s for s in self.symbols}
        outages: list[Outage] = []
        for outage in self.outages:
            if len(outage) not in (2, 3) or int(outage[0]) >= int(outage[1]):
                raise ValidationError(
                    f"an outage is (start_ms, end_ms[, symbol]) with start < end, got {outage!r}"
                )
            if len(outage) == 3 and outage[2] not in self._by_name:
                raise ValidationError(f"outage names unknown symbol {outage[2]!r}")
            outages.append(outage)
        self.outages = outages
        if self.weight_limit < 1:
            raise ValidationError(f"weight_limit must be >= 1, got {self.weight_limit}")
        if isinstance(self.weight_window_s, bool) or not (
            isinstance(self.weight_window_s, int) and 1 <= self.weight_window_s <= 3600
        ):
            raise ValidationError(
                f"weight_window_s must be a whole number of seconds from 1 to 3600, "
                f"got {self.weight_window_s!r}"
            )
        for name in (
            "ws_update_interval_s",
            "ws_ping_interval_s",
            "ws_pong_timeout_s",
            "ban_s",
            "ws_max_lifetime_s",
            "archive_cache_mb",
        ):
            if not getattr(self, name) > 0:
                raise ValidationError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not (isinstance(self.archive_delay_s, int | float) and self.archive_delay_s >= 0):
            raise ValidationError(
                f"archive_delay_s must be >= 0 seconds, got {self.archive_delay_s!r}"
            )
        if self.ws_max_incoming_per_s < 1 or self.ws_max_streams < 1 or self.ban_after_429s < 1:
            raise ValidationError(
                "ws_max_incoming_per_s, ws_max_streams and ban_after_429s must be >= 1"
            )

    def listing(self, symbol: str) -> SymbolListing | None:
        """The listing of ``symbol``, or None if the simulator does not list it."""
        return self._by_name.get(symbol)
