"""The REST side of the simulator: Binance's paths, parameters, weights, errors and limits."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.simulator.clock import SimClock
from cryptobot_core.simulator.config import STATUSES, SimConfig, SymbolListing
from cryptobot_core.simulator.faults import Faults, Stats
from cryptobot_core.simulator.market import DEFAULT_LIMIT, MAX_LIMIT, Market, fmt_units
from cryptobot_core.simulator.ticker import Tickers

log = logging.getLogger(__name__)

# Exchange facts as data (Binance spot docs, rest-api.md / errors.md).
WEIGHTS = {
    "/api/v3/ping": 1,
    "/api/v3/time": 1,
    "/api/v3/exchangeInfo": 20,
    "/api/v3/klines": 2,
    "/api/v3/uiKlines": 2,
    "/api/v3/ticker/24hr": 80,  # without symbol(s); see ticker_weight()
}
TICKER_PATH = "/api/v3/ticker/24hr"
TICKER_TYPES = ("FULL", "MINI")
TICKER_STATUSES = ("TRADING", "HALT", "BREAK")
PARAMS = {
    "/api/v3/ping": frozenset(),
    "/api/v3/time": frozenset(),
    "/api/v3/exchangeInfo": frozenset(
        {"symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"}
    ),
    "/api/v3/klines": frozenset(
        {"symbol", "interval", "startTime", "endTime", "timeZone", "limit"}
    ),
    "/api/v3/uiKlines": frozenset(
        {"symbol", "interval", "startTime", "endTime", "timeZone", "limit"}
    ),
    "/api/v3/ticker/24hr": frozenset({"symbol", "symbols", "type", "symbolStatus"}),
}
SYMBOL_PARAM_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
SYMBOLS_LEGAL = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
SYMBOLS_PARAM_RE = re.compile(r'^\[("[A-Z0-9\-_.]{1,20}"(,"[A-Z0-9\-_.]{1,20}"){0,}){0,1}\]$')
LONG_RE = re.compile(r"^[0-9]{1,20}$")
UTC_ZONES = frozenset({"0", "+0", "-0", "00:00", "+00:00", "-00:00", "0:00", "+0:00", "-0:00"})
JSON_CT = "application/json;charset=UTF-8"


class BinanceHTTPError(Exception):
    """An error response in Binance's shape: HTTP status and {"code", "msg"}."""

    def __init__(
        self, code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None
    ) -> None:
        self.code = code
        self.msg = msg
        self.status = status
        self.headers = headers or {}
        super().__init__(f"{status} {code} {msg}")


def mandatory(name: str) -> BinanceHTTPError:
    """-1102 for a missing or empty parameter."""
    return BinanceHTTPError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str, legal: str) -> BinanceHTTPError:
    """-1100 for a parameter with characters outside its legal range."""
    return BinanceHTTPError(
        -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def not_valid(name: str) -> BinanceHTTPError:
    """-1130 for a parameter whose value is not allowed."""
    return BinanceHTTPError(-1130, f"Data sent for parameter '{name}' is not valid.")


def ticker_weight(query: Any) -> int:
    """Weight of /api/v3/ticker/24hr: 2 for one symbol, 2/40/80 for 1-20/21-100/more, 80 all."""
    if query.get("symbol"):
        return 2
    raw = query.get("symbols")
    if not raw:
        return 80
    count = raw.count(",") + 1
    return 2 if count <= 20 else 40 if count <= 100 else 80


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(),
        status=status,
        content_type=None,
        headers={"Content-Type": JSON_CT},
    )


def _json_text(text: str) -> web.Response:
    return web.Response(body=text.encode(), headers={"Content-Type": JSON_CT})


