"""The one exception tree of CryptoBot.

Library code raises; the edges (CLI, API, Dagster) turn these into messages.

    CryptobotError
    ├── ConfigError                 a setting has a bad value (names the variable)
    ├── ValidationError             bad user input: symbol, interval, time range
    ├── ExchangeError               anything from or about the exchange
    │   ├── BinanceAPIError         the exchange answered with {"code", "msg"}
    │   │   ├── InvalidSymbolError  -1121, or a symbol that is not TRADING
    │   │   ├── RateLimitError      429 (carries retry_after)
    │   │   └── IPBannedError       418 (carries retry_after)
    │   └── ExchangeUnavailable     timeouts, 5xx, connection errors after retries
    ├── StoreError                  the document store
    │   └── StoreUnavailable        cannot reach it
    ├── StreamError                 the Kafka pipeline
    │   └── BrokerUnavailable       cannot reach the broker
    └── ServiceError                a local service could not start (names the log)
"""

from __future__ import annotations


class CryptobotError(Exception):
    """Base of every error CryptoBot raises on purpose."""


class ConfigError(CryptobotError):
    """A setting has a value that is not allowed."""


class ValidationError(CryptobotError, ValueError):
    """User input (symbol, interval, time) is not valid."""


class ExchangeError(CryptobotError):
    """A problem talking to the exchange."""


class BinanceAPIError(ExchangeError):
    """The exchange answered with an error body ``{"code": ..., "msg": ...}``."""

    def __init__(self, status: int, code: int | None, msg: str) -> None:
        self.status = status
        self.code = code
        self.msg = msg
        super().__init__(f"Binance error {code} (HTTP {status}): {msg}")


class InvalidSymbolError(BinanceAPIError):
    """The symbol does not exist on the exchange or is not TRADING."""

    def __init__(self, symbol: str, msg: str = "Invalid symbol.", status: int = 400) -> None:
        self.symbol = symbol
        super().__init__(status, -1121, f"{symbol}: {msg}")


class RateLimitError(BinanceAPIError):
    """HTTP 429: a request limit was broken; wait ``retry_after`` seconds."""

    def __init__(self, status: int, code: int | None, msg: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(status, code, msg)


class IPBannedError(RateLimitError):
    """HTTP 418: the IP is banned for ignoring 429s."""


class ExchangeUnavailable(ExchangeError):
    """The exchange could not be reached or kept failing (timeouts, 5xx)."""


class StoreError(CryptobotError):
    """A problem with the document store."""


class StoreUnavailable(StoreError):
    """The document store cannot be reached."""


class StreamError(CryptobotError):
    """A problem in the Kafka stream pipeline."""


class BrokerUnavailable(StreamError):
    """The Kafka broker cannot be reached."""


class ServiceError(CryptobotError):
    """A local service failed to start or died; the message names its log file."""
