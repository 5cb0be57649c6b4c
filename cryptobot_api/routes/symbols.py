"""Symbols that have data."""

from __future__ import annotations

from fastapi import APIRouter

from cryptobot_api.bodies import symbols_body
from cryptobot_api.deps import QueryDep
from cryptobot_api.errors import ERROR_RESPONSES
from cryptobot_api.routes._json import CoreJSONResponse
from cryptobot_api.schemas import SymbolsPublic

router = APIRouter(prefix="/symbols", tags=["symbols"])


@router.get("", response_model=SymbolsPublic, responses=ERROR_RESPONSES)
def list_symbols(query: QueryDep) -> CoreJSONResponse:
    """Every symbol with data: first and last open time and count per dataset (1m, 15m)."""
    return CoreJSONResponse(symbols_body(query.symbols()))