class WeightLimiter:
    """REQUEST_WEIGHT per minute of the simulated clock, with 429s and then a 418 ban.

    Also holds the on-demand refusals (``Faults.ban_ip`` / ``Faults.throttle``): until
    ``banned_until_ms`` every request gets 418, until ``throttled_until_ms`` 429.
    """

    def __init__(self, config: SimConfig, clock: SimClock, stats: Stats) -> None:
        self.config = config
        self.clock = clock
        self.stats = stats
        self.banned_until_ms = 0
        self.throttled_until_ms = 0
        self._429s: dict[int, int] = {}

    @property
    def window_ms(self) -> int:
        """The weight window (one minute on Binance)."""
        return self.config.weight_window_s * 1000

    def used(self) -> int:
        """Weight used in the current window."""
        now = self.clock.now_ms()
        return self.stats.used_weight(now - now % self.window_ms)

    def _retry_after(self, sim_ms: int) -> str:
        return str(max(1, math.ceil(self.clock.real_seconds(sim_ms))))

    def refuse(self, status: int, seconds: float) -> None:
        """Refuse every request with ``status`` (418 or 429) for ``seconds`` simulated seconds
        from now; 0 lifts it."""
        until = self.clock.now_ms() + int(seconds * 1000) if seconds > 0 else 0
        if status == 418:
            self.banned_until_ms = until
            if until:
                self.stats.add("bans")
                log.info("simulator: IP banned on demand until %s", until)
        else:
            self.throttled_until_ms = until

    def _banned(self, now: int) -> BinanceHTTPError:
        return BinanceHTTPError(
            -1003,
            f"Way too much request weight used; IP banned until {self.banned_until_ms}. "
            "Please use WebSocket Streams for live updates to avoid bans.",
            status=418,
            headers={"Retry-After": self._retry_after(self.banned_until_ms - now)},
        )

    def refusal(self, websocket: bool = False) -> BinanceHTTPError | None:
        """The 418 of a ban (REST and WebSocket handshakes) or 429 of a throttle (REST), if any.

        Every refused request is counted, so a test can check that a client kept away.
        """
        now = self.clock.now_ms()
        if now < self.banned_until_ms:
            self.stats.add("requests_during_ban")
            return self._banned(now)
        if not websocket and now < self.throttled_until_ms:
            self.stats.add("requests_during_throttle")
            return BinanceHTTPError(
                -1003,
                "Too many requests; current limit of IP is "
                f"{self.config.weight_limit} request weight per 1 MINUTE. Please use WebSocket "
                "Streams for live updates to avoid polling the API.",
                status=429,
                headers={"Retry-After": self._retry_after(self.throttled_until_ms - now)},
            )
        return None

    def charge(self, weight: int) -> None:
        """Count a request's weight; raise the 429/418 error when the budget is spent."""
        now = self.clock.now_ms()
        minute = now - now % self.window_ms
        used = self.stats.add_weight(minute, weight)
        if used <= self.config.weight_limit:
            return
        count = self._429s.get(minute, 0) + 1
        self._429s = {minute: count}
        if count > self.config.ban_after_429s:
            # Clients that keep hammering after 429s get banned, as on Binance.
            self.banned_until_ms = now + int(self.config.ban_s * 1000)
            self.stats.add("bans")
            log.info("simulator: IP banned until %s after %s 429s", self.banned_until_ms, count - 1)
            raise self._banned(now)
        raise BinanceHTTPError(
            -1003,
            f"Too much request weight used; current limit is {self.config.weight_limit} request "
            "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling "
            "the API.",
            status=429,
            headers={"Retry-After": self._retry_after(minute + self.window_ms - now)},
        )


def _symbol_info(s: SymbolListing) -> dict[str, Any]:
    pd, qd = s.price_decimals, s.qty_decimals
    tick = fmt_units(1, pd)
    step = fmt_units(1, qd)
    return {
        "symbol": s.symbol,
        "status": s.status,
        "baseAsset": s.base_asset,
        "baseAssetPrecision": 8,
        "quoteAsset": s.quote_asset,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "amendAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000.00000000",
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": step,
                "maxQty": "9000000.00000000",
                "stepSize": step,
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": "100000.00000000",
                "stepSize": "0.00000000",
            },
            {
                "filterType": "TRAILING_DELTA",
                "minTrailingAboveDelta": 10,
                "maxTrailingAboveDelta": 2000,
                "minTrailingBelowDelta": 10,
                "maxTrailingBelowDelta": 2000,
            },
            {
                "filterType": "PERCENT_PRICE_BY_SIDE",
                "bidMultiplierUp": "5",
                "bidMultiplierDown": "0.2",
                "askMultiplierUp": "5",
                "askMultiplierDown": "0.2",
                "avgPriceMins": 5,
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": [
            "NONE",
            "EXPIRE_TAKER",
            "EXPIRE_MAKER",
            "EXPIRE_BOTH",
            "DECREMENT",
        ],
    }


def exchange_info(config: SimConfig, now_ms: int, symbols: list[SymbolListing]) -> dict[str, Any]:
    """The /api/v3/exchangeInfo body for ``symbols``."""
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                **(
                    {"interval": "MINUTE", "intervalNum": config.weight_window_s // 60}
                    if config.weight_window_s % 60 == 0
                    else {"interval": "SECOND", "intervalNum": config.weight_window_s}
                ),
                "limit": config.weight_limit,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
            {
                "rateLimitType": "RAW_REQUESTS",
                "interval": "MINUTE",
                "intervalNum": 5,
                "limit": 300000,
            },
        ],
        "exchangeFilters": [],
        "symbols": [_symbol_info(s) for s in symbols],
    }


def _param(query: Any, name: str) -> str | None:
    values = query.getall(name, [])
    if not values:
        return None
    if values[0] == "":
        raise mandatory(name)
    return str(values[0])


