"""Binance market data: the REST client, the shared weight budget and kline WebSocket streams.

Errors raised (all from :mod:`cryptobot_core.errors`)::

    ValidationError          bad symbol, interval or time range (before any request)
    BinanceAPIError          any other 4xx, carrying Binance's code and msg
    ├── InvalidSymbolError   -1121, or a symbol that is not TRADING (names the symbol)
    ├── RateLimitError       429 after retries, or Retry-After longer than allowed
    └── IPBannedError        418 (banned longer than max_ban_wait_s)
    ExchangeUnavailable      5xx, timeouts, connection errors after bounded retries
"""

from cryptobot_core.exchange.exchange_info import (
    ExchangeInfo,
    RateLimit,
    SymbolInfo,
    normalize_symbol,
)
from cryptobot_core.exchange.ratelimit import WeightBudget
from cryptobot_core.exchange.rest import BinanceClient, ClientStats, windows
from cryptobot_core.exchange.ws import (
    KlineStream,
    MalformedFrame,
    StreamGap,
    StreamItem,
    StreamStats,
)

__all__ = [
    "BinanceClient",
    "ClientStats",
    "ExchangeInfo",
    "KlineStream",
    "MalformedFrame",
    "RateLimit",
    "StreamGap",
    "StreamItem",
    "StreamStats",
    "SymbolInfo",
    "WeightBudget",
    "normalize_symbol",
    "windows",
]
