"""Candles: ranges, resampling, pagination and the latest candle."""

from __future__ import annotations

import os
import tempfile
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from cryptobot_api.bodies import latest_body, page_body
from cryptobot_api.deps import EndDep, IntervalDep, LimitDep, QueryDep, StartDep, SymbolDep
from cryptobot_api.errors import ERROR_RESPONSES
from cryptobot_api.routes._json import CoreJSONResponse
from cryptobot_api.schemas import CandlesPublic, ErrorPublic, LatestPublic
from cryptobot_core import export
from cryptobot_core.intervals import Interval
from cryptobot_core.query import (
    DEFAULT_LIMIT,
    EPOCH_MS_PATTERN,
    MAX_EXPORT_SLOTS,
    MAX_LIMIT,
    MarketQuery,
    iso,
    parse_interval,
)

router = APIRouter(prefix="/candles", tags=["candles"])
_RESPONSES = {**ERROR_RESPONSES, 404: {"model": ErrorPublic, "description": "unknown symbol"}}
_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON by default; with format=csv or format=parquet, the whole range "
        "as one file (X-Window-Start and X-Window-End give the window covered)",
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.get(
    "/{symbol}",
    response_model=CandlesPublic,
    responses={**_RESPONSES, **_FILE_RESPONSES},
    description=(
        "Candles with open_time in [start, end), oldest first. Decimals are exact strings. "
        f"limit defaults to {DEFAULT_LIMIT}, at most {MAX_LIMIT}. Without start, the newest "
        "limit candles before end. Intervals above 15m are resampled from 15m history; only "
        "complete buckets unless include_open. Past the end of history, 15m and coarser "
        "go on from the 1m stream, marked provisional. Follow next_cursor for the next page. "
        "start >= end is an empty window: no candles. format=csv or format=parquet returns "
        "the whole range as one file instead of a page: CSV streamed with exact decimal "
        "strings, Parquet with decimal128(38, 8) columns; a range is at most "
        f"{MAX_EXPORT_SLOTS:,} source candles, narrowed to end at the newest stored one."
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
    format: Annotated[
        Literal["json", "csv", "parquet"],
        Query(
            description="json: one page. csv or parquet: the whole [start, end) range as a "
            "file of closed candles (limit, cursor and include_open do not apply)"
        ),
    ] = "json",
) -> Response:
    """Candles with open_time in [start, end), oldest first, at most ``limit``.

    Without ``start`` the newest ``limit`` candles before ``end`` are returned. Follow
    ``next_cursor`` for the next page. ``format=csv|parquet`` returns the range as a file.
    """
    if format != "json":
        return _range_file(query, symbol, interval, start, end, format)
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


def _range_file(
    query: MarketQuery,
    symbol: str,
    interval: Interval,
    start: int | None,
    end: int | None,
    fmt: export.Format,
) -> Response:
    """The range as CSV (streamed) or Parquet (written to a temporary file first).

    The first page is read before the response starts, so an unknown symbol or an
    unreachable store is still a JSON error. A store lost mid-stream aborts the transfer:
    the client sees an incomplete body, never a silently short file.
    """
    window = query.export_window(symbol, interval, start, end)
    lo, hi = window if window is not None else (start or 0, start or 0)
    name = f"{symbol}-{interval.value}-{iso(lo)}-{iso(hi)}.{fmt}".replace(":", "")
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "X-Window-Start": iso(lo),
        "X-Window-End": iso(hi),
    }
    batches = export.first_nonempty(export.pages(query, symbol, interval, lo, hi)) or iter(())
    if fmt == "csv":
        return StreamingResponse(
            export.csv_chunks(batches), media_type=export.MEDIA_TYPES["csv"], headers=headers
        )
    fd, path = tempfile.mkstemp(prefix="cryptobot-", suffix=".parquet")
    try:
        with os.fdopen(fd, "wb") as out:
            export.write_parquet(batches, out)
    except BaseException:
        os.unlink(path)
        raise
    return FileResponse(
        path,
        media_type=export.MEDIA_TYPES["parquet"],
        headers=headers,
        background=BackgroundTask(os.unlink, path),
    )


@router.get("/{symbol}/latest", response_model=LatestPublic, responses=_RESPONSES)
async def get_latest(
    symbol: SymbolDep,
    query: QueryDep,
    interval: Annotated[
        str,
        Query(
            description="1m (the stream), 15m or another history interval kept "
            "(CRYPTOBOT_HISTORY_INTERVALS)",
            examples=["1m", "15m"],
        ),
    ] = "1m",
) -> CoreJSONResponse:
    """The newest stored candle, open or closed (see ``is_closed``).

    ``async``: an answer read in the last 0.1 s is served from the event loop; only a
    store read goes to a worker thread (docs/benchmarks/api.md).
    """
    parsed = parse_interval(interval, query.latest_intervals())
    latest = query.recent_latest(symbol, parsed)
    if latest is None:
        latest = await run_in_threadpool(query.latest, symbol, parsed)
    return CoreJSONResponse(latest_body(latest))
