"""Window statistics, features and gap listings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cryptobot_api.bodies import features_body, gaps_body, stats_body
from cryptobot_api.deps import EndDep, IntervalDep, LimitDep, QueryDep, StartDep, SymbolDep
from cryptobot_api.errors import ERROR_RESPONSES
from cryptobot_api.routes._json import CoreJSONResponse
from cryptobot_api.schemas import ErrorPublic, FeaturesPublic, GapsPublic, StatsPublic
from cryptobot_core.query import DEFAULT_LIMIT, MAX_WINDOW_SLOTS, parse_dataset

_RESPONSES = {**ERROR_RESPONSES, 404: {"model": ErrorPublic, "description": "unknown symbol"}}
_NARROWED = (
    f"A window longer than {MAX_WINDOW_SLOTS:,} source candles is narrowed to the newest "
    "stored ones, and start >= end is an empty window; the answer's start and end are the "
    "window covered."
)

stats_router = APIRouter(prefix="/stats", tags=["stats"])
features_router = APIRouter(prefix="/features", tags=["features"])
gaps_router = APIRouter(prefix="/gaps", tags=["gaps"])


@stats_router.get(
    "/{symbol}",
    response_model=StatsPublic,
    responses=_RESPONSES,
    description="Return, volatility, high/low and volume over closed candles in [start, end). "
    "Default window: the last max(24 h, 30 intervals) up to the newest closed candle. " + _NARROWED,
)
def get_stats(
    symbol: SymbolDep, query: QueryDep, interval: IntervalDep, start: StartDep, end: EndDep
) -> CoreJSONResponse:
    """Return, volatility, high/low and volume over closed candles in [start, end).

    Default window: the last max(24 h, 30 intervals) up to the newest closed candle.
    """
    return CoreJSONResponse(stats_body(query.stats(symbol, interval, start=start, end=end)))


@features_router.get("/{symbol}", response_model=FeaturesPublic, responses=_RESPONSES)
def get_features(
    symbol: SymbolDep,
    query: QueryDep,
    start: StartDep,
    end: EndDep,
    limit: LimitDep = DEFAULT_LIMIT,
) -> CoreJSONResponse:
    """Rows of candle_features_15m with open_time in [start, end), oldest first."""
    return CoreJSONResponse(
        features_body(query.features(symbol, start=start, end=end, limit=limit))
    )


@gaps_router.get(
    "/{symbol}",
    response_model=GapsPublic,
    responses=_RESPONSES,
    description="Runs of missing closed candles in [start, end) (default: the last 24 h of "
    "data). " + _NARROWED,
)
def get_gaps(
    symbol: SymbolDep,
    query: QueryDep,
    start: StartDep,
    end: EndDep,
    dataset: Annotated[
        str,
        Query(
            description="1m (the stream), 15m or another history interval kept "
            "(CRYPTOBOT_HISTORY_INTERVALS); GET /symbols lists the datasets with data",
            examples=["1m", "15m"],
        ),
    ] = "1m",
) -> CoreJSONResponse:
    """Runs of missing closed candles in [start, end) (default: the last 24 h of data)."""
    parse_dataset(dataset, query.datasets)
    return CoreJSONResponse(gaps_body(query.gaps(symbol, dataset, start=start, end=end)))
