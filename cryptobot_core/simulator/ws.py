"""The WebSocket side: raw and combined kline streams, control messages, keepalive, faults.

One send loop per connection ticks every 50 ms and does work proportional to what is due:
finals whose close has passed (only when the earliest one is due), then the open-candle
updates whose time has come (a heap ordered by due time, phases spread over one update
period so 1,500 streams give a steady flow, not bursts). Values come from ``LiveCandles``
(incremental, exact) and frames are built with one string template, never through
``Candle``/``json.dumps``. Frames are sent uncompressed (no permessage-deflate).
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.models import Candle, dec_str
from cryptobot_core.simulator.clock import ClockMode
from cryptobot_core.simulator.config import SimConfig
from cryptobot_core.simulator.faults import Faults, Stats
from cryptobot_core.simulator.live import LiveCandles
from cryptobot_core.simulator.market import TB, TQ, C, H, L, Market, N, O, Q, V, fmt_units

log = logging.getLogger(__name__)

STREAM_RE = re.compile(r"^([a-z0-9]{2,20})@kline_([0-9]+[smhdwM])$")
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
# Real-time floor between two open-candle updates of one stream, so an accelerated clock
# never floods a client (finals are never throttled).
MIN_UPDATE_GAP_S = 0.5
TICK_S = 0.05
# Golden-ratio steps spread the update phases of successive streams evenly over a period.
_PHI = 0.6180339887498949
_NEVER = 2**62

_EVENT = (
    '{"e":"kline","E":%d,"s":"%s","k":{"t":%d,"T":%d,"s":"%s","i":"%s","f":%d,"L":%d,'
    '"o":"%s","c":"%s","h":"%s","l":"%s","v":"%s","n":%d,"x":%s,"q":"%s","V":"%s","Q":"%s",'
    '"B":"0"}}'
)


def kline_event(c: Candle, event_ms: int) -> dict[str, Any]:
    """Binance's kline event for candle ``c`` sent at ``event_ms`` (the reference shape)."""
    first = -1 if c.trades == 0 else (c.open_ms // MINUTE_MS) * 100_000
    last = -1 if c.trades == 0 else first + c.trades - 1
    return {
        "e": "kline",
        "E": event_ms,
        "s": c.symbol,
        "k": {
            "t": c.open_ms,
            "T": c.close_ms,
            "s": c.symbol,
            "i": c.interval.value,
            "f": first,
            "L": last,
            "o": dec_str(c.open),
            "c": dec_str(c.close),
            "h": dec_str(c.high),
            "l": dec_str(c.low),
            "v": dec_str(c.volume),
            "n": c.trades,
            "x": c.is_closed,
            "q": dec_str(c.quote_volume),
            "V": dec_str(c.taker_buy_base_volume),
            "Q": dec_str(c.taker_buy_quote_volume),
            "B": "0",
        },
    }


class StreamNameError(ValueError):
    """A stream name the simulator cannot serve."""


@dataclass
class StreamState:
    """Progress of one subscribed kline stream on one connection."""

    name: str
    symbol: str
    interval: Interval
    next_final: int  # open time of the next candle whose x=true final is due
    pd: int = 2  # price decimals of the symbol's integer units
    qd: int = 8  # quantity decimals
    seq: int = 0  # identifies this subscription in the connection's update heap
    phased: bool = False  # its updates have been given their spread phase

    def frame(self, open_ms: int, v: list[int], closed: bool, event_ms: int, combined: bool) -> str:
        """The kline event (wrapped when ``combined``) for candle values ``v``."""
        n = v[N]
        first = -1 if n == 0 else (open_ms // MINUTE_MS) * 100_000
        pd, qd = self.pd, self.qd
        text = _EVENT % (
            event_ms,
            self.symbol,
            open_ms,
            self.interval.close_time(open_ms),
            self.symbol,
            self.interval.value,
            first,
            -1 if n == 0 else first + n - 1,
            fmt_units(v[O], pd),
            fmt_units(v[C], pd),
            fmt_units(v[H], pd),
            fmt_units(v[L], pd),
            fmt_units(v[V], qd),
            n,
            "true" if closed else "false",
            fmt_units(v[Q], 8),
            fmt_units(v[TB], qd),
            fmt_units(v[TQ], 8),
        )
        return f'{{"stream":"{self.name}","data":{text}}}' if combined else text


@dataclass(eq=False)
class Conn:
    """One client connection."""

    ws: web.WebSocketResponse
    request: web.Request
    combined: bool
    streams: dict[str, StreamState] = field(default_factory=dict)
    incoming: collections.deque[float] = field(default_factory=collections.deque)
    opened_sim_ms: int = 0
    ping_outstanding_since: float | None = None
    last_ping: float = field(default_factory=time.monotonic)
    # (due real time, subscription seq, stream name) of every scheduled open-candle update
    updates: list[tuple[float, int, str]] = field(default_factory=list)
    next_close: int = _NEVER  # earliest close time among the streams' next finals
    shutdown_at: float | None = None  # real time to close at, after an announced shutdown


class WsHub:
    """Serves /ws/... and /stream?streams=...; tracks every open connection."""

    def __init__(
        self,
        config: SimConfig,
        market: Market,
        faults: Faults,
        stats: Stats,
        gate: Callable[[], web.StreamResponse | None] | None = None,
    ) -> None:
        self.config = config
        self.market = market
        self.live = LiveCandles(market)
        self.clock = config.clock
        self.faults = faults
        self.stats = stats
        # Decides whether a handshake is refused (an IP ban), before anything else.
        self.gate = gate
        self.conns: set[Conn] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._seq = 0

    def routes(self) -> list[web.RouteDef]:
        """aiohttp routes of the WebSocket endpoints."""
        return [
            web.get("/ws", self.handle),
            web.get("/ws/{streams:.*}", self.handle),
            web.get("/stream", self.handle),
        ]

    # ---- stream names -----------------------------------------------------------------

    def parse_stream(self, name: Any) -> StreamState:
        """Validate ``<symbol>@kline_<interval>`` and start it at the candle open now."""
        if not isinstance(name, str):
            raise StreamNameError(f"stream names must be strings, got {name!r}")
        m = STREAM_RE.match(name)
        if not m:
            raise StreamNameError(
                f"invalid stream name {name!r}; expected <lowercase symbol>@kline_<interval> "
                "like btcusdt@kline_1m"
            )
        symbol, iv_name = m.group(1).upper(), m.group(2)
        if self.config.listing(symbol) is None:
            raise StreamNameError(f"unknown symbol in stream {name!r}")
        try:
            iv = Interval(iv_name)
        except ValueError:
            allowed = ", ".join(i.value for i in Interval)
            raise StreamNameError(
                f"invalid interval in stream {name!r}; allowed: {allowed}"
            ) from None
        now = self.clock.now_ms()
        pd, qd = self.market.decimals(symbol)
        return StreamState(name, symbol, iv, iv.floor(now), pd, qd)

    def _add_stream(self, conn: Conn, st: StreamState) -> None:
        self._seq += 1
        st.seq = self._seq
        conn.streams[st.name] = st
        # The first update goes out at once, as Binance sends one right after subscribing.
        heapq.heappush(conn.updates, (time.monotonic(), st.seq, st.name))
        conn.next_close = min(conn.next_close, st.interval.close_time(st.next_final))

    def _period(self, iv: Interval) -> float:
        """Real seconds between two open-candle updates of one stream."""
        every = self.config.ws_update_interval_s
        if iv is Interval.S1:
            every = min(every, 1.0)  # Binance updates 1s klines every second
        speed = self.clock.speed if self.clock.mode is ClockMode.ACCELERATED else 1.0
        return max(MIN_UPDATE_GAP_S, every / speed)

    # ---- connection ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Accept a raw or combined stream connection."""
        refusal = self.gate() if self.gate is not None else None
        if refusal is not None:
            self.stats.add("ws_handshakes_refused")
            return refusal
        combined = request.path == "/stream"
        if combined:
            raw = request.query.get("streams", "")
        else:
            raw = request.match_info.get("streams", "")
        names = [n for n in raw.split("/") if n]
        try:
            states = [self.parse_stream(n) for n in dict.fromkeys(names)]
        except StreamNameError as exc:
            return web.json_response({"code": 2, "msg": f"Invalid request: {exc}"}, status=400)
        if len(states) > self.config.ws_max_streams:
            return web.json_response(
                {
                    "code": 2,
                    "msg": f"Invalid request: at most {self.config.ws_max_streams} "
                    "streams per connection",
                },
                status=400,
            )
        ws = web.WebSocketResponse(
            autoping=False, heartbeat=None, max_msg_size=1 << 20, compress=False
        )
        await ws.prepare(request)
        conn = Conn(ws, request, combined, opened_sim_ms=self.clock.now_ms())
        for st in states:
            self._add_stream(conn, st)
        self.conns.add(conn)
        self.stats.add("ws_connections_opened")
        self.stats.add("ws_connections_open")
        sender = asyncio.create_task(self._send_loop(conn))
        try:
            await self._read_loop(conn)
        except (ConnectionError, RuntimeError) as exc:  # the client went away mid-reply
            log.debug("simulator ws: connection ended: %r", exc)
        finally:
            sender.cancel()
            self.conns.discard(conn)
            self.stats.add("ws_connections_open", -1)
            if not ws.closed:
                await ws.close()
        return ws

    async def _read_loop(self, conn: Conn) -> None:
        ws = conn.ws
        async for msg in ws:
            now = time.monotonic()
            conn.incoming.append(now)
            while conn.incoming and conn.incoming[0] <= now - 1.0:
                conn.incoming.popleft()
            if len(conn.incoming) > self.config.ws_max_incoming_per_s:
                # Binance disconnects a client that sends more than 5 messages a second.
                self.stats.add("ws_disconnects_rate_limit")
                await ws.close(code=1008, message=b"Too many messages")
                return
            if msg.type is WSMsgType.PING:
                if not self.faults.stall:
                    await ws.pong(msg.data)
            elif msg.type is WSMsgType.PONG:
                conn.ping_outstanding_since = None
            elif msg.type is WSMsgType.TEXT:
                reply = self.control(conn, msg.data)
                if reply is not None and not self.faults.stall:
                    await self._send(conn, reply)
            elif msg.type is WSMsgType.BINARY:
                await self._send(
                    conn, {"code": 3, "msg": "Invalid JSON: binary frames are not accepted"}
                )
            elif msg.type in (
                WSMsgType.CLOSE,
                WSMsgType.CLOSING,
                WSMsgType.CLOSED,
                WSMsgType.ERROR,
            ):
                return

    def control(self, conn: Conn, text: str) -> dict[str, Any] | None:
        """Answer one control message (SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, ...)."""
        try:
            req = json.loads(text)
        except ValueError as exc:
            return {"code": 3, "msg": f"Invalid JSON: {exc}"}
        if not isinstance(req, dict):
            return {"code": 2, "msg": "Invalid request: request must be a JSON object"}
        rid = req.get("id")
        if not (
            rid is None
            or (isinstance(rid, int) and not isinstance(rid, bool) and rid >= 0)
            or (isinstance(rid, str) and len(rid) <= 36)
        ):
            return {
                "code": 2,
                "msg": "Invalid request: request ID must be an unsigned integer, "
                "a string of up to 36 characters, or null",
            }
        method = req.get("method")
        if "method" not in req:
            return {"code": 2, "msg": "Invalid request: missing field `method`", "id": rid}
        if method not in METHODS:
            return {
                "code": 2,
                "msg": f"Invalid request: unknown variant `{method}`, expected one "
                "of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
                "`GET_PROPERTY`",
                "id": rid,
            }
        params = req.get("params", [])
        if not isinstance(params, list):
            return {"code": 2, "msg": "Invalid request: params must be an array", "id": rid}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(conn.streams), "id": rid}
        if method == "GET_PROPERTY":
            if params != ["combined"]:
                return {
                    "code": 2,
                    "msg": 'Invalid request: the only property is "combined"',
                    "id": rid,
                }
            return {"result": conn.combined, "id": rid}
        if method == "SET_PROPERTY":
            if len(params) != 2 or params[0] != "combined" or not isinstance(params[1], bool):
                return {
                    "code": 1,
                    "msg": 'Invalid value type: expected ["combined", true|false]',
                    "id": rid,
                }
            conn.combined = params[1]
            return {"result": None, "id": rid}
        if method == "SUBSCRIBE":
            try:
                new = [self.parse_stream(p) for p in params if p not in conn.streams]
            except StreamNameError as exc:
                return {"code": 2, "msg": f"Invalid request: {exc}", "id": rid}
            if len(conn.streams) + len(new) > self.config.ws_max_streams:
                return {
                    "code": 2,
                    "msg": f"Invalid request: at most {self.config.ws_max_streams} "
                    "streams per connection",
                    "id": rid,
                }
            for s in new:
                self._add_stream(conn, s)
            return {"result": None, "id": rid}
        # UNSUBSCRIBE: names that are not subscribed are ignored, as on Binance.
        for p in params:
            if not isinstance(p, str):
                return {
                    "code": 2,
                    "msg": "Invalid request: stream names must be strings",
                    "id": rid,
                }
            conn.streams.pop(p, None)  # its scheduled updates are skipped when they come up
        return {"result": None, "id": rid}

    # ---- sending --------------------------------------------------------------------------

    async def _send(self, conn: Conn, payload: dict[str, Any]) -> None:
        if conn.ws.closed:
            return
        await conn.ws.send_str(json.dumps(payload, separators=(",", ":")))
        self.stats.add("ws_messages_sent")

    async def _send_event(self, conn: Conn, text: str) -> None:
        """Send one kline frame, plus a broken copy now and then (malformed_frame_rate)."""
        await conn.ws.send_str(text)
        if self.faults.malformed_frame_rate > 0:
            await self._maybe_malformed(conn, text)

    async def _maybe_malformed(self, conn: Conn, text: str) -> None:
        # Malformed frames come in addition to the real ones, so no closed candle is lost.
        if not self.faults.chance(self.faults.malformed_frame_rate):
            return
        kind = self.faults.choice(["truncated", "missing"])
        if kind == "truncated":
            bad = text[: max(1, len(text) // 2)]
        else:
            obj = json.loads(text)
            event = obj.get("data", obj)
            event.get("k", {}).pop("c", None)
            event.pop("E", None)
            bad = json.dumps(obj, separators=(",", ":"))
        await conn.ws.send_str(bad)
        self.stats.add("ws_malformed_sent")

    async def _send_loop(self, conn: Conn) -> None:
        try:
            while not conn.ws.closed:
                await self._tick(conn)
                await asyncio.sleep(TICK_S)
        except asyncio.CancelledError:
            raise
        except (ConnectionError, RuntimeError) as exc:
            log.debug("simulator ws: send loop ended: %r", exc)
        except Exception:  # a bug must not leave a silent, half-dead connection behind
            log.exception("simulator ws: send loop failed; closing the connection")
            await conn.ws.close(code=1011, message=b"Internal error")

    async def _tick(self, conn: Conn) -> None:
        real = time.monotonic()
        now = self.clock.now_ms()
        if self.faults.stall:
            # A silent stall: nothing is sent and what would have been sent is lost.
            for st in conn.streams.values():
                st.next_final = st.interval.floor(now)
            conn.next_close = min(
                (st.interval.close_time(st.next_final) for st in conn.streams.values()),
                default=_NEVER,
            )
            conn.last_ping = real
            conn.ping_outstanding_since = None
            return
        await self._keepalive(conn, real)
        if conn.ws.closed:
            return
        if conn.shutdown_at is not None and real >= conn.shutdown_at:
            self.stats.add("ws_disconnects_shutdown")
            await conn.ws.close(code=1001, message=b"Server shutdown")
            return
        sent = finals = lost = 0
        if now > conn.next_close:
            finals, lost = await self._send_finals(conn, now)
            sent += finals
        lost_updates, updates = await self._send_updates(conn, real, now)
        sent += updates
        lost += lost_updates
        if sent:
            self.stats.add("ws_messages_sent", sent)
        if finals:
            self.stats.add("ws_finals_sent", finals)
        if lost:
            self.stats.add("ws_frames_stalled", lost)
        if now - conn.opened_sim_ms >= self.config.ws_max_lifetime_s * 1000:
            # The 24 h cut: every final due so far has been sent above.
            self.stats.add("ws_disconnects_lifetime")
            await conn.ws.close(code=1001, message=b"Connection lifetime exceeded")

    async def _send_finals(self, conn: Conn, now: int) -> tuple[int, int]:
        """Every x=true final whose close has passed, in order per stream; (sent, lost)."""
        sent = lost = 0
        earliest = _NEVER
        for st in list(conn.streams.values()):
            if conn.ws.closed:
                return sent, lost
            if conn.streams.get(st.name) is not st:  # unsubscribed while we were sending
                continue
            stalled = self.faults.is_stalled(st.name, st.symbol)
            iv = st.interval
            while iv.close_time(st.next_final) < now:
                t = st.next_final
                st.next_final = iv.open_after(t)
                if stalled:
                    lost += 1
                    continue
                values = self.live.final(st.symbol, iv, t)
                if values is not None:  # an outage leaves no candle, hence no final
                    await self._send_event(conn, st.frame(t, values, True, now, conn.combined))
                    sent += 1
            earliest = min(earliest, iv.close_time(st.next_final))
        conn.next_close = earliest
        return sent, lost

    async def _send_updates(self, conn: Conn, real: float, now: int) -> tuple[int, int]:
        """The open-candle updates that are due; (lost to a stall, sent)."""
        sent = lost = 0
        heap = conn.updates
        while heap and heap[0][0] <= real and not conn.ws.closed:
            due, seq, name = heapq.heappop(heap)
            st = conn.streams.get(name)
            if st is None or st.seq != seq:
                continue  # unsubscribed (or subscribed again since)
            period = self._period(st.interval)
            if not st.phased or due < real - period:
                # After the first update (or when far behind), restart the schedule from now at
                # a phase of its own, so the streams of a connection do not all fire together.
                st.phased = True
                nxt = real + period * (1.0 + (seq * _PHI) % 1.0)
            else:
                nxt = due + period
            heapq.heappush(heap, (nxt, seq, name))
            if self.faults.is_stalled(st.name, st.symbol):
                lost += 1
                continue
            current = self.live.open_candle(st.symbol, st.interval, now)
            if current is not None:
                await self._send_event(conn, st.frame(*current, False, now, conn.combined))
                sent += 1
        return lost, sent

    async def _keepalive(self, conn: Conn, real: float) -> None:
        if conn.ping_outstanding_since is not None and (
            real - conn.ping_outstanding_since > self.config.ws_pong_timeout_s
        ):
            self.stats.add("ws_disconnects_pong_timeout")
            await conn.ws.close(code=1008, message=b"Pong timeout")
            return
        if real - conn.last_ping >= self.config.ws_ping_interval_s:
            conn.last_ping = real
            if conn.ping_outstanding_since is None:
                conn.ping_outstanding_since = real
            await conn.ws.ping(str(self.clock.now_ms()).encode())

    # ---- server-wide actions (called on the server loop) ------------------------------------

    def _shutdown_frame(self, conn: Conn) -> str:
        event = f'{{"e":"serverShutdown","E":{self.clock.now_ms()}}}'
        # Combined streams wrap it under the pseudo-stream "!serverShutdown", as Binance does.
        return f'{{"stream":"!serverShutdown","data":{event}}}' if conn.combined else event

    def drop_all(self) -> int:
        """Abort every connection's transport, as a network failure would."""
        n = 0
        for conn in list(self.conns):
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
                n += 1
        return n

    async def announce_shutdown(self, grace_s: float) -> int:
        """Send serverShutdown to every open connection and close each ``grace_s`` later.

        The server keeps accepting connections, so a client can overlap its replacement.
        """
        n = 0
        for conn in list(self.conns):
            if conn.ws.closed or conn.shutdown_at is not None:
                continue
            try:
                await conn.ws.send_str(self._shutdown_frame(conn))
            except (ConnectionError, RuntimeError):
                continue
            conn.shutdown_at = time.monotonic() + grace_s
            n += 1
        self.stats.add("ws_shutdowns_announced", n)
        return n

    async def send_raw(self, frame: str | bytes, stream: str | None) -> int:
        """Send one raw frame on the connections carrying ``stream`` (a name or a symbol)."""
        n = 0
        for conn in list(self.conns):
            if conn.ws.closed:
                continue
            if stream is not None and not (
                stream in conn.streams or any(st.symbol == stream for st in conn.streams.values())
            ):
                continue
            try:
                if isinstance(frame, bytes):
                    await conn.ws.send_bytes(frame)
                else:
                    await conn.ws.send_str(frame)
            except (ConnectionError, RuntimeError):
                continue
            n += 1
        self.stats.add("ws_raw_frames_sent", n)
        return n

    async def shutdown(self) -> None:
        """Send serverShutdown to every client, then close them (1001 going away)."""
        for conn in list(self.conns):
            if conn.ws.closed:
                continue
            try:
                await conn.ws.send_str(self._shutdown_frame(conn))
                await conn.ws.close(code=1001, message=b"Server shutdown")
            except (ConnectionResetError, RuntimeError):
                pass
