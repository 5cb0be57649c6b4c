"""Pure logic: the envelope, collapse, lag, gap spans, supervision decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka import TopicPartition

from cryptobot_core.store import StreamGap
from cryptobot_core.stream.kafka import lag
from cryptobot_core.stream.messages import (
    MessageError,
    collapse,
    decode,
    encode_candle,
    encode_event,
    encode_malformed,
)
from cryptobot_core.stream.repair import scan_window, spans
from cryptobot_core.stream.supervision import Action, ActiveRun, decide
from tests.core.stream.conftest import T0, make_candle


def test_envelope_round_trip_keeps_decimal_strings() -> None:
    c = make_candle("BTCUSDT", T0, price="0.00012300")
    value = encode_candle(c, received_at_ms=T0 + 61_000)
    body = json.loads(value)
    assert body["v"] == 1 and body["received_at"] == T0 + 61_000
    assert body["event"]["k"]["o"] == "0.00012300"  # trailing zeros intact
    msg = decode(value, b"BTCUSDT")
    assert msg.candle == c and msg.received_at_ms == T0 + 61_000


@pytest.mark.parametrize(
    ("value", "key", "reason"),
    [
        (None, None, "empty message"),
        (b"\x00\x01", None, "not UTF-8 JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b'{"v": 2, "event": {}}', None, "unsupported envelope version 2"),
        (b'{"v": 1}', None, "no 'event' object"),
        (b'{"v": 1, "event": {"e": "trade"}, "received_at": 1}', None, "not a kline event"),
        (
            encode_malformed("{oops", "bad json"),
            None,
            "malformed frame from the exchange: bad json",
        ),
        (encode_candle(make_candle("BTCUSDT", T0)), b"ETHUSDT", "does not match symbol"),
    ],
)
def test_decode_rejects_with_a_reason(value: bytes | None, key: bytes | None, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode(value, key)


def test_decode_rejects_other_intervals_and_float_prices() -> None:
    ev = make_candle("BTCUSDT", T0).to_ws_event()
    ev["k"]["i"] = "5m"
    with pytest.raises(MessageError, match="1m klines only"):
        decode(encode_event(ev))
    ev = make_candle("BTCUSDT", T0).to_ws_event()
    ev["k"]["c"] = 1.5
    with pytest.raises(MessageError, match="close must be a decimal string"):
        decode(encode_event(ev))


def test_collapse_prefers_closed_then_newest_event() -> None:
    open_late = make_candle("BTCUSDT", T0, closed=False, event_ms=T0 + 70_000, price="3.00")
    closed = make_candle("BTCUSDT", T0, closed=True, event_ms=T0 + 60_000, price="2.00")
    open_early = make_candle("BTCUSDT", T0, closed=False, event_ms=T0 + 1_000, price="1.00")
    other = make_candle("ETHUSDT", T0, closed=False, event_ms=T0 + 5_000)
    assert collapse([open_early, closed, open_late, other]) == [closed, other]
    assert collapse([open_early, open_late]) == [open_late]


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 120_000)), min_size=1, max_size=20))
def test_collapse_keeps_the_maximum_whatever_the_order(updates: list[tuple[bool, int]]) -> None:
    candles = [make_candle("BTCUSDT", T0, closed=x, event_ms=T0 + e) for x, e in updates]
    [kept] = collapse(candles)
    assert (kept.is_closed, kept.event_time) == max((c.is_closed, c.event_time) for c in candles)  # type: ignore[type-var]


def test_lag_cross_checks_broker_end_offsets() -> None:
    a, b = TopicPartition("t", 0), TopicPartition("t", 1)
    assert lag({a: 10, b: 5}, {a: 7, b: 5}, {a: 7, b: 5}) == (3, False)
    # Tansu reported end offset 1 although 34 records were read: use what was read.
    assert lag({a: 1, b: 5}, {a: 34, b: 5}, {a: 34, b: 5}) == (0, True)
    assert lag({a: None}, {a: 3}, {a: 3}) == (0, True)


def test_spans_and_scan_window() -> None:
    m = 60_000
    assert spans([T0 + 2 * m, T0, T0 + m, T0 + 5 * m]) == [
        (T0, T0 + 3 * m),
        (T0 + 5 * m, T0 + 6 * m),
    ]
    assert spans([]) == []
    now = T0 + 3_600_000 + 30_000
    assert scan_window(now, []) == (T0, T0 + 3_600_000)
    gap = StreamGap.of_span(["BTCUSDT"], T0 - 90_000, T0, "reconnect")
    assert scan_window(now, [gap]) == (T0 - 120_000, T0 + 3_600_000)


def test_supervision_decisions() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    old = ActiveRun("r1", now - timedelta(minutes=10))
    beat = {"run_id": "r1", "updated_at": now - timedelta(seconds=5)}
    assert decide([], None, now).action is Action.LAUNCH
    assert decide([old], beat, now).action is Action.KEEP
    stale = decide([old], {**beat, "updated_at": now - timedelta(minutes=5)}, now)
    assert stale.action is Action.RELAUNCH and stale.terminate == ("r1",)
    # A heartbeat from an earlier run does not vouch for this one.
    assert decide([old], {**beat, "run_id": "r0"}, now).action is Action.RELAUNCH
    assert decide([ActiveRun("r2", now - timedelta(seconds=10))], None, now).action is Action.KEEP
    assert decide([ActiveRun("q", None)], None, now).action is Action.KEEP
    two = decide([old, ActiveRun("r3", now - timedelta(minutes=9))], beat | {"run_id": "r3"}, now)
    assert two.action is Action.KEEP and two.terminate == ("r1",)


def test_decode_turns_every_poison_value_into_a_message_error() -> None:
    from tests.faults.poison import POISON

    for key, value, reason in POISON:
        with pytest.raises(MessageError, match=reason):
            decode(value, key, symbols=frozenset({"BTCUSDT", "ETHUSDT"}))


def test_decode_accepts_the_largest_exact_values() -> None:
    c = make_candle("BTCUSDT", T0, price="1234567890123456789012345678901.234")
    assert decode(encode_candle(c), b"BTCUSDT").candle == c


def test_a_run_that_beats_without_progress_is_relaunched() -> None:
    from cryptobot_core.stream.supervision import Progress, stall, track

    t = datetime(2026, 1, 1, tzinfo=UTC)
    run = [ActiveRun("r1", t - timedelta(hours=1))]

    def beat(at: datetime, **stats: int) -> dict[str, object]:
        return {"run_id": "r1", "updated_at": at, "stats": stats}

    # Producer: klines keep arriving, but nothing is sent or spooled (dead sender thread).
    p = track(None, "producer", beat(t, messages=10, sent=10, spooled=0), t)
    for i in range(1, 8):
        now = t + timedelta(seconds=30 * i)
        p = track(p, "producer", beat(now, messages=10 + i, sent=10, spooled=0), now)
        reason = stall("producer", p, beat(now), now, 180)
        assert (reason is not None) == (30 * i >= 180), (i, reason)
    assert reason and "none sent or spooled" in reason
    decision = decide(run, beat(now), now, stalled=reason)
    assert decision.action is Action.RELAUNCH and decision.terminate == ("r1",)
    # Round trip through the sensor's cursor.
    assert p is not None and Progress.from_json(p.to_json()) == p

    # Consumer: idle with no lag is healthy; the same idleness with lag is a stall.
    c = track(None, "consumer", beat(t, messages=5), t)
    later = t + timedelta(seconds=200)
    c = track(c, "consumer", beat(later, messages=5), later)
    assert stall("consumer", c, {**beat(later), "stats": {"messages": 5, "lag": 0}}, later) is None
    lagging = {**beat(later), "stats": {"messages": 5, "lag": 40}}
    assert "40 records waiting" in str(stall("consumer", c, lagging, later, 180))
    # A new run starts its own record: no stall inherited from the previous one.
    fresh = track(c, "consumer", {"run_id": "r2", "stats": {"messages": 0}}, later)
    assert (
        fresh is not None
        and stall("consumer", fresh, {"run_id": "r2", "stats": {"lag": 9}}, later) is None
    )
