"""The FastAPI app: ``uvicorn cryptobot_api.main:app`` (settings are read at start-up)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from cryptobot_api.errors import install_error_handlers
from cryptobot_api.metrics import ApiMetrics, MetricsMiddleware
from cryptobot_api.routes import analytics, candles, health, metrics, stream, symbols
from cryptobot_api.routes.stream import Clients
from cryptobot_core.errors import CryptobotError
from cryptobot_core.query import MarketQuery
from cryptobot_core.settings import Settings, get_settings, redact
from cryptobot_core.store import open_store

log = logging.getLogger(__name__)

DESCRIPTION = """Read-only access to the candles CryptoBot collected from Binance spot.

* Decimals (prices, volumes) are exact **strings**, e.g. `"60123.45000000"`; statistics
  (`return`, `volatility`) and features are floats.
* Times are ISO-8601 UTC with milliseconds and `Z`. `start` and `end` accept ISO-8601 or
  epoch milliseconds; windows are `[start, end)`.
* Every error has one shape: `{"error": {"status", "code", "message", "hint"}}`.
"""


class RefuseBadSettings:
    """Fails start-up on bad settings with uvicorn's one error line, not a traceback."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            try:
                get_settings()
            except CryptobotError as exc:
                await receive()  # lifespan.startup
                await send({"type": "lifespan.startup.failed", "message": f"error: {exc}"})
                return
        await self.app(scope, receive, send)


class SettingsCORS:
    """CORS with origins from the settings, which are only known once the app has started."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._cors: CORSMiddleware | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._cors is None:
            settings: Settings = scope["app"].state.settings
            self._cors = CORSMiddleware(
                self.app,
                allow_origins=settings.api_cors_origins,
                allow_methods=["GET"],
                allow_headers=["*"],
            )
        await self._cors(scope, receive, send)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, its interval and dataset parameters listing what this deployment serves.

    Those depend on the history intervals kept, which are known once the app has started.
    """
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    query: MarketQuery | None = getattr(app.state, "query", None)
    if query is None:
        return schema
    served = [i.value for i in query.served]
    latest = [i.value for i in query.latest_intervals()]
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            for param in operation.get("parameters", []):
                if param.get("in") != "query":
                    continue
                if param["name"] == "interval":
                    param["schema"]["enum"] = latest if path.endswith("/latest") else served
                elif param["name"] == "dataset":
                    param["schema"]["enum"] = list(query.datasets)
    app.openapi_schema = schema
    return schema


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the store client is created in the lifespan, never at import."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = (settings or get_settings()).read_only()
        # pymongo connects lazily and reconnects by itself: a store that is down at start-up
        # or later only makes requests answer 503 until it is back.
        store = open_store(resolved)
        app.state.settings = resolved
        app.state.stream_clients = Clients(resolved.api_stream_max_clients)
        app.state.query = MarketQuery.for_settings(store, resolved)
        log.info("API reading %s at %s", resolved.database, redact(resolved.effective_mongo_uri))
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="CryptoBot API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.metrics = ApiMetrics()
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    for router in (
        health.router,
        symbols.router,
        candles.router,
        analytics.stats_router,
        analytics.features_router,
        analytics.gaps_router,
        stream.router,
        metrics.router,
    ):
        app.include_router(router)
    app.add_middleware(SettingsCORS)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    if settings is None:
        app.add_middleware(RefuseBadSettings)
    return app


app = create_app()
