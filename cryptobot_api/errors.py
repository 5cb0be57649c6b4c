"""One JSON error shape for every failure; no stack trace ever reaches a client."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cryptobot_api.schemas import ErrorPublic
from cryptobot_core.errors import CryptobotError, StoreError, StoreUnavailable, ValidationError
from cryptobot_core.query import SYMBOL_HINT, UnknownSymbolError
from cryptobot_core.store import DriverError

log = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {
        "model": ErrorPublic,
        "description": "A parameter is not valid; the message says what is allowed",
    },
    503: {"model": ErrorPublic, "description": "The document store is unreachable; retry later"},
}
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 406: "not_acceptable"}


def error_response(
    status: int,
    code: str,
    message: str,
    hint: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response in the one shape."""
    return JSONResponse(
        {"error": {"status": status, "code": code, "message": message, "hint": hint}},
        status_code=status,
        headers=dict(headers) if headers else None,
    )


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("query", "path", "body", "header")]
    return ".".join(parts) or "request"


async def _unknown_symbol(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "unknown_symbol", str(exc), SYMBOL_HINT)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    return error_response(422, "invalid_parameter", str(exc), "GET /docs describes every parameter")


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    messages = [f"{_field(tuple(e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors()]
    return error_response(
        422, "invalid_parameter", "; ".join(messages), "GET /docs describes every parameter"
    )


async def _store(_: Request, exc: Exception) -> JSONResponse:
    log.warning("store failure: %s", exc)
    unavailable = isinstance(exc, StoreUnavailable | DriverError)
    return error_response(
        503,
        "store_unavailable" if unavailable else "store_error",
        "the document store is not answering; the API reconnects by itself, retry shortly"
        if unavailable
        # The driver's text names hosts, users and internals: it goes to the log only.
        else "the document store refused the query; the API log has the details",
        "GET /ready shows the store status",
    )


async def _cryptobot(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled CryptobotError: %s", exc)
    return error_response(503, "service_error", str(exc))


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    hint = "GET /docs lists the endpoints" if exc.status_code == 404 else None
    return error_response(
        exc.status_code,
        _HTTP_CODES.get(exc.status_code, "http_error"),
        str(exc.detail),
        hint,
        headers=exc.headers,  # e.g. Allow on 405
    )


async def _internal(_: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error", exc_info=exc)
    return error_response(500, "internal_error", "internal error; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the one error shape (most specific first)."""
    app.add_exception_handler(UnknownSymbolError, _unknown_symbol)
    app.add_exception_handler(ValidationError, _validation)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StoreError, _store)
    app.add_exception_handler(DriverError, _store)
    app.add_exception_handler(CryptobotError, _cryptobot)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _internal)
