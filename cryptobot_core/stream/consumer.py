"""The consumer loop: Kafka batches → validated, collapsed candles → ``streaming_data_1m``.

At-least-once, made exact by the store's idempotent, guarded upsert:

1. poll a batch; decode and validate every message;
2. collapse the updates of each (symbol, open_time) to the newest one;
3. upsert the candles (an older update never overwrites a newer one) and record the
   malformed messages in ``dead_letters``; while the store is down, pause the partitions
   and retry with bounded backoff, never moving on;
4. only then commit the batch's offsets.

A crash anywhere before 4 replays the batch; the replay writes nothing new.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata

from cryptobot_core import failpoints
from cryptobot_core.errors import BrokerUnavailable, StoreError
from cryptobot_core.models import Candle, dt_to_ms
from cryptobot_core.settings import Settings
from cryptobot_core.store import DeadLetter, StreamGap, open_store
from cryptobot_core.stream import kafka as kafka_util
from cryptobot_core.stream.heartbeat import Heartbeat
from cryptobot_core.stream.messages import MessageError, collapse, decode, now_ms

log = logging.getLogger(__name__)
# The legs of a message's way from the exchange to the store (see ConsumerStats.stages_ms).
STAGES = ("exchange_to_producer", "producer_to_broker", "broker_to_consumer", "consumer_to_store")

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
END_OFFSETS_EVERY_S = 30.0
DEAD_LETTER_TEXT_MAX = 16 * 1024


def percentile(values: list[int], q: float) -> float:
    """Nearest-rank q-quantile (0..1) of a non-empty list."""
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))])


@dataclass
class ConsumerStats:
    """Counters the consumer reports in its heartbeat."""

    messages: int = 0
    candles_written: int = 0
    inserted: int = 0
    updated: int = 0
    dead_letters: int = 0
    batches: int = 0
    commits: int = 0
    commit_failures: int = 0
    store_retries: int = 0
    broker_errors: int = 0
    topic_resets: int = 0
    lag: int | None = None
    lag_corrected: bool = False
    messages_per_s: float = 0.0
    # Over the last heartbeat interval, per candle written: exchange event time → write
    # done, and producer receive time → write done (the pipeline's own share).
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None
    pipeline_ms_p50: float | None = None
    pipeline_ms_p99: float | None = None
    # Where that time goes, per message, as [p50, p99] ms over the same interval: exchange
    # event → producer receipt, receipt → broker record time (the producer's send and
    # batching), record time → this poll (broker and fetch), poll → write done (the store).
    stages_ms: dict[str, list[float]] = field(default_factory=dict)
    newest_event_time: datetime | None = None
    offsets: dict[str, int] = field(default_factory=dict)

    def to_doc(self) -> dict[str, Any]:
        """A BSON-friendly dict."""
        return asdict(self)


def dead_letter_text(value: bytes | None) -> str:
    """What a dead letter keeps of a refused value: its text, or a hex dump if not UTF-8.

    Values above ``DEAD_LETTER_TEXT_MAX`` keep their head (and say how long they were);
    the whole value stays on the topic at the recorded offset.
    """
    if not value:
        return ""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = "hex:" + value.hex()
    if len(text) > DEAD_LETTER_TEXT_MAX:
        text = (
            f"{text[:DEAD_LETTER_TEXT_MAX]}... [{len(value)} bytes; the full value is on the topic]"
        )
    return text


class StreamConsumer:
    """Runs the consumer loop until ``stop`` is set."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_id: str | None = None,
        poll_timeout_ms: int = 500,
        max_records: int = 2_000,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self.settings = settings
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.backoff_max_s = backoff_max_s
        self.stats = ConsumerStats()
        # A list is enforced: a message for another symbol is dead-lettered. Under a rule the
        # producer decides the set (it changes daily), so any well-formed symbol is taken.
        self._symbols = frozenset(settings.symbol_list) if settings.symbol_rule is None else None
        # Symbols whose first candle (since start or a topic reset) was checked against the store.
        self._continuous: set[str] = set()
        self._store = open_store(settings)
        self.store = self._store.stream
        self.heartbeat = Heartbeat(self._store.heartbeats, "consumer", run_id)
        self._consumer: KafkaConsumer | None = None
        self._dl_producer: KafkaProducer | None = None
        self._read_up_to: dict[TopicPartition, int] = {}
        self._topic_id: Any = None
        self._ends_at = 0.0
        self._latency: list[int] = []
        self._pipeline: list[int] = []
        self._stages: dict[str, list[int]] = {name: [] for name in STAGES}
        self._ensured_at = 0.0
        self._rate_mark = (time.monotonic(), 0)

    # -- set-up ---------------------------------------------------------------------------

    def _wait(self, stop: threading.Event, delay: float) -> bool:
        """Sleep ``delay`` unless stopped; True when stop was requested."""
        return stop.wait(delay)

    def _connect(self, stop: threading.Event) -> KafkaConsumer | None:
        delay = BACKOFF_START_S
        while not stop.is_set():
            try:
                self.store.ensure_indexes()
                kafka_util.ensure_topics(self.settings)
                consumer = kafka_util.new_consumer(self.settings)
                consumer.subscribe([self.settings.kafka_topic])
                return consumer
            except (StoreError, BrokerUnavailable) as exc:
                log.warning("consumer start-up failed (%s); retrying in %.1fs", exc, delay)
                self.stats.broker_errors += isinstance(exc, BrokerUnavailable)
                self._beat()
                if self._wait(stop, delay):
                    break
                delay = min(delay * 2, self.backoff_max_s)
        return None

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> ConsumerStats:
        """Consume until ``stop`` is set; returns the final counters."""
        stop = stop or threading.Event()
        self._consumer = self._connect(stop)
        try:
            while self._consumer is not None and not stop.is_set():
                self.run_once(stop)
        finally:
            self.close()
        return self.stats

    def run_once(self, stop: threading.Event) -> int:
        """Poll, write and commit one batch; returns the number of messages in it."""
        consumer = self._consumer
        if consumer is None:
            raise BrokerUnavailable("consumer is not connected")
        try:
            batch = consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
        except KafkaError as exc:
            # The client reconnects by itself; count it and back off briefly.
            self.stats.broker_errors += 1
            log.warning("poll failed: %s", exc)
            self._wait(stop, 1.0)
            return 0
        records = [rec for recs in batch.values() for rec in recs]
        processed = self._process(consumer, records, stop) if records else 0
        self._check_topic_recreated(consumer)
        self._beat()
        return processed

    def _check_topic_recreated(self, consumer: KafkaConsumer) -> None:
        """After a broker restart that lost the topic, re-read the new one from its start.

        Positions refer to the old topic; the new one may already hold records below them
        (Tansu keeps nothing across a restart). Re-reading is harmless (idempotent upsert).
        """
        current = kafka_util.topic_id(consumer, self.settings.kafka_topic)
        if current is None:
            # The topic vanished (in-memory broker restarted): recreate it with the
            # configured partitions rather than wait for the producer.
            if self._topic_id is not None and time.monotonic() - self._ensured_at > 5:
                self._ensured_at = time.monotonic()
                try:
                    kafka_util.ensure_topics(self.settings)
                except BrokerUnavailable as exc:
                    log.debug("topic not recreated yet: %s", exc)
            return
        if self._topic_id is not None and current != self._topic_id:
            log.warning(
                "topic %s was recreated (broker restart?); re-reading it from the start",
                self.settings.kafka_topic,
            )
            self.stats.topic_resets += 1
            self._read_up_to.clear()
            self._continuous.clear()
            assigned = consumer.assignment()
            if assigned:
                consumer.seek_to_beginning(*assigned)
        self._topic_id = current

    def _process(self, consumer: KafkaConsumer, records: list[Any], stop: threading.Event) -> int:
        """Validate, collapse, write and commit one polled batch."""
        polled = now_ms()
        candles: list[Candle] = []
        received: list[int] = []
        stamps: list[tuple[int | None, int, int]] = []
        dead: list[DeadLetter] = []
        offsets: dict[TopicPartition, int] = {}
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            offsets[tp] = max(offsets.get(tp, -1), rec.offset)
            try:
                msg = decode(rec.value, rec.key, symbols=self._symbols)
                candles.append(msg.candle)
                received.append(msg.received_at_ms)
                event = msg.candle.event_time
                stamps.append(
                    (dt_to_ms(event) if event else None, msg.received_at_ms, rec.timestamp)
                )
            except MessageError as exc:
                dead.append(
                    DeadLetter(
                        exc.reason,
                        dead_letter_text(rec.value),
                        rec.topic,
                        rec.partition,
                        rec.offset,
                        datetime.now(UTC),
                    )
                )
        newest = collapse(candles)
        self._check_continuity(newest)
        if not self._write(newest, dead, stop):
            # Stopped while the store was down: nothing committed, the batch will replay.
            return 0
        failpoints.hit("consumer.after_write")
        done = now_ms()
        self._latency.extend(done - dt_to_ms(c.event_time) for c in newest if c.event_time)
        self._pipeline.extend(done - r for r in received)
        self._record_stages(stamps, polled, done)
        self._commit(consumer, offsets)
        for tp, off in offsets.items():
            self._read_up_to[tp] = max(self._read_up_to.get(tp, 0), off + 1)
        self.stats.messages += len(records)
        self.stats.batches += 1
        self.stats.dead_letters += len(dead)
        if newest:
            top = max(c.event_time or c.open_time for c in newest)
            if self.stats.newest_event_time is None or top > self.stats.newest_event_time:
                self.stats.newest_event_time = top
        return len(records)

    def _check_continuity(self, candles: list[Candle]) -> None:
        """Record a gap when a symbol's first candle is beyond the newest one stored.

        Runs once per symbol after a start or a topic reset, before the batch is written:
        records lost upstream (acknowledged by a broker that then lost them, a producer that
        died with full queues) show as minutes between the store's newest candle and the
        first one the topic still has. Repair fills the gap; a replay (first candle at or
        before the newest stored) records nothing.
        """
        first: dict[str, Candle] = {}
        for c in candles:
            if c.symbol not in self._continuous and (
                c.symbol not in first or c.open_ms < first[c.symbol].open_ms
            ):
                first[c.symbol] = c
        if not first:
            return
        spans: dict[tuple[int, int], list[str]] = {}
        try:
            for symbol, candle in first.items():
                held = self.store.latest(symbol)
                if held is not None:
                    start = held.open_ms + (60_000 if held.is_closed else 0)
                    if candle.open_ms > start:
                        spans.setdefault((start, candle.open_ms), []).append(symbol)
            gaps = [
                StreamGap.of_span(symbols, lo, hi, "consumer: minutes missing from the topic")
                for (lo, hi), symbols in spans.items()
            ]
            self._store.stream_gaps.record(gaps)
        except StoreError as exc:
            log.warning("continuity not checked (store unavailable): %s", exc)
            return
        for gap in gaps:
            log.warning("stream gap %s (records lost before the topic)", gap.id)
        self._continuous.update(first)

    def _write(self, candles: list[Candle], dead: list[DeadLetter], stop: threading.Event) -> bool:
        """Write candles and dead letters, retrying while the store is down; False if stopped."""
        delay = BACKOFF_START_S
        paused = False
        consumer = self._consumer
        try:
            while True:
                try:
                    result = self.store.upsert(candles)
                    self._record_dead_letters(dead)
                    self.stats.candles_written += len(candles)
                    self.stats.inserted += result.inserted
                    self.stats.updated += result.updated
                    return True
                except StoreError as exc:
                    self.stats.store_retries += 1
                    log.warning("store write failed (%s); retrying in %.1fs", exc, delay)
                    if consumer is not None and not paused:
                        # Pause fetching but keep polling so the group keeps this member.
                        consumer.pause(*consumer.assignment())
                        paused = True
                    if self._wait(stop, delay):
                        return False
                    if consumer is not None:
                        self._keep_membership(consumer)
                    delay = min(delay * 2, self.backoff_max_s)
        finally:
            if paused and consumer is not None:
                consumer.resume(*consumer.paused())

    @staticmethod
    def _keep_membership(consumer: KafkaConsumer) -> None:
        """Poll while the store is down, so the group keeps this member, losing nothing.

        Paused partitions return no records, but a rebalance may assign new, unpaused ones
        whose records a poll returns (and moves past). Those are put back: the position is
        set to the first returned offset so the next real poll reads them again, and the
        new partitions are paused too.
        """
        batch = consumer.poll(timeout_ms=0)
        for tp, recs in batch.items():
            if recs:
                consumer.seek(tp, min(r.offset for r in recs))
        unpaused = consumer.assignment() - consumer.paused()
        if unpaused:
            consumer.pause(*unpaused)

    def _record_dead_letters(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        self._store.dead_letters.record(dead)
        for d in dead:
            log.warning("dead letter %s: %s", d.id, d.reason)
        self._publish_dead_letters(dead)

    def _publish_dead_letters(self, dead: list[DeadLetter]) -> None:
        # The collection is the durable record; the topic is a best-effort copy for tooling.
        try:
            if self._dl_producer is None:
                self._dl_producer = kafka_util.new_producer(
                    self.settings, client_id="cryptobot-stream-dead-letters"
                )
            for d in dead:
                body = {**d.to_document(), "at": d.at.isoformat()}
                self._dl_producer.send(
                    self.settings.kafka_dead_letter_topic,
                    key=d.id.encode(),
                    value=json.dumps(body).encode(),
                )
            self._dl_producer.flush(timeout=10)
        except (KafkaError, BrokerUnavailable) as exc:
            log.error(
                "dead letters %s recorded in MongoDB but not on the dead-letter topic: %s",
                [d.id for d in dead],
                exc,
            )

    def _commit(self, consumer: KafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        commit = {tp: OffsetAndMetadata(off + 1, "", -1) for tp, off in offsets.items()}
        try:
            consumer.commit(commit)
            self.stats.commits += 1
            for tp, off in offsets.items():
                self.stats.offsets[f"{tp.topic}:{tp.partition}"] = off + 1
        except (CommitFailedError, KafkaError) as exc:
            # A rebalance or broker restart took the partitions away: the new owner replays
            # from the last commit, and the replay is harmless (idempotent upsert).
            self.stats.commit_failures += 1
            log.warning("offset commit failed, batch will be replayed: %s", exc)

    # -- reporting ---------------------------------------------------------------------------

    def measure_lag(self) -> None:
        """Update lag from the broker's end offsets, cross-checked against what was read."""
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        if not assigned:
            return
        ends: dict[TopicPartition, int | None] = {}
        try:
            positions = {tp: consumer.position(tp, timeout_ms=2_000) for tp in assigned}
            # end_offsets() is a blocking round trip (and unreliable on Tansu): ask it only
            # now and then; the fetch high watermarks in between cost nothing.
            if time.monotonic() - self._ends_at > END_OFFSETS_EVERY_S:
                self._ends_at = time.monotonic()
                ends = dict(consumer.end_offsets(list(assigned)))
        except (KafkaError, ValueError) as exc:
            log.debug("lag not measured: %s", exc)
            return
        for tp in assigned:
            hw = consumer.highwater(tp)
            if hw is not None and (ends.get(tp) is None or hw > (ends[tp] or 0)):
                ends[tp] = hw
        known = {tp: p for tp, p in positions.items() if p is not None}
        self.stats.lag, self.stats.lag_corrected = kafka_util.lag(ends, known, self._read_up_to)

    def _record_stages(
        self, stamps: list[tuple[int | None, int, int]], polled: int, done: int
    ) -> None:
        exchange, produce, broker, store = (self._stages[name] for name in STAGES)
        for event, received, record in stamps:
            if event is not None:
                exchange.append(received - event)
            if record > 0:  # the record's CreateTime, stamped when the producer sent it
                produce.append(record - received)
                broker.append(polled - record)
            store.append(done - polled)

    def _beat(self) -> None:
        if not self.heartbeat.due():
            return
        now = time.monotonic()
        then, count = self._rate_mark
        if now > then:
            self.stats.messages_per_s = round((self.stats.messages - count) / (now - then), 2)
        self._rate_mark = (now, self.stats.messages)
        if self._latency:
            self.stats.latency_ms_p50 = percentile(self._latency, 0.5)
            self.stats.latency_ms_p99 = percentile(self._latency, 0.99)
            self._latency = []
        if self._pipeline:
            self.stats.pipeline_ms_p50 = percentile(self._pipeline, 0.5)
            self.stats.pipeline_ms_p99 = percentile(self._pipeline, 0.99)
            self._pipeline = []
        for name, values in self._stages.items():
            if values:
                self.stats.stages_ms[name] = [percentile(values, 0.5), percentile(values, 0.99)]
                self._stages[name] = []
        self.measure_lag()
        self.heartbeat.beat(self.stats.to_doc())

    def close(self) -> None:
        """Leave the group and close clients (offsets already committed per batch)."""
        self.heartbeat.beat(self.stats.to_doc(), force=True)
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except Exception as exc:  # closing must never mask the real outcome
                log.debug("consumer close: %s", exc)
            self._consumer = None
        if self._dl_producer is not None:
            try:
                self._dl_producer.close(timeout=5)
            except Exception as exc:
                log.debug("dead-letter producer close: %s", exc)
            self._dl_producer = None
        self._store.close()
