"""Annotated dependency aliases: handlers declare what they need, checks live here once.

Every dependency here is ``async``: none of them blocks (they read the app's state and
parse strings), and FastAPI runs a plain ``def`` dependency in its thread pool, so an
``async`` route such as ``latest`` would pay a thread hop per dependency.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from cryptobot_core.exchange.exchange_info import SYMBOL_INPUT_PATTERN, normalize_symbol
from cryptobot_core.intervals import Interval
from cryptobot_core.query import (
    EPOCH_MS_PATTERN,
    MAX_LIMIT,
    MarketQuery,
    parse_interval,
    parse_time,
)
from cryptobot_core.settings import Settings

_TIME_HELP = (
    "RFC 3339 date-time (e.g. 2024-01-01T00:00:00Z) or epoch milliseconds; a time before "
    "1970 or after 2999 is read as that bound. Other ISO-8601 forms are accepted too: "
    "2024-01-01, and no zone means UTC"
)
# What the schema promises: an RFC 3339 date-time or epoch milliseconds. The server also
# takes looser ISO-8601 (a date, a naive time as UTC) for people typing URLs by hand. An
# empty value, as an HTML form sends it, means not given.
TIME_SCHEMA = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "pattern": EPOCH_MS_PATTERN},
        {"type": "string", "maxLength": 0},
    ]
}


async def get_settings(request: Request) -> Settings:
    """The settings the app was started with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_query(request: Request) -> MarketQuery:
    """The read-side query object bound to the app's store client."""
    query: MarketQuery = request.app.state.query
    return query


async def symbol_param(
    symbol: Annotated[
        str,
        Path(
            description="Binance symbol, e.g. BTCUSDT (case-insensitive)",
            examples=["BTCUSDT"],
            pattern=SYMBOL_INPUT_PATTERN,
        ),
    ],
) -> str:
    """The path symbol, upper-cased and checked."""
    return normalize_symbol(symbol)


async def start_param(
    start: Annotated[
        str | None,
        Query(
            description=f"first open time, inclusive: {_TIME_HELP}",
            examples=["2024-01-01T00:00:00Z"],
            json_schema_extra=TIME_SCHEMA,
        ),
    ] = None,
) -> int | None:
    """``start`` as epoch ms."""
    return parse_time(start, "start")


async def end_param(
    end: Annotated[
        str | None,
        Query(
            description=f"end of the window, exclusive: {_TIME_HELP}",
            examples=["1704153600000"],
            json_schema_extra=TIME_SCHEMA,
        ),
    ] = None,
) -> int | None:
    """``end`` as epoch ms."""
    return parse_time(end, "end")


async def interval_param(
    query: Annotated[MarketQuery, Depends(get_query)],
    interval: Annotated[
        str,
        Query(
            description="candle interval; 1m from the stream and the history intervals kept "
            "(15m by default, CRYPTOBOT_HISTORY_INTERVALS) as stored, the others resampled "
            "from the coarsest of those that divides them (3m and 5m from the 1m stream with "
            "the default history); history continues with the 1m stream past its end. 1s is "
            "served only when kept as history",
        ),
    ] = "15m",
) -> Interval:
    """``interval`` among the ones served here."""
    return parse_interval(interval, query.served)


SettingsDep = Annotated[Settings, Depends(get_settings)]
QueryDep = Annotated[MarketQuery, Depends(get_query)]
SymbolDep = Annotated[str, Depends(symbol_param)]
StartDep = Annotated[int | None, Depends(start_param)]
EndDep = Annotated[int | None, Depends(end_param)]
IntervalDep = Annotated[Interval, Depends(interval_param)]
LimitDep = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"at most this many rows (max {MAX_LIMIT})")
]
