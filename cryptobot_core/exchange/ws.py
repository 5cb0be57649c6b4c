"""Binance kline WebSocket streams: many symbols, reconnects reported as gaps, no silent loss.

Raw frame of a combined stream (``/stream?streams=btcusdt@kline_1m/...``)::

    {"stream": "btcusdt@kline_1m",
     "data": {"e": "kline", "E": 1672515782136, "s": "BTCUSDT",
              "k": {"t": 1672515780000, "T": 1672515839999, "s": "BTCUSDT", "i": "1m",
                    "f": 100, "L": 200, "o": "0.0010", "c": "0.0020", "h": "0.0025",
                    "l": "0.0015", "v": "1000", "n": 100, "x": false, "q": "1.0000",
                    "V": "500", "Q": "0.500", "B": "123456"}}}

Server shutdown notice (hand over to a new connection now)::

    {"stream": "...", "data": {"e": "serverShutdown", "E": 1672515782136}}

The stream yields :class:`Candle` (source ws, event_time set), :class:`StreamGap` after every
reconnect and for every symbol whose final of a minute never came (the event-time range
that may have been missed, to repair from REST), and :class:`MalformedFrame` for frames
that could not be parsed (to dead-letter them). Rotation, ``serverShutdown`` and streams
gone silent on a flowing connection are handled by a handover: the new connection is
opened first and the old one closed once every stream it carried flows on the new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from cryptobot_core.errors import ExchangeError, ValidationError
from cryptobot_core.exchange.exchange_info import normalize_symbol
from cryptobot_core.exchange.rest import SharedBan
from cryptobot_core.intervals import Interval
from cryptobot_core.models import Candle, dt_to_ms

log = logging.getLogger(__name__)

MAX_STREAMS_PER_CONNECTION = 1024
# Keep the handshake URL short; streams beyond it are added with SUBSCRIBE messages.
_MAX_URL_CHARS = 4000
_SUBSCRIBE_BATCH = 200
# Binance allows 5 incoming messages per second per connection, pings and pongs included.
_SUBSCRIBE_SPACING_S = 0.25
_SERVER_SHUTDOWN = "server_shutdown"
# How often a connection's supervisor looks at its streams (watchdog, continuity, rotation).
_WATCH_S = 1.0
_HANDOVER_POLL_S = 0.1
# A final may trail the next minute's first update by this much (other connection, network).
_FINAL_GRACE_S = 2.0
# A stream that stays silent is retried on a new connection at most this far apart.
_MAX_STALL_RETRY_S = 300.0
# While waiting out a shared IP ban, re-read it this often (it may be lifted or extended).
_BAN_RECHECK_S = 5.0


@dataclass(frozen=True, slots=True)
class StreamGap:
    """A reconnect happened: events between the two times may have been missed.

    ``missed_from_ms`` is the oldest of the last event times seen per symbol on the dropped
    connection (``None`` when nothing had been received since the stream opened), and
    ``missed_to_ms`` the event time of the first event after the reconnect. Repair by
    fetching REST klines opening in ``[interval.floor(missed_from_ms), missed_to_ms]``.
    """

    symbols: tuple[str, ...]
    interval: Interval
    missed_from_ms: int | None
    missed_to_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class MalformedFrame:
    """A frame that could not be used, kept with the reason so it can be dead-lettered."""

    raw: str
    reason: str


StreamItem = Candle | StreamGap | MalformedFrame


@dataclass(slots=True)
class StreamStats:
    """Counters of one KlineStream."""

    connections: int = 0
    reconnects: int = 0
    rotations: int = 0
    connect_failures: int = 0
    messages: int = 0
    candles: int = 0
    malformed: int = 0
    duplicates: int = 0
    gaps: int = 0
    stream_stalls: int = 0


@dataclass(eq=False)
class _Conn:
    ws: ClientConnection
    opened_at: float  # loop time once every stream was asked for (URL and SUBSCRIBE)
    frames: int = 0
    # Loop time of the last frame per symbol on this connection: the per-stream watchdog.
    last_frame: dict[str, float] = field(default_factory=dict)
    # Open time of the first candle per symbol on this connection: the exchange sends finals
    # only for minutes that close after a stream is subscribed, so a handover must wait until
    # every earlier final has come (on the old connection) before closing it.
    first_open: dict[str, int] = field(default_factory=dict)
    # The server announced serverShutdown: hand over to a new connection while this one lasts.
    shutdown: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[str] | None = None
    closing: bool = False

    def flowing(self, since: float) -> set[str]:
        """Symbols with a frame on this connection at or after loop time ``since``."""
        return {s for s, t in self.last_frame.items() if t >= since}

    async def close(self) -> None:
        self.closing = True
        while self.task is not None and not self.task.done():
            # Python 3.11's wait_for can swallow a cancellation that races with the frame it
            # was waiting for, so cancel until the reader is really gone. wait() instead of
            # awaiting the task: the reader's CancelledError stays inside, while a
            # cancellation of *our* caller still propagates (never swallowed).
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=0.5)
        with contextlib.suppress(Exception):
            await self.ws.close()


@dataclass(eq=False)
class _Group:
    """The streams served by one connection (at most max_streams_per_connection)."""

    index: int
    symbols: tuple[str, ...]
    streams: list[str]
    symbol_set: frozenset[str] = field(init=False)
    last_event_ms: dict[str, int] = field(default_factory=dict)  # per symbol
    pending_gap: tuple[str, int | None] | None = None
    seen: OrderedDict[tuple[str, int, int], None] = field(default_factory=OrderedDict)
    # Continuity per symbol: the open time of the oldest candle whose final (x=true) is still
    # expected, finals already seen above it, the newest candle seen (open, event time), and
    # since when (loop time) a newer candle exists while an older final is still missing.
    next_open: dict[str, int] = field(default_factory=dict)
    finals_ahead: dict[str, set[int]] = field(default_factory=dict)
    newest: dict[str, tuple[int, int]] = field(default_factory=dict)
    behind_since: dict[str, float] = field(default_factory=dict)
    # Streams silent on a connection that is otherwise flowing, and when to try a handover next.
    stalled: set[str] = field(default_factory=set)
    next_handover_at: float = 0.0
    stall_retry_s: float = 0.0

    def __post_init__(self) -> None:
        self.symbol_set = frozenset(self.symbols)


class KlineStream:
    """Async iterator over kline events for many symbols, resilient to disconnects."""

    def __init__(
        self,
        ws_base_url: str,
        symbols: list[str] | tuple[str, ...],
        interval: Interval | str = "1m",
        *,
        max_streams_per_connection: int = MAX_STREAMS_PER_CONNECTION,
        silence_timeout_s: float = 30.0,
        stream_silence_s: float | None = None,
        rotate_after_s: float = 23.5 * 3600,
        reconnect_backoff: tuple[float, float] = (0.5, 30.0),
        open_timeout_s: float = 10.0,
        queue_size: int = 10_000,
        shared_ban: SharedBan | None = None,
    ) -> None:
        if not ws_base_url.startswith(("ws://", "wss://")):
            raise ValidationError(
                f"ws_base_url must start with ws:// or wss://, got {ws_base_url!r}"
            )
        if not 1 <= max_streams_per_connection <= MAX_STREAMS_PER_CONNECTION:
            raise ValidationError(
                f"max_streams_per_connection must be 1..{MAX_STREAMS_PER_CONNECTION}, got {max_streams_per_connection}"
            )
        stream_silence_s = silence_timeout_s if stream_silence_s is None else stream_silence_s
        if silence_timeout_s <= 0 or rotate_after_s <= 0 or stream_silence_s <= 0:
            raise ValidationError(
                "silence_timeout_s, stream_silence_s and rotate_after_s must be positive"
            )
        syms = list(dict.fromkeys(normalize_symbol(s) for s in symbols))
        if not syms:
            raise ValidationError("at least one symbol is required, e.g. ['BTCUSDT']")
        self.base_url = ws_base_url.rstrip("/")
        self.interval = Interval.parse(interval)
        self.symbols = tuple(syms)
        self.silence_timeout_s = silence_timeout_s
        self.stream_silence_s = stream_silence_s
        self.rotate_after_s = rotate_after_s
        self.reconnect_backoff = reconnect_backoff
        self.open_timeout_s = open_timeout_s
        self.stats = StreamStats()
        # An IP ban (418) recorded by any process; read before every connection attempt and
        # written when a handshake meets one. Closed with the stream.
        self.shared_ban = shared_ban
        self._queue: asyncio.Queue[StreamItem | BaseException] = asyncio.Queue(maxsize=queue_size)
        self._groups = [
            _Group(
                index=i // max_streams_per_connection,
                symbols=tuple(chunk),
                streams=[f"{s.lower()}@kline_{self.interval.value}" for s in chunk],
            )
            for i in range(0, len(syms), max_streams_per_connection)
            for chunk in [syms[i : i + max_streams_per_connection]]
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False
        self._closed = False
        self._next_id = 1

    @property
    def connection_count(self) -> int:
        """How many connections the symbols are spread over."""
        return len(self._groups)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Open the connections (done automatically on first iteration)."""
        if self._started:
            return
        self._started = True
        self._tasks = [
            asyncio.create_task(self._supervise(g), name=f"kline-stream-{g.index}")
            for g in self._groups
        ]

    async def close(self) -> None:
        """Close every connection; iteration then stops."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        close_ban = getattr(self.shared_ban, "close", None)
        if close_ban is not None:
            await asyncio.to_thread(close_ban)
            self.shared_ban = None
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(StopAsyncIteration())

    async def __aenter__(self) -> KlineStream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> KlineStream:
        return self

    async def __anext__(self) -> StreamItem:
        if not self._started:
            await self.start()
        if self._closed:
            raise StopAsyncIteration
        item = await self._queue.get()
        if isinstance(item, StopAsyncIteration) or self._closed:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    # -- connections ---------------------------------------------------------------------

    def _url(self, streams: list[str]) -> str:
        return f"{self.base_url}/stream?streams={'/'.join(streams)}"

    async def _open(self, group: _Group) -> _Conn:
        """Connect one group: as many streams as fit in the URL, the rest by SUBSCRIBE."""
        in_url: list[str] = []
        length = len(self._url([]))
        for name in group.streams:
            if in_url and length + len(name) + 1 > _MAX_URL_CHARS:
                break
            in_url.append(name)
            length += len(name) + 1
        ws = await connect(
            self._url(in_url), open_timeout=self.open_timeout_s, close_timeout=2.0, max_size=2**22
        )
        loop = asyncio.get_running_loop()
        conn = _Conn(ws=ws, opened_at=loop.time())
        self.stats.connections += 1
        conn.task = asyncio.create_task(self._read(group, conn))
        rest = group.streams[len(in_url) :]
        try:
            for i in range(0, len(rest), _SUBSCRIBE_BATCH):
                await asyncio.sleep(_SUBSCRIBE_SPACING_S)
                msg = {
                    "method": "SUBSCRIBE",
                    "params": rest[i : i + _SUBSCRIBE_BATCH],
                    "id": self._next_id,
                }
                self._next_id += 1
                await ws.send(json.dumps(msg))
        except ConnectionClosed as exc:
            await conn.close()
            raise OSError(f"connection closed while subscribing: {exc}") from None
        except BaseException:  # cancelled while subscribing: leave no connection behind
            await conn.close()
            raise
        conn.opened_at = loop.time()
        log.info("kline stream connection %d open (%d streams)", group.index, len(group.streams))
        return conn

    def _backoff(self, attempt: int) -> float:
        lo, hi = self.reconnect_backoff
        delay = min(hi, lo * 2**attempt)
        return delay / 2 + random.uniform(0, delay / 2)

    async def _supervise(self, group: _Group) -> None:
        """Keep one group connected.

        A lost connection is reopened with backoff and reported as a gap. A planned change of
        connection (the 24 h rotation, an announced serverShutdown, streams that went silent
        on an otherwise flowing connection) is a handover: the new connection is opened first
        and the old one closed only once every stream flowing on it flows on the new one.
        """
        conn: _Conn | None = None
        attempt = 0
        gap_reason: str | None = None
        try:
            while not self._closed:
                if conn is None:
                    if gap_reason is not None and group.pending_gap is None:
                        # Keep the earliest start if an earlier gap is still unresolved.
                        # The oldest per-symbol last event: the one symbol furthest behind
                        # bounds what any symbol may have missed.
                        seen = group.last_event_ms.values()
                        group.pending_gap = (gap_reason, min(seen) if seen else None)
                    if await self._waited_out_ban():
                        gap_reason = gap_reason or "waited out an IP ban"
                        continue
                    try:
                        conn = await self._open(group)
                        gap_reason = None
                    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                        _raise_if_rejected(exc, group)
                        self.stats.connect_failures += 1
                        # A ban (418) or rate limit (429) says how long to stay away.
                        await self._share_ban(exc)
                        delay = max(self._backoff(attempt), _retry_after_s(exc) or 0.0)
                        attempt += 1
                        log.warning(
                            "kline stream connect failed (%s); retrying in %.1f s", exc, delay
                        )
                        gap_reason = gap_reason or f"connect failed: {exc}"
                        await asyncio.sleep(delay)
                        continue
                assert conn.task is not None
                now = asyncio.get_running_loop().time()
                due = max(conn.opened_at + self.rotate_after_s, group.next_handover_at)
                timeout = min(_WATCH_S, max(0.01, due - now))
                done, _ = await asyncio.wait({conn.task}, timeout=timeout)
                await self._judge_continuity(group)
                if conn.task in done:
                    reason = self._ended(conn.task)
                    if conn.frames:
                        attempt = 0
                    announced = conn.shutdown.is_set()
                    await conn.close()
                    conn = None
                    self.stats.reconnects += 1
                    gap_reason = _SERVER_SHUTDOWN if announced else reason
                    log.warning(
                        "kline stream connection %d lost: %s; reconnecting", group.index, reason
                    )
                    if not announced:
                        await asyncio.sleep(self._backoff(attempt))
                        attempt += 1
                    continue
                why = await self._watch(group, conn)
                if why is not None:
                    conn = await self._handover(group, conn, why)
        except asyncio.CancelledError:
            raise
        except ExchangeError as exc:  # the exchange refused the streams: retrying cannot help
            log.error("kline stream connection %d refused: %s", group.index, exc)
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(exc)
        except Exception as exc:  # a bug, not a network fault: surface it to the consumer
            log.exception("kline stream connection %d failed", group.index)
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(
                    ExchangeError(f"kline stream connection {group.index} failed: {exc!r}")
                )
        finally:
            if conn is not None:
                await conn.close()

    async def _watch(self, group: _Group, conn: _Conn) -> str | None:
        """Why the connection should be handed over now (None: keep it).

        The per-stream watchdog lives here: a stream silent for ``stream_silence_s`` while
        others flow on the same connection is reported as a gap at once (so repair need not
        wait for it to come back) and triggers a handover, retried with a growing delay while
        the stream stays silent (a halted symbol never comes back on any connection).
        """
        now = asyncio.get_running_loop().time()
        if conn.shutdown.is_set():
            return "server shutdown announced"
        if now < group.next_handover_at:
            return None
        if now >= conn.opened_at + self.rotate_after_s:
            return "rotation"
        quiet_since = now - self.stream_silence_s
        if not conn.last_frame or max(conn.last_frame.values()) < quiet_since:
            return None  # the whole connection is silent: the reader's watchdog handles that
        silent = {
            s
            for s in group.symbols
            if conn.last_frame.get(s, conn.opened_at) < quiet_since and s not in group.stalled
        }
        if silent:
            self.stats.stream_stalls += len(silent)
            group.stalled |= silent
            log.warning(
                "kline stream connection %d: %d streams silent for %g s while others flow: %s",
                group.index,
                len(silent),
                self.stream_silence_s,
                ", ".join(sorted(silent)[:10]),
            )
            # What they missed so far, up to the exchange's clock as the others show it.
            upto = max(group.last_event_ms.values(), default=None)
            if upto is not None:
                for s in sorted(silent):
                    frm = group.next_open.get(s, group.last_event_ms.get(s))
                    if frm is not None and frm < upto:
                        await self._gap((s,), frm, upto, "stream silent")
                    self._advance(
                        group, s, max(group.next_open.get(s, 0), self.interval.floor(upto))
                    )
                    group.behind_since.pop(s, None)
        if not group.stalled:
            group.stall_retry_s = 0.0
            return None
        group.stall_retry_s = min(
            _MAX_STALL_RETRY_S, max(self.stream_silence_s, group.stall_retry_s * 2)
        )
        group.next_handover_at = now + group.stall_retry_s
        return f"{len(group.stalled)} streams silent"

    async def _handover(self, group: _Group, old: _Conn, why: str) -> _Conn:
        """Open a new connection; close the old one once every stream it carries flows anew.

        Events seen on both connections are delivered once (the ``seen`` filter). If the new
        connection cannot be opened or does not carry the old one's streams within
        ``silence_timeout_s``, the old one is kept and the handover retried later, unless the
        old one is going away anyway (closed, or the server announced its shutdown).
        """
        loop = asyncio.get_running_loop()
        banned_until = await self._banned_until()
        if banned_until is not None:  # keep what flows; hand over once the ban has ended
            group.next_handover_at = loop.time() + banned_until - time.time()
            return old
        log.info("kline stream connection %d: handover (%s)", group.index, why)
        try:
            new = await self._open(group)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            await self._share_ban(exc)
            delay = max(self._backoff(0), _retry_after_s(exc) or 0.0)
            group.next_handover_at = max(group.next_handover_at, loop.time() + delay)
            log.warning(
                "kline stream handover (%s) could not connect (%s); keeping the old connection",
                why,
                exc,
            )
            return old
        assert new.task is not None and old.task is not None
        started = loop.time()
        adopted = False
        try:
            while True:
                done, _ = await asyncio.wait(
                    {new.task, old.task},
                    timeout=_HANDOVER_POLL_S,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if new.task in done:
                    missing: set[str] = set(group.symbols)
                    break
                missing = {
                    s
                    for s in old.flowing(loop.time() - self.stream_silence_s)
                    if s not in new.first_open or group.next_open.get(s, -1) < new.first_open[s]
                }
                # Once the old one is going away, the new one is better whatever it carries.
                expired = loop.time() >= started + self.silence_timeout_s
                if not missing or old.task in done or (expired and old.shutdown.is_set()):
                    adopted = True
                    break
                if expired:
                    break
        finally:
            # Also on cancellation: the connection not kept is always closed.
            await (old if adopted else new).close()
        if not adopted:
            group.next_handover_at = max(group.next_handover_at, loop.time() + self._backoff(1))
            log.warning(
                "kline stream handover (%s): %d streams did not flow on the new connection "
                "(%s); keeping the old one",
                why,
                len(missing),
                ", ".join(sorted(missing)[:5]),
            )
            return old
        self.stats.rotations += 1
        if not group.stalled:
            group.next_handover_at = 0.0
        log.info(
            "kline stream connection %d handed over (%s) in %.1f s",
            group.index,
            why,
            loop.time() - started,
        )
        return new

    async def _banned_until(self) -> float | None:
        """The end (epoch s) of an IP ban another process recorded, if it has not ended."""
        if self.shared_ban is None:
            return None
        until = await asyncio.to_thread(self.shared_ban.banned_until)
        return until if until is not None and until > time.time() else None

    async def _waited_out_ban(self) -> bool:
        """Sleep until the shared ban ends, re-reading it (it may be lifted or extended);
        True if there was one to wait for."""
        waited = False
        while (until := await self._banned_until()) is not None:
            waited = True
            log.warning(
                "the exchange has banned this IP until %s (recorded by another process); "
                "not connecting until then",
                datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds"),
            )
            await asyncio.sleep(min(until - time.time(), _BAN_RECHECK_S))
        return waited

    async def _share_ban(self, exc: Exception) -> None:
        """Record a 418 met on a handshake where every process sees it."""
        if self.shared_ban is None or not isinstance(exc, InvalidStatus):
            return
        if exc.response.status_code == 418:
            until = time.time() + (_retry_after_s(exc) or DEFAULT_BAN_S)
            await asyncio.to_thread(
                self.shared_ban.ban, until, "HTTP 418 on the WebSocket handshake"
            )

    @staticmethod
    def _ended(task: asyncio.Task[str]) -> str:
        exc = task.exception()
        return task.result() if exc is None else f"reader failed: {exc!r}"

    async def _read(self, group: _Group, conn: _Conn) -> str:
        """Read frames until the connection ends; returns why it ended."""
        loop = asyncio.get_running_loop()
        while not conn.closing:
            try:
                raw = await asyncio.wait_for(conn.ws.recv(), self.silence_timeout_s)
            except TimeoutError:
                return f"silence: no frame for {self.silence_timeout_s:g} s"
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else "none"
                return f"connection closed (code {code})"
            conn.frames += 1
            self.stats.messages += 1
            text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
            got = await self._handle(group, text)
            if isinstance(got, Candle):
                conn.last_frame[got.symbol] = loop.time()
                conn.first_open.setdefault(got.symbol, got.open_ms)
                group.stalled.discard(got.symbol)
            elif got == _SERVER_SHUTDOWN:
                conn.shutdown.set()
        return "closed by the client"

    async def _emit(self, item: StreamItem) -> None:
        await self._queue.put(item)

    async def _gap(
        self, symbols: tuple[str, ...], missed_from: int | None, missed_to: int, reason: str
    ) -> None:
        self.stats.gaps += 1
        await self._emit(StreamGap(symbols, self.interval, missed_from, missed_to, reason))

    async def _malformed(self, raw: str, reason: str) -> None:
        self.stats.malformed += 1
        log.warning("malformed kline frame (%s): %.200s", reason, raw)
        await self._emit(MalformedFrame(raw=raw, reason=reason))

    async def _handle(self, group: _Group, raw: str) -> Candle | str | None:
        """Turn one frame into stream items.

        Returns the candle of a kline event (duplicates included: the stream flows),
        ``_SERVER_SHUTDOWN`` when the server announced its shutdown, else None.
        """
        try:
            msg: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            await self._malformed(raw, f"not JSON: {exc.msg}")
            return None
        if not isinstance(msg, dict):
            await self._malformed(raw, "frame is not a JSON object")
            return None
        if "id" in msg and "result" in msg:
            return None  # reply to our SUBSCRIBE
        if "code" in msg and "msg" in msg and "e" not in msg:
            await self._malformed(raw, f"control error {msg.get('code')}: {msg.get('msg')}")
            return None
        data = msg.get("data", msg) if "stream" in msg else msg
        if not isinstance(data, dict):
            await self._malformed(raw, "data is not a JSON object")
            return None
        event = data.get("e")
        if event == "serverShutdown":
            log.warning("server announced shutdown; handing over to a new connection")
            return _SERVER_SHUTDOWN
        if event != "kline":
            await self._malformed(raw, f"unexpected event type {event!r}")
            return None
        try:
            candle = Candle.from_ws_event(data)
        except ValidationError as exc:
            await self._malformed(raw, str(exc))
            return None
        if candle.symbol not in group.symbol_set or candle.interval is not self.interval:
            await self._malformed(
                raw, f"event for a stream not subscribed: {candle.symbol} {candle.interval}"
            )
            return None
        assert candle.event_time is not None
        event_ms = dt_to_ms(candle.event_time)
        key = (candle.symbol, candle.open_ms, event_ms)
        if key in group.seen:
            self.stats.duplicates += 1  # the same event from both connections while handing over
            return candle
        group.seen[key] = None
        if len(group.seen) > max(10_000, 20 * len(group.symbols)):
            group.seen.popitem(last=False)
        if group.pending_gap is not None:
            reason, missed_from = group.pending_gap
            group.pending_gap = None
            await self._gap(group.symbols, missed_from, event_ms, reason)
            # The gap covers every final before this minute: continuity restarts from here.
            floor = self.interval.floor(event_ms)
            for s in group.symbols:
                if group.next_open.get(s, floor) <= floor:
                    self._advance(group, s, floor)
                    group.behind_since.pop(s, None)
        if event_ms > group.last_event_ms.get(candle.symbol, -1):
            group.last_event_ms[candle.symbol] = event_ms
        self._follow(group, candle, event_ms)
        self.stats.candles += 1
        await self._emit(candle)
        return candle

    def _follow(self, group: _Group, candle: Candle, event_ms: int) -> None:
        """Track which finals are still expected for the candle's symbol (see _judge_continuity)."""
        s, t = candle.symbol, candle.open_ms
        expected = group.next_open.get(s)
        if expected is None:
            group.next_open[s] = self.interval.open_after(t) if candle.is_closed else t
            group.newest[s] = (t, event_ms)
            return
        if candle.is_closed and t >= expected:
            group.finals_ahead.setdefault(s, set()).add(t)
            self._advance(group, s, expected)
            expected = group.next_open[s]
        newest = group.newest.get(s)
        if newest is None or (t, event_ms) > newest:
            group.newest[s] = newest = (t, event_ms)
        if newest[0] > expected:
            group.behind_since.setdefault(s, asyncio.get_running_loop().time())
        else:
            group.behind_since.pop(s, None)

    async def _judge_continuity(self, group: _Group) -> None:
        """Report a gap for every symbol whose final of an ended minute never came.

        A minute has ended once a candle of a later minute arrived. Its final may still be in
        flight on the other connection during a handover, so the verdict waits
        ``_FINAL_GRACE_S``. Catches what no reconnect shows: a stream stalled on a live
        connection, a final the exchange did not deliver, a handover that came too late.
        """
        if not group.behind_since:
            return
        cutoff = asyncio.get_running_loop().time() - _FINAL_GRACE_S
        late = [s for s, since in group.behind_since.items() if since <= cutoff]
        for s in late:
            del group.behind_since[s]
            newest_open, newest_event = group.newest[s]
            await self._gap((s,), group.next_open[s], newest_event, "final missing from the stream")
            self._advance(group, s, newest_open)

    def _advance(self, group: _Group, symbol: str, start: int) -> None:
        """Expect ``symbol``'s finals from ``start`` on, skipping those already seen."""
        ahead = group.finals_ahead.get(symbol)
        if ahead:
            ahead = {t for t in ahead if t >= start}
            while start in ahead:
                ahead.discard(start)
                start = self.interval.open_after(start)
            group.finals_ahead[symbol] = ahead
        group.next_open[symbol] = start


# With no Retry-After on a 418, assume Binance's shortest ban.
DEFAULT_BAN_S = 120.0


def _retry_after_s(exc: Exception) -> float | None:
    """Seconds a 418 (IP ban) or 429 handshake answer asks the client to wait, else None."""
    if not isinstance(exc, InvalidStatus) or exc.response.status_code not in (418, 429):
        return None
    value = exc.response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else DEFAULT_BAN_S
    except ValueError:
        return DEFAULT_BAN_S


def _raise_if_rejected(exc: Exception, group: _Group) -> None:
    """A 4xx handshake answer (bad stream names) is permanent: raise instead of retrying.

    Not a ban (418) or a rate limit (429): those end, and the client waits their Retry-After.
    """
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if 400 <= status < 500 and status not in (418, 429):
            body = (
                exc.response.body.decode("utf-8", errors="replace")[:300]
                if exc.response.body
                else ""
            )
            raise ExchangeError(
                f"the exchange refused the kline streams {group.streams[:5]}"
                f"{'...' if len(group.streams) > 5 else ''} with HTTP {status}: {body}"
            ) from None
