"""Exchange facts as data (paths, weights, limits) and the parsed ``/api/v3/exchangeInfo``.

Raw payload it parses (Binance docs, trimmed)::

    {"timezone": "UTC", "serverTime": 1565246363776,
     "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE",
                     "intervalNum": 1, "limit": 6000}],
     "exchangeFilters": [],
     "symbols": [{"symbol": "ETHBTC", "status": "TRADING", "baseAsset": "ETH",
                  "quoteAsset": "BTC", "filters": [...], "permissions": [...]}]}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptobot_core.errors import BinanceAPIError, ValidationError

# Paths and request weights: exchange quirks kept as data in one place.
PING_PATH = "/api/v3/ping"
TIME_PATH = "/api/v3/time"
EXCHANGE_INFO_PATH = "/api/v3/exchangeInfo"
KLINES_PATH = "/api/v3/klines"
TICKER_24HR_PATH = "/api/v3/ticker/24hr"
# The 24 h ticker of every symbol at once weighs 80.
WEIGHTS = {PING_PATH: 1, TIME_PATH: 1, EXCHANGE_INFO_PATH: 20, KLINES_PATH: 2, TICKER_24HR_PATH: 80}
KLINES_PAGE_LIMIT = 1000
USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
TRADING = "TRADING"
# The one symbol rule: Binance spot symbols are 2-20 upper-case letters or digits.
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
# What a user may type for a symbol (any case: normalize_symbol upper-cases it), as a plain
# pattern for API schemas.
SYMBOL_INPUT_PATTERN = SYMBOL_RE.pattern.replace("A-Z", "A-Za-z")

_INTERVAL_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


def normalize_symbol(symbol: object) -> str:
    """Upper-case a symbol and check its shape (2-20 letters or digits, e.g. BTCUSDT)."""
    if not isinstance(symbol, str):
        raise ValidationError(f"symbol must be a string like BTCUSDT, got {symbol!r}")
    normalized = symbol.strip().upper()
    if not SYMBOL_RE.match(normalized):
        raise ValidationError(f"symbol must be 2-20 letters or digits like BTCUSDT, got {symbol!r}")
    return normalized


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """One listed symbol and its trading status."""

    symbol: str
    status: str
    base_asset: str
    quote_asset: str

    @property
    def trading(self) -> bool:
        """True when the symbol is TRADING (the only status whose market data is live)."""
        return self.status == TRADING


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One ``rateLimits`` entry, e.g. REQUEST_WEIGHT 6000 per 1 MINUTE."""

    type: str
    interval: str
    interval_num: int
    limit: int

    @property
    def window_s(self) -> float:
        """Length of the window in seconds."""
        return float(_INTERVAL_SECONDS.get(self.interval, 60) * self.interval_num)


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    """The parts of exchangeInfo CryptoBot uses."""

    server_time_ms: int
    rate_limits: list[RateLimit] = field(default_factory=list)
    symbols: dict[str, SymbolInfo] = field(default_factory=dict)
    timezone: str = "UTC"

    @property
    def request_weight(self) -> RateLimit | None:
        """The REQUEST_WEIGHT limit with the shortest window (the one that paces requests)."""
        weights = [r for r in self.rate_limits if r.type == "REQUEST_WEIGHT"]
        return min(weights, key=lambda r: r.window_s) if weights else None

    def problem(self, symbol: str) -> str | None:
        """Why ``symbol`` cannot be collected, or None when it is listed and TRADING."""
        info = self.symbols.get(symbol)
        if info is None:
            return "unknown symbol (not listed on the exchange)"
        if not info.trading:
            return f"status is {info.status}, not {TRADING}"
        return None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ExchangeInfo:
        """Parse the exchangeInfo JSON body."""
        try:
            limits = [
                RateLimit(
                    type=str(r["rateLimitType"]),
                    interval=str(r["interval"]),
                    interval_num=int(r["intervalNum"]),
                    limit=int(r["limit"]),
                )
                for r in body.get("rateLimits", [])
            ]
            symbols = {
                str(s["symbol"]): SymbolInfo(
                    symbol=str(s["symbol"]),
                    status=str(s["status"]),
                    base_asset=str(s.get("baseAsset", "")),
                    quote_asset=str(s.get("quoteAsset", "")),
                )
                for s in body.get("symbols", [])
            }
            return cls(
                server_time_ms=int(body["serverTime"]),
                rate_limits=limits,
                symbols=symbols,
                timezone=str(body.get("timezone", "UTC")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BinanceAPIError(200, None, f"malformed exchangeInfo response: {exc!r}") from None
