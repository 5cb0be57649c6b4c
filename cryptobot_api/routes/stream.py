"""Live push of 1m candles as Server-Sent Events."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime

import anyio
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from cryptobot_api.bodies import candle_body
from cryptobot_api.deps import QueryDep, SymbolDep
from cryptobot_api.errors import ERROR_RESPONSES, error_response
from cryptobot_api.schemas import ErrorPublic
from cryptobot_core.errors import StoreError
from cryptobot_core.query import MarketQuery
from cryptobot_core.store import STREAMING_1M

log = logging.getLogger(__name__)
router = APIRouter(prefix="/stream", tags=["stream"])

# A poll of the (symbol, open_time) index every 250 ms keeps delivery well under the
# 1 s target, costs one tiny indexed read per client, and needs no replica set.
POLL_S = 0.25
KEEPALIVE_S = 15.0
STORE_RETRY_S = 1.0
# Over the client cap: when to try again.
RETRY_AFTER_S = 30
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"enum": ["candle", "error", "end"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "candle: a candle as in /candles; error: an error detail; "
            "end: the connection reached its lifetime, reconnect",
        },
    },
}


class Clients:
    """How many live connections are open (one event loop: no lock needed)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open = 0


async def candle_events(
    request: Request, query: MarketQuery, symbol: str, clients: Clients, lifetime_s: float
) -> AsyncIterator[str]:
    """SSE frames: the newest 1m candle first, then every new stored version of a candle."""
    try:
        async for frame in _frames(request, query, symbol, lifetime_s):
            yield frame
    finally:
        clients.open -= 1


async def _frames(
    request: Request, query: MarketQuery, symbol: str, lifetime_s: float
) -> AsyncIterator[str]:
    ends_at = time.monotonic() + lifetime_s
    since: int | None = None
    seen: dict[int, datetime] = {}
    last_sent = time.monotonic()
    store_down = False
    while not await request.is_disconnected():
        if time.monotonic() >= ends_at:
            body = {"reason": f"connections last at most {lifetime_s:g} s", "reconnect": True}
            yield f"event: end\ndata: {json.dumps(body)}\n\n"
            return
        try:
            if since is None:
                newest = await run_in_threadpool(query.newest_open_ms, STREAMING_1M, symbol)
                start = newest if newest is not None else query.now_ms() - 60_000
                # The first read marks recent candles as seen; only the newest is sent.
                fresh, since = await run_in_threadpool(query.updates, symbol, start, seen)
                fresh = fresh[-1:]
            else:
                fresh, since = await run_in_threadpool(query.updates, symbol, since, seen)
        except StoreError as exc:
            if not store_down:
                store_down = True
                log.warning("live push: store failure: %s", exc)
                body = {
                    "status": 503,
                    "code": "store_unavailable",
                    "message": "the document store is not answering; the stream resumes by itself",
                }
                yield f"event: error\ndata: {json.dumps(body)}\n\n"
            await anyio.sleep(STORE_RETRY_S)
            continue
        store_down = False
        for candle in fresh:
            frame = json.dumps(candle_body(candle), separators=(",", ":"))
            yield f"event: candle\ndata: {frame}\n\n"
            last_sent = time.monotonic()
        if time.monotonic() - last_sent >= KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()
        await anyio.sleep(POLL_S)


@router.get(
    "/{symbol}",
    summary="Live 1m candles (Server-Sent Events)",
    response_class=StreamingResponse,
    response_model=None,
    responses={
        200: {
            "content": {"text/event-stream": {"itemSchema": _EVENT_SCHEMA}},
            "description": "event: candle frames whose data is a candle as in /candles; "
            "': keep-alive' comments every 15 s",
        },
        404: {"model": ErrorPublic, "description": "unknown symbol"},
        503: {
            "model": ErrorPublic,
            "description": "the store is not answering, or too many live clients "
            "(Retry-After says when to try again)",
        },
        **ERROR_RESPONSES,
    },
)
async def stream_candles(
    symbol: SymbolDep, query: QueryDep, request: Request
) -> StreamingResponse | JSONResponse:
    """Every new 1m candle update within a second of it landing in the store."""
    await run_in_threadpool(query.require_symbol, symbol)
    settings = request.app.state.settings
    clients: Clients = request.app.state.stream_clients
    if clients.open >= clients.cap:
        return error_response(
            503,
            "too_many_clients",
            f"at most {clients.cap} live clients at once; retry in {RETRY_AFTER_S} s",
            f"GET /candles/{symbol}/latest answers without a connection",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    clients.open += 1
    return StreamingResponse(
        candle_events(request, query, symbol, clients, settings.api_stream_max_lifetime_s),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
