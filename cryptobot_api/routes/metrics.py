"""Prometheus exposition."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cryptobot_api.deps import QueryDep, SettingsDep
from cryptobot_api.metrics import ApiMetrics
from cryptobot_core.errors import StoreError
from cryptobot_core.universe import current_symbols

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format",
        }
    },
)
async def metrics(request: Request, query: QueryDep, settings: SettingsDep) -> Response:
    """Request counts and latency by route, dataset freshness and stream heartbeat ages."""
    api_metrics: ApiMetrics = request.app.state.metrics
    try:
        symbols = await run_in_threadpool(current_symbols, settings, query.store)
        datasets = await run_in_threadpool(query.freshness, symbols)
        beats = await run_in_threadpool(query.heartbeats)
        api_metrics.set_freshness(datasets, beats)
    except StoreError:
        api_metrics.store_down()
    return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)
