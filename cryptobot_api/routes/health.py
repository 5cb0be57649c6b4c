"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from cryptobot_api.bodies import freshness_body, heartbeats_body
from cryptobot_api.deps import QueryDep, SettingsDep
from cryptobot_api.routes._json import CoreJSONResponse
from cryptobot_api.schemas import HealthPublic, ReadyPublic
from cryptobot_core.errors import StoreError
from cryptobot_core.query import MarketQuery
from cryptobot_core.settings import Settings
from cryptobot_core.universe import current_symbols

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthPublic, summary="Liveness")
async def health() -> CoreJSONResponse:
    """The process answers; says nothing about the store."""
    return CoreJSONResponse({"status": "ok"})


def readiness(query: MarketQuery, settings: Settings) -> tuple[int, dict[str, object]]:
    """Status code and body of /ready (blocking: call from a thread)."""
    exchange = {
        "source": "sim" if settings.simulated else "binance",
        "simulated": settings.simulated,
        "configured": settings.exchange,
        "rest_url": settings.rest_base_url,
        "fallback_reason": settings.exchange_fallback_reason,
    }
    try:
        query.ping()
        datasets = query.freshness(current_symbols(settings, query.store))
        stream = query.heartbeats()
    except StoreError as exc:
        return 503, {
            "status": "unavailable",
            "store": {"reachable": False, "error": str(exc)},
            "exchange": exchange,
            "datasets": None,
            "stream": None,
        }
    return 200, {
        "status": "ready",
        "store": {"reachable": True, "error": None},
        "exchange": exchange,
        "datasets": freshness_body(datasets),
        "stream": heartbeats_body(stream),
    }


@router.get(
    "/ready",
    response_model=ReadyPublic,
    summary="Readiness: store, dataset freshness, exchange source",
    responses={503: {"model": ReadyPublic, "description": "the store is unreachable"}},
)
async def ready(query: QueryDep, settings: SettingsDep) -> CoreJSONResponse:
    """Store reachability, newest candle and age per dataset, exchange in use, heartbeats."""
    status, body = await run_in_threadpool(readiness, query, settings)
    return CoreJSONResponse(body, status_code=status)
