"""Candles: ranges, resampling, pagination and the latest candle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cryptobot_api.bodies import latest_body, page_body
from cryptobot_api.deps import EndDep, IntervalDep, LimitDep, QueryDep, StartDep, SymbolDep
from cryptobot_api.errors import ERROR_RESPONSES
from cryptobot_api.routes._json import CoreJSONResponse
from cryptobot_api.schemas import CandlesPublic, ErrorPublic, LatestPublic
from cryptobot_core.intervals import Interval
from cryptobot_core.query import DEFAULT_LIMIT, EPOCH_MS_PATTERN, MAX_LIMIT, parse_interval

router = APIRouter(prefix="/candles", tags=["candles"])
_RESPONSES = {**ERROR_RESPONSES, 404: {"model": ErrorPublic, "description": "unknown symbol"}}


@router.get(
    "/{symbol}",
    response_model=CandlesPublic,
    responses=_RESPONSES,
    description=(
        "Candles with open_time in [start, end), oldest first. Decimals are exact strings. "
        f"limit defaults to {DEFAULT_LIMIT}, at most {MAX_LIMIT}. Without start, the newest "
        "limit candles before end. Intervals above 15m are resampled from 15m history; only "
        "complete buckets unless include_open. Follow next_cursor for the next page. "
        "start >= end is an empty window: no candles."
    ),
)
def get_candles(
    symbol: SymbolDep,
    query: QueryDep,
    interval: IntervalDep,
    start: StartDep,
    end: EndDep,
    limit: LimitDep = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(
            description="next_cursor of the previous page: the next page's first open time "
            "in epoch milliseconds (it takes the place of start)",
            pattern=EPOCH_MS_PATTERN,
        ),
    ] = None,
    include_open: Annotated[
        bool, Query(description="also return the still-open candle or bucket")
    ] = False,
) -> CoreJSONResponse:
    """Candles with open_time in [start, end), oldest first, at most ``limit``.

    Without ``start`` the newest ``limit`` candles before ``end`` are returned. Follow
    ``next_cursor`` for the next page.
    """
    page = query.candles(
        symbol,
        interval,
        start=start,
        end=end,
        limit=limit,
        cursor=cursor,
        include_open=include_open,
    )
    return CoreJSONResponse(page_body(page))


@router.get("/{symbol}/latest", response_model=LatestPublic, responses=_RESPONSES)
def get_latest(
    symbol: SymbolDep,
    query: QueryDep,
    interval: Annotated[
        str,
        Query(
            description="1m (stream) or 15m (history)", json_schema_extra={"enum": ["1m", "15m"]}
        ),
    ] = "1m",
) -> CoreJSONResponse:
    """The newest stored candle, open or closed (see ``is_closed``)."""
    parsed = parse_interval(interval, (Interval.M1, Interval.M15))
    return CoreJSONResponse(latest_body(query.latest(symbol, parsed)))
