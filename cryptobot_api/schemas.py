"""Response models (``...Public``): they document the API; bodies are built by the core."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_CANDLE_EXAMPLE: dict[str, Any] = {
    "open_time": "2024-01-01T00:00:00.000Z",
    "close_time": "2024-01-01T00:14:59.999Z",
    "open": "42283.58000000",
    "high": "42554.57000000",
    "low": "42261.02000000",
    "close": "42475.23000000",
    "volume": "1271.68108000",
    "quote_volume": "53957244.85283070",
    "taker_buy_base_volume": "662.21262000",
    "taker_buy_quote_volume": "28098484.69476410",
    "trades": 47134,
    "is_closed": True,
}


class ErrorDetailPublic(BaseModel):
    """What went wrong and what to do about it."""

    status: int = Field(description="HTTP status, repeated for clients that only see the body")
    code: str = Field(description="stable machine-readable code, e.g. unknown_symbol")
    message: str = Field(description="what was wrong and what is allowed")
    hint: str | None = Field(None, description="where to look next")


class ErrorPublic(BaseModel):
    """The one shape of every error response."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "status": 404,
                        "code": "unknown_symbol",
                        "message": "no data for symbol 'DOGEBTC'",
                        "hint": "GET /symbols lists the symbols with data",
                    }
                }
            ]
        }
    )

    error: ErrorDetailPublic


class HealthPublic(BaseModel):
    """Liveness: the process answers."""

    status: str = Field(examples=["ok"])


class StoreStatusPublic(BaseModel):
    """Whether the document store answers."""

    reachable: bool
    error: str | None = None


class ExchangePublic(BaseModel):
    """Which exchange the data comes from."""

    source: str = Field(description="sim or binance", examples=["sim"])
    simulated: bool
    configured: str = Field(description="the exchange setting: auto, sim or binance")
    rest_url: str
    fallback_reason: str | None = Field(
        None,
        description="why `auto` fell back to the simulator (null when it did not)",
        examples=["https://api.binance.com/api/v3/ping did not answer within 5 s"],
    )


class DatasetFreshnessPublic(BaseModel):
    """Newest candle of a dataset over the configured symbols."""

    newest_open_time: str | None
    age_seconds: float | None
    symbols: int


class HeartbeatPublic(BaseModel):
    """Last heartbeat of a stream process."""

    updated_at: str
    age_seconds: float


class ReadyPublic(BaseModel):
    """Readiness: store reachable, dataset freshness, exchange source, stream heartbeats."""

    status: str = Field(description="ready or unavailable")
    store: StoreStatusPublic
    exchange: ExchangePublic
    datasets: dict[str, DatasetFreshnessPublic] | None
    stream: dict[str, HeartbeatPublic | None] | None


class DatasetSummaryPublic(BaseModel):
    """First and last candle of one symbol in one dataset."""

    first_open_time: str
    last_open_time: str
    count: int


class SymbolPublic(BaseModel):
    """A configured symbol or a symbol with data, per dataset (``1m`` stream, ``15m`` history)."""

    symbol: str
    configured: bool = Field(description="in CRYPTOBOT_SYMBOLS, or in its rule's universe now")
    has_data: bool = Field(description="some dataset holds candles of it")
    datasets: dict[str, DatasetSummaryPublic]


class UniversePublic(BaseModel):
    """Where the configured symbols come from."""

    rule: str | None = Field(description="the rule (e.g. top:50:USDT), or null for a list")
    resolved_at: str | None = Field(description="when the rule was last resolved")
    count: int = Field(description="how many symbols are configured")


class SymbolsPublic(BaseModel):
    """Every configured symbol and every symbol that has data."""

    universe: UniversePublic
    symbols: list[SymbolPublic]


class CandlePublic(BaseModel):
    """One candle: decimals are exact strings, times ISO-8601 UTC."""

    model_config = ConfigDict(json_schema_extra={"examples": [_CANDLE_EXAMPLE]})

    open_time: str
    close_time: str
    open: str
    high: str
    low: str
    close: str
    volume: str
    quote_volume: str
    taker_buy_base_volume: str
    taker_buy_quote_volume: str
    trades: int
    is_closed: bool
    provisional: bool = Field(
        False,
        description="built from the 1m stream for hours the daily 15m history does not "
        "hold yet; the same candle from history replaces it once that day lands",
    )


class CandlesPublic(BaseModel):
    """A page of candles, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTCUSDT",
                    "interval": "15m",
                    "source_dataset": "historical_data_15m",
                    "candles": [_CANDLE_EXAMPLE],
                    "next_cursor": None,
                }
            ]
        }
    )

    symbol: str
    interval: str
    source_dataset: str = Field(description="collection the candles come from")
    candles: list[CandlePublic]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at the end")


class LatestPublic(BaseModel):
    """The newest stored candle (open or closed)."""

    symbol: str
    interval: str
    candle: CandlePublic | None


class StatsPublic(BaseModel):
    """Summary of closed candles in [start, end)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "symbol": "BTCUSDT",
                    "interval": "15m",
                    "start": "2024-01-01T00:00:00.000Z",
                    "end": "2024-01-02T00:00:00.000Z",
                    "count": 96,
                    "open": "42283.58000000",
                    "close": "44179.55000000",
                    "return": 0.04484,
                    "volatility": 0.00312,
                    "high": "45879.63000000",
                    "low": "42261.02000000",
                    "volume": "40132.09000000",
                }
            ]
        }
    )

    symbol: str
    interval: str
    start: str | None
    end: str | None
    count: int
    open: str | None
    close: str | None
    return_: float | None = Field(
        alias="return", description="simple return close/open - 1 as a float (not exact)"
    )
    volatility: float | None = Field(
        description="sample standard deviation of log returns between consecutive closes"
    )
    high: str | None
    low: str | None
    volume: str | None
    provisional: bool = Field(
        False,
        description="some candles of the window were built from the 1m stream ahead "
        "of the daily history",
    )


class FeaturePublic(BaseModel):
    """One row of candle_features_15m (floats; null where not defined)."""

    open_time: str
    close: str | None
    log_return: float | None
    volatility_1h: float | None
    volatility_24h: float | None
    vwap: float | None
    hl_range: float | None
    volume_zscore: float | None


class FeaturesPublic(BaseModel):
    """Feature rows, oldest first."""

    symbol: str
    features: list[FeaturePublic]


class GapPublic(BaseModel):
    """A run of missing closed candles: open times in [start, end)."""

    start: str
    end: str
    missing: int


class GapsPublic(BaseModel):
    """Missing closed candles of a dataset within a window."""

    symbol: str
    dataset: str
    start: str | None
    end: str | None
    gaps: list[GapPublic]
