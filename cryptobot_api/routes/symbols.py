"""The configured symbols (a list or a rule's universe) and every symbol that has data."""

from __future__ import annotations

from fastapi import APIRouter

from cryptobot_api.bodies import symbols_body
from cryptobot_api.deps import QueryDep, SettingsDep
from cryptobot_api.errors import ERROR_RESPONSES
from cryptobot_api.routes._json import CoreJSONResponse
from cryptobot_api.schemas import SymbolsPublic
from cryptobot_core import universe

router = APIRouter(prefix="/symbols", tags=["symbols"])


@router.get("", response_model=SymbolsPublic, responses=ERROR_RESPONSES)
def list_symbols(query: QueryDep, settings: SettingsDep) -> CoreJSONResponse:
    """Every configured symbol and every symbol with data: whether it is configured, whether
    it has data, and its first and last open time and count per dataset (1m, 15m).

    ``universe`` says whether CRYPTOBOT_SYMBOLS is a list or a rule (top:50:USDT), and when
    the rule was last resolved. A symbol that left the universe keeps its data and shows
    ``configured: false``.
    """
    return CoreJSONResponse(symbols_body(query.symbols(), universe.status(settings, query.store)))
