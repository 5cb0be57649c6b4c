"""The exchange decision: ``auto`` becomes Binance when it answers, else the simulator."""

from __future__ import annotations

import logging

import httpx

from cryptobot_core.settings import Settings

logger = logging.getLogger(__name__)

AUTO_PING_TIMEOUT_S = 5.0


def resolve_exchange(settings: Settings, timeout: float = AUTO_PING_TIMEOUT_S) -> Settings:
    """Settings with a concrete exchange: ``auto`` becomes ``binance`` if it answers, else ``sim``."""
    if settings.exchange != "auto":
        return settings
    url = f"{settings.binance_rest_url.rstrip('/')}/api/v3/ping"
    try:
        response = httpx.get(url, timeout=timeout)
        if response.status_code == 200:
            logger.info("exchange=auto: Binance answered %s, using Binance", url)
            return settings.model_copy(
                update={"exchange": "binance", "exchange_fallback_reason": None}
            )
        reason = f"{url} answered HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        reason = f"{url} did not answer within {timeout:g} s ({type(exc).__name__}: {exc})"
    logger.warning(
        "\n%s\n  exchange=auto: Binance is NOT reachable: %s\n"
        "  USING THE BUILT-IN SIMULATOR: prices are synthetic and are stored in the "
        "database %r, apart from real data.\n  Set CRYPTOBOT_EXCHANGE=binance or "
        "CRYPTOBOT_EXCHANGE=sim to choose explicitly.\n%s",
        "!" * 78,
        reason,
        settings.model_copy(update={"exchange": "sim"}).database,
        "!" * 78,
    )
    return settings.model_copy(update={"exchange": "sim", "exchange_fallback_reason": reason})
