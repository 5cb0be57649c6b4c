"""The Binance REST market-data client: klines, exchange info and server time.

Sync and thread-safe (one pooled ``httpx.Client``); every request goes through one shared
:class:`WeightBudget`, so many threads fetching many symbols stay under the exchange's weight
limit together. Retries are bounded: 5xx, timeouts and connection errors back off
exponentially with jitter; 429 waits ``Retry-After`` (all threads pause); 418 raises unless
the ban is shorter than ``max_ban_wait_s``; any other 4xx raises at once.

A 418 ban is also recorded in a :class:`SharedBan` (the store, for clients made with
``from_settings``): every process then refuses to call the exchange until it ends, without
sending a request, instead of extending the ban by calling on.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from cryptobot_core.errors import (
    BinanceAPIError,
    ExchangeUnavailable,
    InvalidSymbolError,
    IPBannedError,
    RateLimitError,
    StoreError,
    ValidationError,
)
from cryptobot_core.exchange.exchange_info import (
    EXCHANGE_INFO_PATH,
    KLINES_PAGE_LIMIT,
    KLINES_PATH,
    PING_PATH,
    TICKER_24HR_PATH,
    TIME_PATH,
    USED_WEIGHT_HEADER,
    WEIGHTS,
    ExchangeInfo,
    normalize_symbol,
)
from cryptobot_core.exchange.ratelimit import Reservation, WeightBudget
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle

if TYPE_CHECKING:
    from cryptobot_core.settings import Settings

log = logging.getLogger(__name__)

KlinesRequest = tuple[str, "Interval | str", int, int]
# How often a client re-reads the shared ban (seconds): one store read per second at most.
SHARED_BAN_CHECK_S = 1.0


class SharedBan(Protocol):
    """Where a 418 ban is kept so that every process sees it (epoch seconds)."""

    def banned_until(self) -> float | None:
        """The end of the current or last ban, or None (also when it cannot be read)."""
        ...

    def ban(self, until_s: float, reason: str) -> None:
        """Record a ban until ``until_s``."""
        ...


class StoredBan:
    """The shared ban in the document store, keyed by the exchange's REST base URL."""

    def __init__(self, settings: Settings) -> None:
        from cryptobot_core.store import open_store  # the store is optional for this client

        self._store = open_store(settings, timeout_ms=2_000)
        self._key = settings.rest_base_url

    def banned_until(self) -> float | None:
        """The recorded end of the ban; None when there is none or the store is away."""
        try:
            until = self._store.exchange_bans.banned_until(self._key)
        except StoreError as exc:
            log.debug("shared ban not read: %s", exc)
            return None
        return until.timestamp() if until else None

    def ban(self, until_s: float, reason: str) -> None:
        """Record the ban; a store that is away only costs the other processes a 418 each."""
        try:
            self._store.exchange_bans.ban(self._key, datetime.fromtimestamp(until_s, UTC), reason)
        except StoreError as exc:
            log.warning("IP ban not shared with the other processes: %s", exc)

    def close(self) -> None:
        """Close the store client."""
        self._store.close()


# Binance bans last from 2 minutes to 3 days; with no Retry-After assume the shortest.
_DEFAULT_BAN_S = 120.0


