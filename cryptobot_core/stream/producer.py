"""The producer loop: Binance kline WebSocket → Kafka topic (key = symbol).

The WebSocket side is asyncio (``KlineStream``); Kafka sends happen on one sender thread
fed through a bounded queue, so the event loop never blocks on the broker. Nothing is
dropped silently: a record the broker does not acknowledge (outage, buffer full, delivery
timeout) is counted, logged and appended to a spool file on disk, which is re-sent once the
broker answers again, also after a restart of the producer.

``StreamGap`` events from the WebSocket client (reconnects) go to the ``stream_gaps``
collection; the repair job fills them from REST.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from cryptobot_core.errors import BrokerUnavailable, StoreError
from cryptobot_core.models import Candle
from cryptobot_core.settings import Settings
from cryptobot_core.store import StreamGap, open_store
from cryptobot_core.stream import kafka as kafka_util
from cryptobot_core.stream.heartbeat import Heartbeat
from cryptobot_core.stream.messages import encode_candle, encode_event, encode_malformed
from cryptobot_core.universe import configured_symbols

log = logging.getLogger(__name__)
# How often a producer that follows a rule checks whether the set has changed (s).
UNIVERSE_CHECK_S = 60.0

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
STREAM_CLOSE_TIMEOUT_S = 10.0
RESEND_ACK_TIMEOUT_S = 30.0

Record = tuple[bytes | None, bytes]  # (key, value)


@dataclass
class ProducerStats:
    """Counters the producer reports in its heartbeat."""

    messages: int = 0
    sent: int = 0
    acked: int = 0
    failed: int = 0
    spooled: int = 0
    resent: int = 0
    spool_pending: int = 0
    malformed: int = 0
    gaps: int = 0
    reconnects: int = 0
    broker_errors: int = 0
    messages_per_s: float = 0.0
    newest_event_time: datetime | None = None
    # Per symbol, the open time (ms) of the newest closed minute the broker acknowledged.
    # Carried from run to run: a restarted producer records the gap from here.
    watermarks: dict[str, int] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        """A BSON-friendly dict."""
        return asdict(self)


class Spool:
    """Append-only JSON-lines file of records the broker has not acknowledged.

    Durable and crash-safe:
    - every append is fsynced before it returns;
    - a re-send first *claims* the file (renames it to ``<name>.resending``) and deletes the
      claim only once every record in it was acknowledged by the broker, or spooled again by
      a failed send. A crash in between leaves the claim, which is re-sent on the next start
      (the consumer's idempotent upsert absorbs the duplicates);
    - a line torn by a crash mid-append is skipped with a log line, and the next append
      starts on a fresh line so the torn one never swallows a good record.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.claim_path = path.with_name(path.name + ".resending")
        self._lock = threading.Lock()
        self.torn = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        for existing in (self.path, self.claim_path):
            _end_with_newline(existing)

    def append(self, records: Sequence[Record]) -> None:
        """Add records (fsynced to disk before returning)."""
        if not records:
            return
        lines = "".join(
            json.dumps({"key": k.decode() if k else None, "value": v.decode()}) + "\n"
            for k, v in records
        )
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(lines)
            fh.flush()
            os.fsync(fh.fileno())

    def claim(self) -> list[Record]:
        """The records to re-send: an earlier unfinished claim, else the whole spool.

        They stay on disk until ``release()``.
        """
        with self._lock:
            if not self.claim_path.exists():
                if not self.path.exists():
                    return []
                os.replace(self.path, self.claim_path)
                _fsync_dir(self.path.parent)
            text = self.claim_path.read_text(encoding="utf-8")
        return self._parse(text)

    def release(self) -> None:
        """Forget the claimed records: each was acknowledged, or spooled again."""
        with self._lock:
            self.claim_path.unlink(missing_ok=True)
            _fsync_dir(self.path.parent)

    def take(self) -> list[Record]:
        """Claim and release at once (for tools and tests that deliver them themselves)."""
        records = self.claim()
        self.release()
        return records

    def _parse(self, text: str) -> list[Record]:
        out: list[Record] = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                out.append((item["key"].encode() if item["key"] else None, item["value"].encode()))
            except (ValueError, KeyError, TypeError, AttributeError):
                self.torn += 1
                log.warning(
                    "skipping torn spool line %d of %s (a crash mid-write): %.80r",
                    number,
                    self.claim_path,
                    line,
                )
        return out

    def __len__(self) -> int:
        with self._lock:
            count = 0
            for path in (self.path, self.claim_path):
                if path.exists():
                    with open(path, encoding="utf-8", errors="replace") as fh:
                        count += sum(1 for line in fh if line.strip())
            return count


def _end_with_newline(path: Path) -> None:
    """After a crash mid-append, start the next record on a line of its own."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) != b"\n":
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class KafkaSender:
    """One thread that sends queued records to Kafka and spools whatever fails."""

    def __init__(
        self,
        settings: Settings,
        stats: ProducerStats,
        spool: Spool,
        max_queue: int = kafka_util.MAX_IN_FLIGHT,
    ) -> None:
        self.settings = settings
        self.topic = settings.kafka_topic
        self.stats = stats
        self.spool = spool
        self.queue: queue.Queue[Record] = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._producer: KafkaProducer | None = None
        self._in_flight = 0
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._delay = BACKOFF_START_S
        self._reset = False
        self._thread = threading.Thread(target=self._run, name="kafka-sender", daemon=True)

    def start(self) -> KafkaSender:
        """Start the sender thread."""
        self._thread.start()
        return self

    def offer(self, key: bytes | None, value: bytes) -> None:
        """Queue a record without blocking; a full queue spools it instead."""
        self.stats.messages += 1
        try:
            self.queue.put_nowait((key, value))
        except queue.Full:
            self._spool([(key, value)], "send queue full")

    def _spool(self, records: Sequence[Record], why: str) -> None:
        self.spool.append(records)
        with self._lock:
            self.stats.spooled += len(records)
        log.warning("spooled %d record(s) to %s: %s", len(records), self.spool.path, why)

    def _healthy(self) -> bool:
        return time.monotonic() >= self._retry_at

    def _failed(self, exc: BaseException) -> None:
        self.stats.broker_errors += 1
        self._retry_at = time.monotonic() + self._delay
        log.warning("broker unavailable (%s); backing off %.1fs", exc, self._delay)
        self._delay = min(self._delay * 2, BACKOFF_MAX_S)
        if self._producer is not None:
            # A fresh producer after an outage: Tansu forgets producer ids on restart.
            producer, self._producer = self._producer, None
            threading.Thread(target=producer.close, kwargs={"timeout": 1}, daemon=True).start()

    def _ensure(self) -> KafkaProducer:
        if self._producer is None:
            kafka_util.ensure_topics(self.settings)
            self._producer = kafka_util.new_producer(self.settings)
            self._delay = BACKOFF_START_S
        return self._producer

    def _send(self, records: Sequence[Record], resend: bool = False) -> list[Any]:
        """Send records; returns their futures. What cannot be sent is spooled."""
        futures: list[Any] = []
        if self._reset:
            self._reset = False
            self._failed(BrokerUnavailable("records were not acknowledged"))
        if not self._healthy():
            self._spool(records, "broker backing off")
            return futures
        try:
            producer = self._ensure()
            for i, (key, value) in enumerate(records):
                while self._in_flight >= kafka_util.MAX_IN_FLIGHT:
                    producer.flush(timeout=1)  # bounded buffer: wait for acks first
                try:
                    fut = producer.send(self.topic, key=key, value=value)
                except (KafkaError, BrokerUnavailable) as exc:
                    self._spool(records[i:], f"send failed: {exc}")
                    self._failed(exc)
                    return futures
                with self._lock:
                    self._in_flight += 1
                    self.stats.sent += 1
                    self.stats.resent += resend
                fut.add_callback(self._acked, (key, value))
                fut.add_errback(self._not_acked, (key, value))
                futures.append(fut)
        except (KafkaError, BrokerUnavailable) as exc:
            self._spool(records, f"broker unavailable: {exc}")
            self._failed(exc)
            return []
        return futures

    def _acked(self, record: Record, _meta: Any) -> None:
        key, value = record
        # Only a closed minute moves the watermark; the byte test keeps the rest cheap.
        minute = _closed_minute(value) if key and CLOSED_MARK in value else None
        with self._lock:
            self._in_flight -= 1
            self.stats.acked += 1
            if minute is not None and key is not None:
                symbol = key.decode()
                if minute > self.stats.watermarks.get(symbol, -1):
                    self.stats.watermarks[symbol] = minute

    def stats_doc(self) -> dict[str, Any]:
        """The counters as a document, read consistently with the acknowledgements."""
        with self._lock:
            return self.stats.to_doc()

    def carry_watermarks(self, marks: dict[str, int]) -> None:
        """Start from an earlier run's watermarks (a newer acknowledgement wins)."""
        with self._lock:
            for symbol, mark in marks.items():
                if mark > self.stats.watermarks.get(symbol, -1):
                    self.stats.watermarks[symbol] = mark

    def _not_acked(self, record: Record, exc: BaseException) -> None:
        with self._lock:
            self._in_flight -= 1
            self.stats.failed += 1
        self.spool.append([record])
        with self._lock:
            self.stats.spooled += 1
        if not self._reset:
            log.warning("records not acknowledged, spooled for re-send: %s", exc)
        # The producer may be in a fatal state (e.g. the broker restarted and forgot its
        # producer id): the sender thread replaces it before sending again.
        self._reset = True

    def _resend_spool(self) -> None:
        """Re-send the spool; it leaves the disk only once the broker acknowledged it."""
        if not self._healthy() or not (self.spool.path.exists() or self.spool.claim_path.exists()):
            return
        records = self.spool.claim()
        if records:
            log.info("re-sending %d spooled record(s)", len(records))
            futures = self._send(records, resend=True)
            producer = self._producer
            if futures and producer is not None:
                try:
                    producer.flush(timeout=RESEND_ACK_TIMEOUT_S)
                except KafkaError as exc:
                    log.warning("re-send not confirmed yet: %s", exc)
            if not all(f.is_done for f in futures):
                return  # kept on disk; tried again on the next round
            # Each record is acknowledged, or was spooled again by its errback or by _send.
        self.spool.release()

    def _run(self) -> None:
        last_spool_check = 0.0
        while not (self._stop.is_set() and self.queue.empty()):
            batch: list[Record] = []
            try:
                batch.append(self.queue.get(timeout=0.2))
                while len(batch) < 1_000:
                    batch.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            if batch:
                self._send(batch)
            if time.monotonic() - last_spool_check > 1.0:
                last_spool_check = time.monotonic()
                self._resend_spool()
        self._flush_and_close()

    def _flush_and_close(self) -> None:
        producer = self._producer
        if producer is None:
            return
        try:
            producer.flush(timeout=10)
        except KafkaError as exc:
            log.warning("flush on shutdown failed: %s", exc)
        producer.close(timeout=5)  # unacknowledged records were spooled by the errbacks

    def stop(self, timeout: float = 30.0) -> None:
        """Send what is queued, flush, close; what cannot be delivered stays spooled."""
        self._stop.set()
        self._thread.join(timeout)
        leftover: list[Record] = []
        while not self.queue.empty():
            leftover.append(self.queue.get_nowait())
        if leftover:
            self._spool(leftover, "producer stopped before sending")

    @property
    def in_flight(self) -> int:
        """Records sent but not yet acknowledged."""
        return self._in_flight


CLOSED_MARK = b'"x":true'


def _closed_minute(value: bytes) -> int | None:
    """Open time of the closed kline an envelope carries, else None."""
    try:
        kline = json.loads(value)["event"]["k"]
    except (ValueError, KeyError, TypeError):
        return None
    return int(kline["t"]) if kline.get("x") is True and isinstance(kline.get("t"), int) else None


StreamFactory = Callable[[], Any]


class StreamProducer:
    """Runs the WebSocket → Kafka loop until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_id: str | None = None,
        symbols: Sequence[str] | None = None,
        stream_factory: StreamFactory | None = None,
        spool_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.stats = ProducerStats()
        self._store = open_store(settings)
        self.symbols = [s.upper() for s in (symbols or configured_symbols(settings, self._store))]
        # Under a rule (top:50:USDT) the set changes when symbols_sensor resolves it again.
        self._follows_universe = symbols is None and settings.symbol_rule is not None
        self._universe_checked = time.monotonic()
        self.universe_changed = False
        self.heartbeat = Heartbeat(self._store.heartbeats, "producer", run_id)
        self.spool = Spool(spool_path or settings.data_dir / "stream" / "producer-spool.jsonl")
        self._stream_factory = stream_factory or self._default_stream
        self._pending_gaps: list[StreamGap] = []
        # Restart gaps found so far, by span: (from, to) -> symbols.
        self._restart_gaps: dict[tuple[int, int], set[str]] = {}
        # The previous run's watermarks, until each symbol's first candle arrives.
        self._resume_from: dict[str, int] = {}
        self._watermarks_loaded = False
        self._rate_mark = (time.monotonic(), 0)
        self.sender: KafkaSender | None = None
        self._stream: Any = None

    def _default_stream(self) -> Any:
        # The exchange package owns the WS client; the ban another process met is respected.
        from cryptobot_core.exchange import KlineStream
        from cryptobot_core.exchange.rest import StoredBan

        return KlineStream(
            self.settings.ws_base_url,
            self.symbols,
            interval="1m",
            shared_ban=StoredBan(self.settings),
        )

    def run(self, stop: threading.Event | None = None) -> ProducerStats:
        """Blocking entry: run the asyncio loop until ``stop`` is set."""
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(self.run_async(stop or threading.Event()))
        finally:
            # Unlike asyncio.run, never wait forever for stray tasks of the WS client.
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=5))
            loop.close()

    async def run_async(self, stop: threading.Event) -> ProducerStats:
        """Stream klines to Kafka until ``stop`` is set (or the stream fails)."""
        self.sender = KafkaSender(self.settings, self.stats, self.spool).start()
        await asyncio.to_thread(self._load_watermarks)
        stream = self._stream = self._stream_factory()
        pump = asyncio.create_task(self._pump(stream))
        try:
            # Supervise from here so stopping never depends on the WebSocket saying anything.
            while not pump.done() and not stop.is_set():
                await asyncio.wait({pump}, timeout=0.2)
                if self.heartbeat.due():
                    await asyncio.to_thread(self._beat)
                if self._universe_due() and await asyncio.to_thread(self._universe_moved):
                    # Stop cleanly: the supervisor starts a producer on the new set, and the
                    # restart's gap is repaired like any other.
                    self.universe_changed = True
                    break
            if pump.done():
                pump.result()  # re-raise a failure of the stream
            else:
                pump.cancel()
                await asyncio.wait({pump}, timeout=STREAM_CLOSE_TIMEOUT_S)
        finally:
            # Deliver (or spool) what was received, then close the WebSocket side.
            await asyncio.to_thread(self.sender.stop)
            try:
                await asyncio.wait_for(_close(stream), STREAM_CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.warning("the kline stream did not close within %ss", STREAM_CLOSE_TIMEOUT_S)
            self._sync_stream_stats(stream)
            await asyncio.to_thread(self._beat, True)
            self._store.close()
        return self.stats

    def _universe_due(self) -> bool:
        if not self._follows_universe:
            return False
        now = time.monotonic()
        if now - self._universe_checked < UNIVERSE_CHECK_S:
            return False
        self._universe_checked = now
        return True

    def _universe_moved(self) -> bool:
        """True when the rule's stored resolution is no longer the set being streamed."""
        rule = self.settings.symbol_rule
        assert rule is not None
        try:
            kept = self._store.universe.read(rule.text)
        except StoreError as exc:
            log.warning("cannot read the symbol universe (%s); keeping the current set", exc)
            return False
        if kept is None or set(kept.symbols) == set(self.symbols):
            return False
        joined = sorted(set(kept.symbols) - set(self.symbols))
        left = sorted(set(self.symbols) - set(kept.symbols))
        log.warning(
            "the universe %s changed (joined: %s; left: %s): stopping so the producer restarts "
            "on the new set",
            rule,
            ", ".join(joined) or "none",
            ", ".join(left) or "none",
        )
        return True

    async def _pump(self, stream: Any) -> None:
        async for item in _iterate(stream):
            self._handle(item)

    def _handle(self, item: Any) -> None:
        sender = self.sender
        assert sender is not None
        kind = type(item).__name__
        if isinstance(item, Candle):
            self._check_resume(item)
            raw = getattr(item, "raw", None)
            value = encode_event(raw) if isinstance(raw, dict) else encode_candle(item)
            sender.offer(item.symbol.encode(), value)
            if item.event_time and (
                self.stats.newest_event_time is None
                or item.event_time > self.stats.newest_event_time
            ):
                self.stats.newest_event_time = item.event_time
        elif kind == "MalformedFrame":
            self.stats.malformed += 1
            raw = item.raw if isinstance(item.raw, str) else repr(item.raw)
            sender.offer(None, encode_malformed(raw, str(item.reason)))
        elif kind == "StreamGap":
            self.stats.gaps += 1
            to_ms = int(item.missed_to_ms)
            # Nothing received before the drop: assume the whole UTC day may be missing.
            from_ms = (
                int(item.missed_from_ms)
                if item.missed_from_ms is not None
                else to_ms - to_ms % 86_400_000
            )
            gap = StreamGap.of_span(item.symbols, from_ms, to_ms, str(item.reason))
            self._pending_gaps.append(gap)
            log.warning("stream gap %s", gap.id)
        else:
            log.error("unexpected item from the kline stream: %r", item)

    def _load_watermarks(self) -> None:
        """Read the previous run's watermarks (before this run's first heartbeat replaces them)."""
        if self._watermarks_loaded:
            return
        try:
            doc = self._store.heartbeats.read(["producer"]).get("producer") or {}
        except StoreError as exc:
            log.warning("previous watermarks not read yet (store down?): %s", exc)
            return
        marks = (doc.get("stats") or {}).get("watermarks") or {}
        self._resume_from = {s: marks[s] for s in self.symbols if isinstance(marks.get(s), int)}
        assert self.sender is not None
        self.sender.carry_watermarks(self._resume_from)
        self._watermarks_loaded = True
        if self._resume_from:
            log.info("resuming after the previous run's watermarks of %d symbols", len(marks))

    def _check_resume(self, candle: Candle) -> None:
        """On a symbol's first candle after a restart, record the minutes missed meanwhile."""
        mark = self._resume_from.pop(candle.symbol, None)
        if mark is None:
            return
        first_missing = mark + 60_000
        if candle.open_ms > first_missing:
            span = (first_missing, candle.open_ms)
            self._restart_gaps.setdefault(span, set()).add(candle.symbol)

    def _sync_stream_stats(self, stream: Any) -> None:
        st = getattr(stream, "stats", None)
        if st is not None:
            self.stats.reconnects = int(getattr(st, "reconnects", 0))

    def _beat(self, force: bool = False) -> None:
        if not self._watermarks_loaded:
            # Writing a heartbeat now would erase the previous run's watermarks unread.
            self._load_watermarks()
            if not self._watermarks_loaded:
                return
        self._flush_gaps()
        if self._stream is not None:
            self._sync_stream_stats(self._stream)
        now = time.monotonic()
        then, count = self._rate_mark
        if now > then:
            self.stats.messages_per_s = round((self.stats.messages - count) / (now - then), 2)
        self._rate_mark = (now, self.stats.messages)
        self.stats.spool_pending = len(self.spool)
        doc = self.sender.stats_doc() if self.sender is not None else self.stats.to_doc()
        self.heartbeat.beat(doc, force=force)

    def _flush_gaps(self) -> None:
        restarts, self._restart_gaps = self._restart_gaps, {}
        for (lo, hi), symbols in restarts.items():
            gap = StreamGap.of_span(
                symbols, lo, hi, "producer restart: minutes after the last acknowledged one"
            )
            self._pending_gaps.append(gap)
            self.stats.gaps += 1
            log.warning("stream gap %s", gap.id)
        if not self._pending_gaps:
            return
        gaps, self._pending_gaps = self._pending_gaps, []
        try:
            self._store.stream_gaps.record(gaps)
        except StoreError as exc:
            log.warning("gaps kept in memory until the store is back: %s", exc)
            self._pending_gaps = gaps + self._pending_gaps


async def _iterate(stream: Any) -> AsyncIterator[Any]:
    async for item in stream:
        yield item


async def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)
    if close is None:
        return
    try:
        res = close()
        if asyncio.iscoroutine(res):
            await res
    except Exception as exc:  # closing must never mask the loop's outcome
        log.debug("closing the kline stream: %s", exc)
