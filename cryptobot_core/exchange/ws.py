"""Binance kline WebSocket streams: many symbols, reconnects reported as gaps, no silent loss.

Raw frame of a combined stream (``/stream?streams=btcusdt@kline_1m/...``)::

    {"stream": "btcusdt@kline_1m",
     "data": {"e": "kline", "E": 1672515782136, "s": "BTCUSDT",
              "k": {"t": 1672515780000, "T": 1672515839999, "s": "BTCUSDT", "i": "1m",
                    "f": 100, "L": 200, "o": "0.0010", "c": "0.0020", "h": "0.0025",
                    "l": "0.0015", "v": "1000", "n": 100, "x": false, "q": "1.0000",
                    "V": "500", "Q": "0.500", "B": "123456"}}}

Server shutdown notice (reconnect at once)::

    {"stream": "...", "data": {"e": "serverShutdown", "E": 1672515782136}}

The stream yields :class:`Candle` (source ws, event_time set), :class:`StreamGap` after every
reconnect (the event-time range that may have been missed, to repair from REST), and
:class:`MalformedFrame` for frames that could not be parsed (to dead-letter them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import OrderedDict
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from cryptobot_core.errors import ExchangeError, ValidationError
from cryptobot_core.exchange.exchange_info import normalize_symbol
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


@dataclass(eq=False)
class _Conn:
    ws: ClientConnection
    opened_at: float
    frames: int = 0
    first_frame: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[str] | None = None

    async def close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            # wait() instead of awaiting the task: the reader's CancelledError stays inside,
            # while a cancellation of *our* caller still propagates (never swallowed).
            await asyncio.wait({self.task})
        with contextlib.suppress(Exception):
            await self.ws.close()


@dataclass(eq=False)
class _Group:
    """The streams served by one connection (at most max_streams_per_connection)."""

    index: int
    symbols: tuple[str, ...]
    streams: list[str]
    last_event_ms: dict[str, int] = field(default_factory=dict)  # per symbol
    pending_gap: tuple[str, int | None] | None = None
    seen: OrderedDict[tuple[str, int, int], None] = field(default_factory=OrderedDict)


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
        rotate_after_s: float = 23.5 * 3600,
        reconnect_backoff: tuple[float, float] = (0.5, 30.0),
        open_timeout_s: float = 10.0,
        queue_size: int = 10_000,
    ) -> None:
        if not ws_base_url.startswith(("ws://", "wss://")):
            raise ValidationError(
                f"ws_base_url must start with ws:// or wss://, got {ws_base_url!r}"
            )
        if not 1 <= max_streams_per_connection <= MAX_STREAMS_PER_CONNECTION:
            raise ValidationError(
                f"max_streams_per_connection must be 1..{MAX_STREAMS_PER_CONNECTION}, got {max_streams_per_connection}"
            )
        if silence_timeout_s <= 0 or rotate_after_s <= 0:
            raise ValidationError("silence_timeout_s and rotate_after_s must be positive")
        syms = list(dict.fromkeys(normalize_symbol(s) for s in symbols))
        if not syms:
            raise ValidationError("at least one symbol is required, e.g. ['BTCUSDT']")
        self.base_url = ws_base_url.rstrip("/")
        self.interval = Interval.parse(interval)
        self.symbols = tuple(syms)
        self.silence_timeout_s = silence_timeout_s
        self.rotate_after_s = rotate_after_s
        self.reconnect_backoff = reconnect_backoff
        self.open_timeout_s = open_timeout_s
        self.stats = StreamStats()
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
        log.info("kline stream connection %d open (%d streams)", group.index, len(group.streams))
        return conn

    def _backoff(self, attempt: int) -> float:
        lo, hi = self.reconnect_backoff
        delay = min(hi, lo * 2**attempt)
        return delay / 2 + random.uniform(0, delay / 2)

    async def _supervise(self, group: _Group) -> None:
        """Keep one group connected: reconnect with backoff, rotate before the 24 h cut."""
        loop = asyncio.get_running_loop()
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
                    try:
                        conn = await self._open(group)
                        gap_reason = None
                    except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                        _raise_if_rejected(exc, group)
                        self.stats.connect_failures += 1
                        # A ban (418) or rate limit (429) says how long to stay away.
                        delay = max(self._backoff(attempt), _retry_after_s(exc) or 0.0)
                        attempt += 1
                        log.warning(
                            "kline stream connect failed (%s); retrying in %.1f s", exc, delay
                        )
                        gap_reason = gap_reason or f"connect failed: {exc}"
                        await asyncio.sleep(delay)
                        continue
                rotate_in = conn.opened_at + self.rotate_after_s - loop.time()
                assert conn.task is not None
                done, _ = await asyncio.wait({conn.task}, timeout=max(0.0, rotate_in))
                if conn.task in done:
                    reason = self._ended(conn.task)
                    if conn.frames:
                        attempt = 0
                    await conn.close()
                    conn = None
                    self.stats.reconnects += 1
                    gap_reason = reason
                    log.warning(
                        "kline stream connection %d lost: %s; reconnecting", group.index, reason
                    )
                    if reason != _SERVER_SHUTDOWN:
                        await asyncio.sleep(self._backoff(attempt))
                        attempt += 1
                    continue
                conn = await self._rotate(group, conn)
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

    async def _rotate(self, group: _Group, old: _Conn) -> _Conn:
        """Open the replacement first, wait for its first frame, then close the old one."""
        loop = asyncio.get_running_loop()
        try:
            new = await self._open(group)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            log.warning(
                "kline stream rotation failed to connect (%s); keeping the old connection", exc
            )
            old.opened_at = loop.time() - self.rotate_after_s + self._backoff(0)
            return old
        assert new.task is not None
        waiter = asyncio.create_task(new.first_frame.wait())
        await asyncio.wait(
            {waiter, new.task}, timeout=self.silence_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if not new.first_frame.is_set():
            await new.close()
            old.opened_at = loop.time() - self.rotate_after_s + self._backoff(0)
            log.warning("replacement connection sent nothing; keeping the old one")
            return old
        await old.close()
        self.stats.rotations += 1
        log.info("kline stream connection %d rotated", group.index)
        return new

    @staticmethod
    def _ended(task: asyncio.Task[str]) -> str:
        exc = task.exception()
        return task.result() if exc is None else f"reader failed: {exc!r}"

    async def _read(self, group: _Group, conn: _Conn) -> str:
        """Read frames until the connection ends; returns why it ended."""
        while True:
            try:
                raw = await asyncio.wait_for(conn.ws.recv(), self.silence_timeout_s)
            except TimeoutError:
                return f"silence: no frame for {self.silence_timeout_s:g} s"
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else "none"
                return f"connection closed (code {code})"
            conn.frames += 1
            conn.first_frame.set()
            self.stats.messages += 1
            text = raw if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
            if await self._handle(group, text):
                return _SERVER_SHUTDOWN

    async def _emit(self, item: StreamItem) -> None:
        await self._queue.put(item)

    async def _malformed(self, raw: str, reason: str) -> None:
        self.stats.malformed += 1
        log.warning("malformed kline frame (%s): %.200s", reason, raw)
        await self._emit(MalformedFrame(raw=raw, reason=reason))

    async def _handle(self, group: _Group, raw: str) -> bool:
        """Turn one frame into stream items; True when the server announced a shutdown."""
        try:
            msg: Any = json.loads(raw)
        except json.JSONDecodeError as exc:
            await self._malformed(raw, f"not JSON: {exc.msg}")
            return False
        if not isinstance(msg, dict):
            await self._malformed(raw, "frame is not a JSON object")
            return False
        if "id" in msg and "result" in msg:
            return False  # reply to our SUBSCRIBE
        if "code" in msg and "msg" in msg and "e" not in msg:
            await self._malformed(raw, f"control error {msg.get('code')}: {msg.get('msg')}")
            return False
        data = msg.get("data", msg) if "stream" in msg else msg
        if not isinstance(data, dict):
            await self._malformed(raw, "data is not a JSON object")
            return False
        event = data.get("e")
        if event == "serverShutdown":
            log.warning("server announced shutdown; reconnecting now")
            return True
        if event != "kline":
            await self._malformed(raw, f"unexpected event type {event!r}")
            return False
        try:
            candle = Candle.from_ws_event(data)
        except ValidationError as exc:
            await self._malformed(raw, str(exc))
            return False
        if candle.symbol not in group.symbols or candle.interval is not self.interval:
            await self._malformed(
                raw, f"event for a stream not subscribed: {candle.symbol} {candle.interval}"
            )
            return False
        assert candle.event_time is not None
        event_ms = dt_to_ms(candle.event_time)
        key = (candle.symbol, candle.open_ms, event_ms)
        if key in group.seen:
            self.stats.duplicates += 1  # the same event from both connections while rotating
            return False
        group.seen[key] = None
        if len(group.seen) > max(10_000, 20 * len(group.symbols)):
            group.seen.popitem(last=False)
        if group.pending_gap is not None:
            reason, missed_from = group.pending_gap
            group.pending_gap = None
            self.stats.gaps += 1
            await self._emit(StreamGap(group.symbols, self.interval, missed_from, event_ms, reason))
        if event_ms > group.last_event_ms.get(candle.symbol, -1):
            group.last_event_ms[candle.symbol] = event_ms
        self.stats.candles += 1
        await self._emit(candle)
        return False


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