@dataclass(slots=True)
class ClientStats:
    """What the client did: requests sent, retries, and limits hit."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 responses
    banned: int = 0  # 418 responses
    server_errors: int = 0  # 5xx responses
    transport_errors: int = 0  # timeouts and connection errors
    weight_reserved: int = 0


def _check_range(start_ms: int, end_ms: int) -> None:
    for name, value in (("start_ms", start_ms), ("end_ms", end_ms)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValidationError(
                f"{name} must be a non-negative integer of epoch ms, got {value!r}"
            )
    if start_ms >= end_ms:
        raise ValidationError(
            f"empty time range: start_ms {start_ms} must be before end_ms {end_ms}"
        )


def windows(
    interval: Interval, start_ms: int, end_ms: int, size: int = KLINES_PAGE_LIMIT
) -> list[tuple[int, int]]:
    """Split [start, end) into windows holding at most ``size`` candle opens each (one page)."""
    if interval.is_calendar:
        return [(start_ms, end_ms)]  # 1000 months is more than any listing has
    step = size * interval.ms
    first = interval.floor(start_ms)
    if first < start_ms:
        first = interval.open_after(first)
    out: list[tuple[int, int]] = []
    lo = start_ms
    edge = first + step
    while lo < end_ms:
        hi = min(edge, end_ms)
        out.append((lo, hi))
        lo, edge = hi, edge + step
    return out


def _retry_after(resp: httpx.Response, default: float) -> float:
    value = resp.headers.get("retry-after")
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def _error_body(resp: httpx.Response) -> tuple[int | None, str]:
    try:
        body = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, resp.text[:200] or resp.reason_phrase
    if isinstance(body, dict) and "msg" in body:
        code = body.get("code")
        return (
            int(code) if isinstance(code, int | str) and str(code).lstrip("-").isdigit() else None
        ), str(body["msg"])
    return None, str(body)[:200]


class BinanceClient:
    """Sync, thread-safe Binance spot market-data client paced by a shared weight budget."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        budget: WeightBudget | None = None,
        max_retries: int = 5,
        clock: Callable[[], float] = time.time,
        backoff: tuple[float, float] = (0.2, 5.0),
        max_ban_wait_s: float = 0.0,
        max_retry_after_s: float = 300.0,
        learn_limits: bool = True,
        max_connections: int = 32,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        shared_ban: SharedBan | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValidationError(f"base_url must start with http:// or https://, got {base_url!r}")
        if max_retries < 0:
            raise ValidationError(f"max_retries must be >= 0, got {max_retries}")
        self.base_url = base_url.rstrip("/")
        self.budget = budget or WeightBudget(clock=clock, sleep=sleep)
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_ban_wait_s = max_ban_wait_s
        self.max_retry_after_s = max_retry_after_s
        self.learn_limits = learn_limits
        self.stats = ClientStats()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._limits_lock = threading.Lock()
        self._server_time_floor: int | None = None  # a server time known to have passed
        self.shared_ban = shared_ban
        self._ban_until = 0.0
        self._ban_read_at = float("-inf")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"User-Agent": "cryptobot/0.1"},
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> BinanceClient:
        """A client for the exchange the settings point at."""
        kwargs.setdefault("timeout_s", settings.http_timeout_s)
        if "shared_ban" not in kwargs:
            kwargs["shared_ban"] = StoredBan(settings)
        return cls(settings.rest_base_url, **kwargs)

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection pool (and the shared ban's store client)."""
        self._http.close()
        close = getattr(self.shared_ban, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> BinanceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the one request path ------------------------------------------------------------

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def request(
        self, path: str, params: Mapping[str, Any] | None = None, *, weight: int | None = None
    ) -> Any:
        """GET ``path`` under the weight budget with bounded retries; returns the JSON body."""
        weight = weight or WEIGHTS.get(path, 1)
        params = dict(params or {})
        attempt = 0
        while True:
            self._respect_shared_ban(path)
            reservation = self.budget.acquire(weight)
            self._count(requests=1, weight_reserved=reservation.weight)
            failure = self._attempt(path, params, reservation, attempt)
            if isinstance(failure, _Success):
                return failure.body
            if attempt >= self.max_retries:
                raise ExchangeUnavailable(
                    f"{path} failed after {attempt + 1} attempts; last error: {failure}"
                )
            attempt += 1
            self._count(retries=1)
            if failure != _RATE_LIMITED:
                lo, hi = self.backoff
                delay = min(hi, lo * 2 ** (attempt - 1))
                # "Equal jitter": keeps a floor so retries never stampede, spreads the rest.
                self._sleep(delay / 2 + random.uniform(0, delay / 2))

    def _attempt(
        self, path: str, params: dict[str, Any], reservation: Reservation, attempt: int
    ) -> _Success | str:
        """One HTTP round trip: the body, or a description of a retryable failure."""
        try:
            resp = self._http.get(path, params=params)
        except httpx.TimeoutException as exc:
            self.budget.release(reservation)
            self._count(transport_errors=1)
            return f"timeout ({type(exc).__name__})"
        except httpx.TransportError as exc:
            self.budget.release(reservation)
            self._count(transport_errors=1)
            return f"connection error ({type(exc).__name__}: {exc})"
        except BaseException:
            self.budget.release(reservation)
            raise
        used = resp.headers.get(USED_WEIGHT_HEADER)
        self.budget.release(reservation, int(used) if used and used.isdigit() else None)
        status = resp.status_code
        if status < 300:
            try:
                # json.loads on the bytes skips httpx's text decoding and charset sniffing.
                return _Success(json.loads(resp.content))
            except (json.JSONDecodeError, UnicodeDecodeError):
                return f"HTTP {status} with a body that is not JSON: {resp.text[:100]!r}"
        if status in (429, 418):
            self._on_limited(resp, attempt)
            return _RATE_LIMITED
        if status >= 500:
            self._count(server_errors=1)
            code, msg = _error_body(resp)
            return f"HTTP {status} (code {code}): {msg}"
        raise self._api_error(resp, params)

    def _respect_shared_ban(self, path: str) -> None:
        """Raise IPBannedError, sending nothing, while a ban recorded by any process lasts."""
        if self.shared_ban is None:
            return
        now = self._clock()
        if now - self._ban_read_at >= SHARED_BAN_CHECK_S:
            self._ban_read_at = now
            until = self.shared_ban.banned_until()
            self._ban_until = max(self._ban_until, until or 0.0)
        wait_s = self._ban_until - now
        if wait_s <= 0:
            return
        if wait_s <= self.max_ban_wait_s:
            self._sleep(wait_s)
            return
        self._count(banned=1)
        until_text = datetime.fromtimestamp(self._ban_until, UTC).isoformat(timespec="seconds")
        raise IPBannedError(
            418,
            None,
            f"{path} not called: the exchange banned this IP until {until_text} (HTTP 418, "
            f"recorded by a process of this deployment); every caller waits {wait_s:.0f} s",
            wait_s,
        )

    def _on_limited(self, resp: httpx.Response, attempt: int) -> None:
        """Handle 429/418: pause every thread for Retry-After, or raise when it is too long."""
        code, msg = _error_body(resp)
        if resp.status_code == 418:
            self._count(banned=1)
            wait_s = _retry_after(resp, _DEFAULT_BAN_S)
            self.budget.pause(wait_s)
            until = self._clock() + wait_s
            self._ban_until = max(self._ban_until, until)
            if self.shared_ban is not None:
                self.shared_ban.ban(until, f"HTTP 418 on {resp.url.path}: {msg}")
            if wait_s > self.max_ban_wait_s or attempt >= self.max_retries:
                raise IPBannedError(
                    418, code, f"{msg} (IP banned; retry after {wait_s:g} s)", wait_s
                )
        else:
            self._count(rate_limited=1)
            # No Retry-After: wait for the next weight window.
            default = self.budget.window_s - (self._clock() % self.budget.window_s)
            wait_s = _retry_after(resp, default)
            self.budget.pause(wait_s)
            if wait_s > self.max_retry_after_s or attempt >= self.max_retries:
                raise RateLimitError(429, code, f"{msg} (retry after {wait_s:g} s)", wait_s)
        log.warning(
            "HTTP %s from %s: %s; waiting %.1f s", resp.status_code, resp.url.path, msg, wait_s
        )

    def _api_error(self, resp: httpx.Response, params: Mapping[str, Any]) -> BinanceAPIError:
        code, msg = _error_body(resp)
        if code == -1121:
            symbol = params.get("symbol") or params.get("symbols")
            if symbol:
                return InvalidSymbolError(str(symbol), msg, resp.status_code)
        return BinanceAPIError(resp.status_code, code, msg)

    # -- simple endpoints ----------------------------------------------------------------

    def ping(self) -> None:
        """Check that the exchange answers."""
        self.request(PING_PATH)

    def server_time_ms(self) -> int:
        """The exchange's current time in epoch milliseconds."""
        body = self.request(TIME_PATH)
        try:
            ms = int(body["serverTime"])
        except (KeyError, TypeError, ValueError):
            raise BinanceAPIError(200, None, f"malformed /api/v3/time response: {body!r}") from None
        self._saw_server_time(ms)
        return ms

    def _saw_server_time(self, ms: int) -> None:
        with self._lock:
            if self._server_time_floor is None or ms > self._server_time_floor:
                self._server_time_floor = ms

    def exchange_info(self, symbols: list[str] | None = None) -> ExchangeInfo:
        """Symbols with their status, the rate limits and the server time."""
        params: dict[str, Any] = {}
        if symbols:
            syms = [normalize_symbol(s) for s in symbols]
            if len(syms) == 1:
                params["symbol"] = syms[0]
            else:
                params["symbols"] = json.dumps(syms, separators=(",", ":"))
        info = ExchangeInfo.from_json(self.request(EXCHANGE_INFO_PATH, params))
        self._saw_server_time(info.server_time_ms)
        weight = info.request_weight
        if weight is not None:
            self.budget.set_limit(weight.limit, weight.window_s)
        return info

    def quote_volumes(self) -> dict[str, Decimal]:
        """Every symbol's 24 h quote volume (one ``/api/v3/ticker/24hr`` call, weight 80)."""
        body = self.request(TICKER_24HR_PATH, {"type": "MINI"})
        try:
            return {str(t["symbol"]): Decimal(str(t["quoteVolume"])) for t in body}
        except (KeyError, TypeError, ValueError, ArithmeticError):
            raise BinanceAPIError(
                200, None, f"malformed /api/v3/ticker/24hr response: {str(body)[:200]}"
            ) from None

    def check_symbols(self, symbols: Iterable[str]) -> tuple[list[str], dict[str, str]]:
        """Split symbols into (valid upper-case ones, {bad symbol: reason}) with one lookup."""
        wanted: list[str] = []
        bad: dict[str, str] = {}
        for raw in symbols:
            try:
                sym = normalize_symbol(raw)
            except ValidationError as exc:
                bad[str(raw)] = str(exc)
                continue
            if sym not in wanted:
                wanted.append(sym)
        if not wanted:
            return [], bad
        try:
            info = self.exchange_info(wanted)
        except InvalidSymbolError:
            # Binance rejects the whole list for one unknown symbol without naming it.
            info = self.exchange_info()
        valid: list[str] = []
        for sym in wanted:
            problem = info.problem(sym)
            if problem is None:
                valid.append(sym)
            else:
                bad[sym] = problem
        return valid, bad

    def validate_symbols(self, symbols: Iterable[str]) -> list[str]:
        """The symbols upper-cased; raises InvalidSymbolError naming the first bad one."""
        symbols = list(symbols)
        valid, bad = self.check_symbols(symbols)
        for raw in symbols:
            key = raw if raw in bad else str(raw).strip().upper()
            if key in bad:
                raise InvalidSymbolError(key, bad[key])
        return valid

    # -- klines --------------------------------------------------------------------------

    def _ensure_limits(self, symbol: str) -> None:
        """Learn the weight limit from exchangeInfo once per budget, before heavy use."""
        if not self.learn_limits or self.budget.limit_known:
            return
        with self._limits_lock:
            if not self.budget.limit_known:
                self.exchange_info([symbol])

    def _now_reference(self, interval: Interval, end_ms: int) -> int:
        """A server time taken before fetching, to decide which candles are closed.

        A candle is closed when its close time is before a server time observed *before*
        the page was served. Ranges that end well in the past need no request once any
        later server time is known; ranges reaching the present ask the server again.
        """
        return self._server_time_after(interval.close_time(interval.floor(end_ms - 1)))

    def _server_time_after(self, last_close: int) -> int:
        """A server time already seen if it is past ``last_close``, else a fresh one."""
        with self._lock:
            known = self._server_time_floor
        if known is not None and last_close < known:
            return known
        return self.server_time_ms()

    def klines(
        self,
        symbol: str,
        interval: Interval | str,
        start_ms: int,
        end_ms: int,
        *,
        include_open: bool = False,
    ) -> list[Candle]:
        """Candles opening in [start_ms, end_ms), ascending, paginated, without the open one."""
        iv = Interval.parse(interval)
        sym = normalize_symbol(symbol)
        _check_range(start_ms, end_ms)
        self._ensure_limits(sym)
        return self._klines(
            sym, iv, start_ms, end_ms, include_open, self._now_reference(iv, end_ms)
        )

    def _klines(
        self,
        sym: str,
        iv: Interval,
        start_ms: int,
        end_ms: int,
        include_open: bool,
        now_ms: int | None,
    ) -> list[Candle]:
        out: list[Candle] = []
        cursor = start_ms
        last_open: int | None = None
        while cursor < end_ms:
            rows = self.request(
                KLINES_PATH,
                {
                    "symbol": sym,
                    "interval": iv.value,
                    "startTime": cursor,
                    "endTime": end_ms - 1,  # Binance's endTime is inclusive on open time
                    "limit": KLINES_PAGE_LIMIT,
                },
            )
            if not isinstance(rows, list):
                raise BinanceAPIError(
                    200, None, f"klines response is not a list: {str(rows)[:200]}"
                )
            # The row's own integer open time: cheaper than converting back from the datetime.
            for row, candle in zip(rows, self._parse_rows(sym, iv, rows, now_ms), strict=True):
                o = int(row[0])
                if last_open is not None and o <= last_open:
                    log.debug("skipping duplicate kline %s %s at %s (page seam)", sym, iv.value, o)
                    continue
                if o < start_ms or o >= end_ms:
                    log.warning(
                        "exchange returned kline %s %s at %s outside [%s, %s)",
                        sym,
                        iv.value,
                        o,
                        start_ms,
                        end_ms,
                    )
                    continue
                last_open = o
                out.append(candle)
            if len(rows) < KLINES_PAGE_LIMIT or last_open is None:
                break  # a short page is the last one: the exchange had nothing more up to endTime
            cursor = iv.open_after(last_open)
        if out and not include_open and not out[-1].is_closed:
            log.debug("dropping still-open kline %s %s at %s", sym, iv.value, out[-1].open_ms)
            out.pop()
        return out

    @staticmethod
    def _parse_rows(sym: str, iv: Interval, rows: list[Any], now_ms: int | None) -> list[Candle]:
        try:
            return Candle.from_rest_rows(sym, iv, rows, now_ms=now_ms)
        except (ValidationError, TypeError, ValueError) as exc:
            raise BinanceAPIError(
                200, None, f"malformed kline row for {sym} {iv.value}: {exc}"
            ) from None

    def klines_many(
        self,
        requests: Iterable[Sequence[Any]],
        *,
        max_workers: int = 8,
        include_open: bool = False,
    ) -> list[list[Candle]]:
        """Fetch many (symbol, interval, start_ms, end_ms) ranges concurrently, one list each.

        Each range is split into one-page windows fetched by a thread pool; all threads share
        the client's weight budget. The first error cancels what has not started and is raised.
        """
        if max_workers < 1:
            raise ValidationError(f"max_workers must be >= 1, got {max_workers}")
        parsed: list[tuple[str, Interval, int, int]] = []
        for req in requests:
            if len(req) != 4:
                raise ValidationError(
                    f"each request must be (symbol, interval, start_ms, end_ms), got {req!r}"
                )
            sym, interval, start_ms, end_ms = req
            iv = Interval.parse(interval)
            _check_range(start_ms, end_ms)
            parsed.append((normalize_symbol(sym), iv, start_ms, end_ms))
        if not parsed:
            return []
        self._ensure_limits(parsed[0][0])
        # One server-time reading for the whole batch, taken before any page is served.
        now_ms = self._server_time_after(
            max(iv.close_time(iv.floor(end - 1)) for _, iv, _, end in parsed)
        )
        jobs = [
            (i, sym, iv, lo, hi)
            for i, (sym, iv, start, end) in enumerate(parsed)
            for lo, hi in windows(iv, start, end)
        ]
        results: list[list[list[Candle]]] = [[] for _ in parsed]
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="klines") as pool:
            futures: list[Future[list[Candle]]] = [
                pool.submit(self._klines, sym, iv, lo, hi, include_open, now_ms)
                for _, sym, iv, lo, hi in jobs
            ]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for fut in pending:
                fut.cancel()
            for fut in futures:
                if fut.done() and not fut.cancelled() and fut.exception() is not None:
                    raise fut.exception()  # type: ignore[misc]
            for (i, *_), fut in zip(jobs, futures, strict=True):
                results[i].append(fut.result())
        # Windows are disjoint and ascending, and _klines keeps each inside its window, so
        # concatenating them in window order gives one ascending list without duplicates.
        return [[c for part in parts for c in part] for parts in results]


@dataclass(frozen=True, slots=True)
class _Success:
    body: Any


_RATE_LIMITED = "rate limited (429/418)"
