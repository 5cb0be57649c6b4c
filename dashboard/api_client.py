"""A small httpx client of the CryptoBot REST API, with TTL caching and friendly errors.

Every read goes through ``_get``, which turns transport failures and the API's error body
(``{"error": {"status", "code", "message", "hint"}}``) into ``ApiError`` with a sentence a
person can act on. The cached readers are module functions keyed by the base URL, because
``st.cache_data`` hashes arguments; exceptions are never cached, so a page recovers as soon
as the API answers again.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import streamlit as st

log = logging.getLogger(__name__)

# Bounded: a slow API must not freeze the page; this is a read-only UI.
TIMEOUT = httpx.Timeout(10.0, connect=2.0)
# The API pages long results; the dashboard never asks for more than ~2000 points, so a
# handful of pages is plenty and the bound stops a buggy cursor from looping forever.
MAX_PAGES = 20
PAGE_LIMIT = 2000
# The API's largest limit, and the step of the 15m feature rows.
FEATURES_MAX_LIMIT = 20_000
FEATURE_STEP_S = 900

# Freshness of reads, in seconds: history changes every 15 min, live data every few seconds.
TTL_STATUS = 10
TTL_HISTORY = 60
TTL_LIVE = 3


class ApiError(Exception):
    """The API could not answer a read; ``str()`` is a message fit for the page."""

    def __init__(
        self, message: str, *, hint: str = "", status: int | None = None, code: str = ""
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status
        self.code = code


class ApiUnavailable(ApiError):
    """The API did not answer at all (refused, timed out, DNS)."""


def _error_from_response(url: str, response: httpx.Response) -> ApiError:
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return ApiError(
            str(err["message"]),
            hint=str(err.get("hint") or ""),
            status=response.status_code,
            code=str(err.get("code") or ""),
        )
    return ApiError(
        f"The API answered {response.status_code} for {url}.",
        hint="Check the API log for details.",
        status=response.status_code,
    )


def _get(base_url: str, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET ``base_url + path`` and return the decoded JSON, or raise ApiError."""
    url = base_url.rstrip("/") + path
    clean = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        response = httpx.get(url, params=clean, timeout=TIMEOUT)
    except httpx.TimeoutException:
        raise ApiUnavailable(
            f"The API at {base_url} did not answer in time.",
            hint="It may be starting or overloaded; this page retries by itself.",
        ) from None
    except httpx.HTTPError as exc:
        log.info("API request to %s failed: %s", url, exc)
        raise ApiUnavailable(
            f"The API at {base_url} is not reachable.",
            hint="Start it with `make up` (or `uvicorn cryptobot_api.main:app`), or set "
            "CRYPTOBOT_API_URL; this page retries by itself.",
        ) from None
    if response.status_code >= 400:
        raise _error_from_response(url, response)
    try:
        return response.json()
    except ValueError:
        raise ApiError(
            f"The API at {base_url} sent something that is not JSON for {path}.",
            hint="Is CRYPTOBOT_API_URL pointing at the CryptoBot API?",
            status=response.status_code,
        ) from None


def iso(dt: datetime) -> str:
    """An aware datetime as the ISO 8601 string the API accepts."""
    return dt.isoformat().replace("+00:00", "Z")


@st.cache_data(ttl=TTL_STATUS, show_spinner=False)
def _health(base_url: str) -> dict[str, Any]:
    return dict(_get(base_url, "/health"))


def _ready_uncached(base_url: str) -> dict[str, Any]:
    url = base_url.rstrip("/") + "/ready"
    try:
        response = httpx.get(url, timeout=TIMEOUT)
    except httpx.HTTPError:
        return dict(_get(base_url, "/ready"))  # raises the friendly ApiUnavailable
    if response.status_code == 503:
        detail = ""
        with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
            detail = str(response.json()["store"]["error"] or "")
        raise ApiError(
            "The API is up but its document store is not reachable"
            + (f" ({detail})." if detail else "."),
            hint="Start the store (`make up`) or check CRYPTOBOT_MONGO_URI on the API side; "
            "this page retries by itself.",
            status=503,
        )
    if response.status_code >= 400:
        raise _error_from_response(url, response)
    try:
        return dict(response.json())
    except ValueError:
        raise ApiError(
            f"The API at {base_url} sent something that is not JSON for /ready.",
            status=response.status_code,
        ) from None


@st.cache_data(ttl=TTL_STATUS, show_spinner=False)
def _ready(base_url: str) -> dict[str, Any]:
    return _ready_uncached(base_url)


@st.cache_data(ttl=TTL_STATUS, show_spinner=False)
def _symbols(base_url: str) -> list[dict[str, Any]]:
    return list(_get(base_url, "/symbols").get("symbols", []))