def _long(query: Any, name: str) -> int | None:
    value = _param(query, name)
    if value is None:
        return None
    if not LONG_RE.match(value):
        raise illegal(name, "^[0-9]{1,20}$")
    return int(value)


@dataclass
class Rest:
    """Request handlers bound to one simulated exchange."""

    config: SimConfig
    market: Market
    faults: Faults
    stats: Stats
    limiter: WeightLimiter
    tickers: Tickers = field(init=False)
    # Each symbol's exchangeInfo entry, serialised once: 1,500 symbols make a 3 MB body.
    _symbol_json: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.tickers = Tickers(self.market)

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes of every REST endpoint."""
        return [
            web.get("/api/v3/ping", self.ping),
            web.get("/api/v3/time", self.time),
            web.get("/api/v3/exchangeInfo", self.exchange_info),
            web.get("/api/v3/klines", self.klines),
            web.get("/api/v3/uiKlines", self.klines),
            web.get("/api/v3/ticker/24hr", self.ticker_24hr),
        ]

    def ws_gate(self) -> web.StreamResponse | None:
        """The 418 answer to a WebSocket handshake while the IP is banned, else None."""
        err = self.limiter.refusal(websocket=True)
        if err is None:
            return None
        resp = _json({"code": err.code, "msg": err.msg}, status=err.status)
        resp.headers.update(err.headers)
        return resp

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Latency, injected faults, weight accounting, Binance error bodies and headers."""
        path = request.path
        if path not in WEIGHTS:
            # Not REST (the WebSocket paths) or unknown: no weight, no REST faults.
            return await handler(request)
        resp: web.StreamResponse
        try:
            if self.faults.latency_s > 0:
                await asyncio.sleep(self.faults.latency_s)
            refusal = self.limiter.refusal()
            if refusal is not None:
                raise refusal
            self._inject()
            weight = ticker_weight(request.query) if path == TICKER_PATH else WEIGHTS[path]
            self.limiter.charge(weight)
            self._check_params(request)
            resp = await handler(request)
        except BinanceHTTPError as err:
            resp = _json({"code": err.code, "msg": err.msg}, status=err.status)
            resp.headers.update(err.headers)
        except _Injected5xx as err:
            resp = err.response
        except Exception:  # never a stack trace to the client; log it here instead
            log.exception("simulator: unexpected error serving %s", request.path_qs)
            resp = _json(
                {"code": -1000, "msg": "An unknown error occurred while processing the request."},
                status=500,
            )
        used = str(self.limiter.used())
        resp.headers["X-MBX-USED-WEIGHT-1M"] = used
        resp.headers["X-MBX-USED-WEIGHT"] = used
        self.stats.record(path, resp.status)
        return resp

    def _inject(self) -> None:
        f = self.faults
        if f.chance(f.rate_418):
            raise BinanceHTTPError(
                -1003,
                "Way too much request weight used; IP banned until "
                f"{self.limiter.clock.now_ms() + f.retry_after_s * 1000}. Please use WebSocket "
                "Streams for live updates to avoid bans.",
                status=418,
                headers={"Retry-After": str(f.retry_after_s)},
            )
        if f.chance(f.rate_429):
            raise BinanceHTTPError(
                -1003,
                "Too many requests; please use WebSocket Streams for live updates.",
                status=429,
                headers={"Retry-After": str(f.retry_after_s)},
            )
        if f.chance(f.error_5xx_rate):
            status = f.choice([500, 502, 503, 504])
            if status in (500, 503):
                resp = _json(
                    {
                        "code": -1001,
                        "msg": "Internal error; unable to process your request. Please try again.",
                    },
                    status=status,
                )
            else:
                # What a CDN in front of Binance answers: HTML, not JSON.
                resp = web.Response(
                    status=status,
                    content_type="text/html",
                    text=f"<html><body><h1>{status} Gateway error</h1></body></html>",
                )
            raise _Injected5xx(resp)

    def _check_params(self, request: web.Request) -> None:
        allowed = PARAMS[request.path]
        keys = [k for k, _ in request.query.items()]
        if len(set(keys)) != len(keys):
            raise BinanceHTTPError(-1101, "Duplicate values for a parameter detected.")
        read = [k for k in keys if k in allowed]
        if len(read) != len(keys):
            raise BinanceHTTPError(
                -1104,
                f"Not all sent parameters were read; read '{len(read)}' parameter(s) but "
                f"was sent '{len(keys)}'.",
            )

    async def ping(self, request: web.Request) -> web.Response:
        """GET /api/v3/ping."""
        return _json({})

    async def time(self, request: web.Request) -> web.Response:
        """GET /api/v3/time."""
        return _json({"serverTime": self.market.clock.now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        """GET /api/v3/exchangeInfo with optional symbol / symbols / symbolStatus."""
        q = request.query
        status = _param(q, "symbolStatus")
        named = self._named_listings(q)
        listings = list(self.config.symbols) if named is None else named
        if status is not None:
            if named is not None:
                raise BinanceHTTPError(-1128, "Combination of optional parameters invalid.")
            if status not in STATUSES:
                raise not_valid("symbolStatus")
            listings = [s for s in listings if s.status == status]
        body = json.dumps(
            exchange_info(self.config, self.market.clock.now_ms(), []), separators=(",", ":")
        )
        entries = ",".join(self._symbol_entry(s) for s in listings)
        return _json_text(body[: -len("[]}")] + "[" + entries + "]}")

    def _symbol_entry(self, listing: SymbolListing) -> str:
        text = self._symbol_json.get(listing.symbol)
        if text is None:
            text = json.dumps(_symbol_info(listing), separators=(",", ":"))
            self._symbol_json[listing.symbol] = text
        return text

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        """GET /api/v3/ticker/24hr with optional symbol / symbols / type / symbolStatus."""
        q = request.query
        kind, status = _param(q, "type") or "FULL", _param(q, "symbolStatus")
        named = self._named_listings(q)
        if kind not in TICKER_TYPES:
            raise not_valid("type")
        if status is not None and status not in TICKER_STATUSES:
            raise not_valid("symbolStatus")
        single = _param(q, "symbol") is not None
        listings = list(self.config.symbols) if named is None else named
        if single and status is not None and listings[0].status != status:
            raise BinanceHTTPError(
                -1220, "The symbol's status does not match the requested symbolStatus."
            )
        if status is not None:
            listings = [s for s in listings if s.status == status]
        now = self.market.clock.now_ms()
        # The first request of a minute aggregates 24 h of every symbol: off the event loop.
        loop = asyncio.get_running_loop()
        tickers = await loop.run_in_executor(None, self.tickers.tickers, now, kind == "MINI")
        if single:
            return _json_text(tickers[listings[0].symbol])
        return _json_text("[" + ",".join(tickers[s.symbol] for s in listings) + "]")

    def _named_listings(self, q: Any) -> list[SymbolListing] | None:
        """The listings named by ``symbol`` or ``symbols`` (validated), None if neither."""
        symbol, symbols_raw = _param(q, "symbol"), _param(q, "symbols")
        if symbol is not None and symbols_raw is not None:
            raise BinanceHTTPError(-1128, "Combination of optional parameters invalid.")
        if symbol is not None:
            if not SYMBOL_PARAM_RE.match(symbol):
                raise illegal("symbol", "^[A-Z0-9-_.]{1,20}$")
            return self._lookup([symbol])
        if symbols_raw is None:
            return None
        if not SYMBOLS_PARAM_RE.match(symbols_raw):
            raise illegal("symbols", SYMBOLS_LEGAL)
        names = json.loads(symbols_raw)
        if not names:
            raise mandatory("symbols")
        return self._lookup(names)

    def _lookup(self, names: list[str]) -> list[SymbolListing]:
        out = []
        for name in names:
            listing = self.config.listing(name)
            if listing is None:
                raise BinanceHTTPError(-1121, "Invalid symbol.")
            out.append(listing)
        return out

    async def klines(self, request: web.Request) -> web.Response:
        """GET /api/v3/klines and /api/v3/uiKlines."""
        q = request.query
        symbol = _param(q, "symbol")
        if symbol is None:
            raise mandatory("symbol")
        if not SYMBOL_PARAM_RE.match(symbol):
            raise illegal("symbol", "^[A-Z0-9-_.]{1,20}$")
        interval = _param(q, "interval")
        if interval is None:
            raise mandatory("interval")
        start, end = _long(q, "startTime"), _long(q, "endTime")
        limit = _long(q, "limit")
        tz = _param(q, "timeZone")
        if tz is not None and tz not in UTC_ZONES:
            raise BinanceHTTPError(
                -1130,
                "Data sent for parameter 'timeZone' is not valid. The simulator serves "
                "UTC only (timeZone=0).",
            )
        if limit is None:
            limit = DEFAULT_LIMIT
        elif not 1 <= limit <= MAX_LIMIT:
            raise not_valid("limit")
        try:
            iv = Interval(interval)
        except ValueError:
            raise BinanceHTTPError(-1120, "Invalid interval.") from None
        if self.config.listing(symbol) is None:
            raise BinanceHTTPError(-1121, "Invalid symbol.")
        if start is not None and end is not None and start > end:
            raise BinanceHTTPError(-1023, "Start time is greater than end time.")
        try:
            body = self.market.klines_json(symbol, iv, start, end, limit)
        except ValidationError as exc:  # defensive: every case above should have caught it
            raise BinanceHTTPError(-1130, str(exc)) from None
        return _json_text(body)


class _Injected5xx(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response
        super().__init__(response.status)
