"""A small httpx client of the CryptoBot REST API: typed answers, TTL caching, friendly errors.

Every read goes through ``_get``, which turns transport failures and the API's error body
(``{"error": {"status", "code", "message", "hint"}}``) into ``ApiError`` with a sentence a
person can act on; an answer of an unexpected shape becomes an ``ApiError`` too. Answers are
parsed into the frozen types of ``dashboard.models``.

Caching: the readers are module functions keyed by the base URL and the parameters, under
``st.cache_resource`` with a TTL. The answers are immutable (frozen dataclasses, tuples,
read-only arrays), so every session can share one copy; ``st.cache_data`` would pickle and
unpickle them on every rerun instead (a year of 15m features is 35,040 rows). Exceptions are
never cached, so a page recovers as soon as the API answers again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import httpx
import streamlit as st

from dashboard.models import (
    Candle,
    CandlePage,
    CandleSeries,
    FeatureSeries,
    Gap,
    Health,
    Ready,
    Stats,
    SymbolSummary,
    parse_time,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# Bounded: a slow API must not freeze the page; this is a read-only UI.
TIMEOUT = httpx.Timeout(10.0, connect=2.0)
# The dashboard never charts more than MAX_POINTS (1500) candles, and the live view at most
# 1440: one page of 2000 nearly always does; the bound stops a buggy cursor from looping.
MAX_PAGES = 20
PAGE_LIMIT = 2000
# The API's largest limit, and the step of the 15m feature rows.
FEATURES_MAX_LIMIT = 20_000
FEATURE_STEP_MS = 900_000

# Freshness of reads, in seconds: history changes every 15 min, live data every few seconds.
TTL_STATUS = 10
TTL_HISTORY = 60
TTL_LIVE = 3
# Distinct answers kept per reader: plenty for a few people paging through ranges, bounded
# because a year of features is a few MB.
MAX_ENTRIES = 64


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


def _unavailable(base_url: str, exc: httpx.HTTPError) -> ApiUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        return ApiUnavailable(
            f"The API at {base_url} did not answer in time.",
            hint="It may be starting or overloaded; this page retries by itself.",
        )
    log.info("API request to %s failed: %s", base_url, exc)
    return ApiUnavailable(
        f"The API at {base_url} is not reachable.",
        hint="Start it with `make up` (or `uvicorn cryptobot_api.main:app`), or set "
        "CRYPTOBOT_API_URL; this page retries by itself.",
    )


def _json(base_url: str, path: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ApiError(
            f"The API at {base_url} sent something that is not JSON for {path}.",
            hint="Is CRYPTOBOT_API_URL pointing at the CryptoBot API?",
            status=response.status_code,
        ) from None


def _get(base_url: str, path: str, params: dict[str, Any] | None = None) -> Any:
    """GET ``base_url + path`` and return the decoded JSON, or raise ApiError."""
    url = base_url + path
    clean = {k: v for k, v in (params or {}).items() if v is not None}
    try:
        response = httpx.get(url, params=clean, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise _unavailable(base_url, exc) from None
    if response.status_code >= 400:
        raise _error_from_response(url, response)
    return _json(base_url, path, response)


def _parse(path: str, parse: Callable[[], T]) -> T:
    """Run a parser over an answer; a wrong shape becomes an ApiError that names the path."""
    try:
        return parse()
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ApiError(
            f"The API's answer to {path} is not what this dashboard expects ({detail}).",
            hint="Are the API and the dashboard from the same version of CryptoBot?",
        ) from None


def iso(dt: datetime) -> str:
    """An aware datetime as the ISO 8601 string the API accepts."""
    return dt.isoformat().replace("+00:00", "Z")


def _opt_iso(dt: datetime | None) -> str | None:
    return iso(dt) if dt else None


@st.cache_resource(ttl=TTL_STATUS, max_entries=MAX_ENTRIES, show_spinner=False)
def _health(base_url: str) -> Health:
    body = _get(base_url, "/health")
    return _parse("/health", lambda: Health.from_json(body))


def _ready_uncached(base_url: str) -> Ready:
    try:
        response = httpx.get(base_url + "/ready", timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise _unavailable(base_url, exc) from None
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
        raise _error_from_response(base_url + "/ready", response)
    body = _json(base_url, "/ready", response)
    return _parse("/ready", lambda: Ready.from_json(body))


@st.cache_resource(ttl=TTL_STATUS, max_entries=MAX_ENTRIES, show_spinner=False)
def _ready(base_url: str) -> Ready:
    return _ready_uncached(base_url)


@st.cache_resource(ttl=TTL_STATUS, max_entries=MAX_ENTRIES, show_spinner=False)
def _symbols(base_url: str) -> tuple[SymbolSummary, ...]:
    body = _get(base_url, "/symbols")
    # The charts offer what is stored: a configured symbol without data yet is left out.
    return _parse(
        "/symbols",
        lambda: tuple(
            SymbolSummary.from_json(s) for s in body["symbols"] if s.get("has_data", True)
        ),
    )


def _candles_uncached(
    base_url: str,
    symbol: str,
    interval: str,
    start: str | None,
    end: str | None,
    include_open: bool,
) -> CandleSeries:
    path = f"/candles/{symbol}"
    params: dict[str, Any] = {"interval": interval, "start": start, "end": end, "limit": PAGE_LIMIT}
    if include_open:
        params["include_open"] = "true"
    candles: list[Candle] = []
    source_dataset = ""
    for _ in range(MAX_PAGES):
        body = _get(base_url, path, params)
        page = _parse(path, partial(CandlePage.from_json, body))
        candles.extend(page.candles)
        source_dataset = page.source_dataset or source_dataset
        if not page.next_cursor:
            return CandleSeries(symbol, interval, source_dataset, tuple(candles), truncated=False)
        params["cursor"] = page.next_cursor
    log.warning("stopped paging %s %s after %d pages", symbol, interval, MAX_PAGES)
    return CandleSeries(symbol, interval, source_dataset, tuple(candles), truncated=True)


@st.cache_resource(ttl=TTL_HISTORY, max_entries=MAX_ENTRIES, show_spinner=False)
def _candles(
    base_url: str,
    symbol: str,
    interval: str,
    start: str | None,
    end: str | None,
    include_open: bool,
) -> CandleSeries:
    return _candles_uncached(base_url, symbol, interval, start, end, include_open)


@st.cache_resource(ttl=TTL_LIVE, max_entries=MAX_ENTRIES, show_spinner=False)
def _live_candles(base_url: str, symbol: str, start: str) -> CandleSeries:
    return _candles_uncached(base_url, symbol, "1m", start, None, True)


@st.cache_resource(ttl=TTL_LIVE, max_entries=MAX_ENTRIES, show_spinner=False)
def _latest(base_url: str, symbol: str, interval: str) -> Candle | None:
    path = f"/candles/{symbol}/latest"
    try:
        body = _get(base_url, path, {"interval": interval})
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    return _parse(path, lambda: Candle.from_json(body["candle"]) if body.get("candle") else None)


@st.cache_resource(ttl=TTL_LIVE, max_entries=MAX_ENTRIES, show_spinner=False)
def _stats(base_url: str, symbol: str, interval: str, start: str | None, end: str | None) -> Stats:
    path = f"/stats/{symbol}"
    body = _get(base_url, path, {"interval": interval, "start": start, "end": end})
    return _parse(path, lambda: Stats.from_json(body))


def _feature_rows(body: Any) -> list[dict[str, Any]]:
    return list(body["features"])


def _open_time(row: Any) -> datetime:
    return parse_time(row["open_time"])


@st.cache_resource(ttl=TTL_HISTORY, max_entries=MAX_ENTRIES, show_spinner=False)
def _features(base_url: str, symbol: str, start: str | None, end: str | None) -> FeatureSeries:
    # /features has a row limit but no cursor: ask for the whole range (15m rows), and page
    # on by open time when a range holds more rows than one answer may carry.
    path = f"/features/{symbol}"
    limit = FEATURES_MAX_LIMIT
    if start and end:
        span_ms = (parse_time(end) - parse_time(start)) / timedelta(milliseconds=1)
        limit = max(1, min(FEATURES_MAX_LIMIT, int(span_ms // FEATURE_STEP_MS) + 1))
    rows: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        body = _get(base_url, path, {"start": start, "end": end, "limit": limit})
        page = _parse(path, partial(_feature_rows, body))
        rows.extend(page)
        if len(page) < limit or not start or not page:
            break
        last = _parse(path, partial(_open_time, page[-1]))
        start = iso(last + timedelta(milliseconds=FEATURE_STEP_MS))
    return _parse(path, lambda: FeatureSeries.from_rows(rows))


@st.cache_resource(ttl=TTL_HISTORY, max_entries=MAX_ENTRIES, show_spinner=False)
def _gaps(
    base_url: str, symbol: str, dataset: str, start: str | None, end: str | None
) -> tuple[Gap, ...]:
    path = f"/gaps/{symbol}"
    body = _get(base_url, path, {"dataset": dataset, "start": start, "end": end})
    return _parse(path, lambda: tuple(Gap.from_json(g) for g in body["gaps"]))


@dataclass(frozen=True)
class ApiClient:
    """Cached, typed reads of the API at ``base_url``; every method may raise ApiError."""

    base_url: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    def health(self) -> Health:
        """GET /health."""
        return _health(self.base_url)

    def ready(self) -> Ready:
        """GET /ready: store reachability, exchange source and dataset freshness."""
        return _ready(self.base_url)

    def symbols(self) -> tuple[SymbolSummary, ...]:
        """GET /symbols: every symbol with data, with the extent of each dataset."""
        return _symbols(self.base_url)

    def candles(
        self,
        symbol: str,
        interval: str,
        start: datetime | None = None,
        end: datetime | None = None,
        include_open: bool = False,
    ) -> CandleSeries:
        """Every candle of the range, following the API's cursor (bounded)."""
        return _candles(
            self.base_url, symbol, interval, _opt_iso(start), _opt_iso(end), include_open
        )

    def live_candles(self, symbol: str, start: datetime) -> CandleSeries:
        """1m candles since ``start`` including the open one, cached only briefly."""
        return _live_candles(self.base_url, symbol, iso(start))

    def latest(self, symbol: str, interval: str = "1m") -> Candle | None:
        """The newest candle, or None when the API has none."""
        return _latest(self.base_url, symbol, interval)

    def stats(
        self, symbol: str, interval: str, start: datetime | None = None, end: datetime | None = None
    ) -> Stats:
        """GET /stats: count, open, close, return, volatility, high, low, volume."""
        return _stats(self.base_url, symbol, interval, _opt_iso(start), _opt_iso(end))

    def features(
        self, symbol: str, start: datetime | None = None, end: datetime | None = None
    ) -> FeatureSeries:
        """GET /features: the 15m derived features of the range, as columns."""
        return _features(self.base_url, symbol, _opt_iso(start), _opt_iso(end))

    def gaps(
        self, symbol: str, dataset: str, start: datetime | None = None, end: datetime | None = None
    ) -> tuple[Gap, ...]:
        """GET /gaps: missing stretches of a dataset."""
        return _gaps(self.base_url, symbol, dataset, _opt_iso(start), _opt_iso(end))