def _candles_uncached(
    base_url: str,
    symbol: str,
    interval: str,
    start: str | None,
    end: str | None,
    include_open: bool,
) -> dict[str, Any]:
    params: dict[str, Any] = {"interval": interval, "start": start, "end": end, "limit": PAGE_LIMIT}
    if include_open:
        params["include_open"] = "true"
    rows: list[dict[str, Any]] = []
    source_dataset = ""
    for _ in range(MAX_PAGES):
        body = _get(base_url, f"/candles/{symbol}", params)
        rows.extend(body.get("candles", []))
        source_dataset = str(body.get("source_dataset") or source_dataset)
        cursor = body.get("next_cursor")
        if not cursor:
            return {"candles": rows, "source_dataset": source_dataset, "truncated": False}
        params["cursor"] = cursor
    log.warning("stopped paging %s %s after %d pages", symbol, interval, MAX_PAGES)
    return {"candles": rows, "source_dataset": source_dataset, "truncated": True}


@st.cache_data(ttl=TTL_HISTORY, show_spinner=False)
def _candles(
    base_url: str,
    symbol: str,
    interval: str,
    start: str | None,
    end: str | None,
    include_open: bool,
) -> dict[str, Any]:
    return _candles_uncached(base_url, symbol, interval, start, end, include_open)


@st.cache_data(ttl=TTL_LIVE, show_spinner=False)
def _live_candles(base_url: str, symbol: str, start: str) -> dict[str, Any]:
    return _candles_uncached(base_url, symbol, "1m", start, None, True)


@st.cache_data(ttl=TTL_LIVE, show_spinner=False)
def _latest(base_url: str, symbol: str, interval: str) -> dict[str, Any] | None:
    try:
        body = _get(base_url, f"/candles/{symbol}/latest", {"interval": interval})
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    candle = body.get("candle")
    return dict(candle) if candle else None


@st.cache_data(ttl=TTL_LIVE, show_spinner=False)
def _stats(
    base_url: str, symbol: str, interval: str, start: str | None, end: str | None
) -> dict[str, Any]:
    return dict(
        _get(base_url, f"/stats/{symbol}", {"interval": interval, "start": start, "end": end})
    )


@st.cache_data(ttl=TTL_HISTORY, show_spinner=False)
def _features(
    base_url: str, symbol: str, start: str | None, end: str | None
) -> list[dict[str, Any]]:
    # /features has a row limit but no cursor: ask for the whole range (15m rows), and page
    # on by open time when a range holds more rows than one answer may carry.
    limit = FEATURES_MAX_LIMIT
    if start and end:
        span_s = (_parse_iso(end) - _parse_iso(start)).total_seconds()
        limit = max(1, min(FEATURES_MAX_LIMIT, int(span_s // FEATURE_STEP_S) + 1))
    rows: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        body = _get(base_url, f"/features/{symbol}", {"start": start, "end": end, "limit": limit})
        page = list(body.get("features", []))
        rows.extend(page)
        if len(page) < limit or not start or not page:
            break
        start = iso(_parse_iso(page[-1]["open_time"]) + timedelta(seconds=FEATURE_STEP_S))
    return rows


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@st.cache_data(ttl=TTL_HISTORY, show_spinner=False)
def _gaps(
    base_url: str, symbol: str, dataset: str, start: str | None, end: str | None
) -> list[dict[str, Any]]:
    body = _get(base_url, f"/gaps/{symbol}", {"dataset": dataset, "start": start, "end": end})
    return list(body.get("gaps", []))


@dataclass(frozen=True)
class ApiClient:
    """Cached reads of the API at ``base_url``; every method may raise ApiError."""

    base_url: str

    def health(self) -> dict[str, Any]:
        """GET /health."""
        return _health(self.base_url)

    def ready(self) -> dict[str, Any]:
        """GET /ready: store reachability, exchange source and dataset freshness."""
        return _ready(self.base_url)

    def symbols(self) -> list[dict[str, Any]]:
        """GET /symbols: every stored symbol with the extent of each dataset."""
        return _symbols(self.base_url)

    def candles(
        self,
        symbol: str,
        interval: str,
        start: datetime | None = None,
        end: datetime | None = None,
        include_open: bool = False,
    ) -> dict[str, Any]:
        """Every candle of the range, following the API's cursor (bounded)."""
        return _candles(
            self.base_url,
            symbol,
            interval,
            iso(start) if start else None,
            iso(end) if end else None,
            include_open,
        )

    def live_candles(self, symbol: str, start: datetime) -> dict[str, Any]:
        """1m candles since ``start`` including the open one, cached only briefly."""
        return _live_candles(self.base_url, symbol, iso(start))

    def latest(self, symbol: str, interval: str = "1m") -> dict[str, Any] | None:
        """The newest candle, or None when the API has none."""
        return _latest(self.base_url, symbol, interval)

    def stats(
        self, symbol: str, interval: str, start: datetime | None = None, end: datetime | None = None
    ) -> dict[str, Any]:
        """GET /stats: count, open, close, return, volatility, high, low, volume."""
        return _stats(
            self.base_url,
            symbol,
            interval,
            iso(start) if start else None,
            iso(end) if end else None,
        )

    def features(
        self, symbol: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[dict[str, Any]]:
        """GET /features: the 15m derived features of the range."""
        return _features(
            self.base_url, symbol, iso(start) if start else None, iso(end) if end else None
        )

    def gaps(
        self, symbol: str, dataset: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[dict[str, Any]]:
        """GET /gaps: missing stretches of a dataset."""
        return _gaps(
            self.base_url, symbol, dataset, iso(start) if start else None, iso(end) if end else None
        )
