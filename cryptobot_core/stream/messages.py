"""The versioned Kafka message of the 1m stream, and its validation.

One message per kline update, key = symbol, value = UTF-8 JSON::

    {"v": 1,
     "event": {"e": "kline", "E": 1672515782136, "s": "BNBBTC",
               "k": {"t": 1672515780000, "T": 1672515839999, "s": "BNBBTC", "i": "1m",
                     "o": "0.0010", "c": "0.0020", "h": "0.0025", "l": "0.0015",
                     "v": "1000", "n": 100, "x": false, "q": "1.0000", "V": "500",
                     "Q": "0.500", "B": "0", "f": 100, "L": 200}},
     "received_at": 1672515782140}

``event`` is the exchange's kline event as received (decimal strings intact). A frame the
WebSocket client could not parse travels as ``{"v": 1, "raw": "<text>", "reason": "...",
"received_at": ms}`` so the consumer dead-letters it in the one place that does so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.models import DECIMAL_FIELDS, Candle, dt_to_ms

VERSION = 1
SUPPORTED_VERSIONS = (1,)
# A real envelope is about 600 bytes and 3 levels deep. Anything far beyond is refused
# before it is parsed, so no value can exhaust memory or the parser's recursion.
MAX_VALUE_BYTES = 64 * 1024
MAX_DEPTH = 16
# The largest coefficient and the exponent range the store keeps exactly (BSON Decimal128).
DECIMAL128_DIGITS = 34
DECIMAL128_EXPONENTS = (-6176, 6111)
# How far an event's own time E may run ahead of the moment the producer received it.
# Generous (a simulated clock may run ahead of the wall), yet a candle dated years ahead,
# which the "newer wins" write rule would otherwise keep forever, is refused.
MAX_EVENT_AHEAD_MS = 86_400_000


class MessageError(ValidationError):
    """A Kafka message that is not a valid stream envelope; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds."""
    return dt_to_ms(datetime.now(UTC))


def encode_event(event: Mapping[str, Any], received_at_ms: int | None = None) -> bytes:
    """The envelope bytes for one raw kline event."""
    body = {"v": VERSION, "event": event, "received_at": received_at_ms or now_ms()}
    return json.dumps(body, separators=(",", ":")).encode()


def encode_candle(candle: Candle, received_at_ms: int | None = None) -> bytes:
    """The envelope for a candle whose raw event is not at hand (rebuilt exactly)."""
    return encode_event(candle.to_ws_event(), received_at_ms)


def encode_malformed(raw: str, reason: str, received_at_ms: int | None = None) -> bytes:
    """The envelope that carries a frame the WebSocket client could not parse."""
    body = {"v": VERSION, "raw": raw, "reason": reason, "received_at": received_at_ms or now_ms()}
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """A decoded, validated stream message."""

    candle: Candle
    received_at_ms: int


def _depth(value: bytes) -> int:
    """Deepest nesting of JSON arrays and objects in ``value`` (brackets in strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in value:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def _parse(value: bytes) -> Any:
    """The JSON in ``value``, bounded in size and depth before the parser sees it."""
    if len(value) > MAX_VALUE_BYTES:
        raise MessageError(
            f"value is {len(value)} bytes; at most {MAX_VALUE_BYTES} bytes are accepted"
        )
    # Counting brackets is C-speed; the exact scan runs only when the count could exceed it.
    if value.count(b"[") + value.count(b"{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise MessageError(f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MessageError(f"value is not UTF-8 JSON: {exc}") from None
    except (RecursionError, ValueError) as exc:
        raise MessageError(f"value is not acceptable JSON: {type(exc).__name__}") from None


def _check_storable(candle: Candle) -> None:
    """Every decimal fits the store's Decimal128 exactly (no rounding, no overflow)."""
    low, high = DECIMAL128_EXPONENTS
    for name in DECIMAL_FIELDS:
        sign, digits, exponent = getattr(candle, name).as_tuple()
        if len(digits) > DECIMAL128_DIGITS or not isinstance(exponent, int):
            raise MessageError(
                f"{name} has {len(digits)} significant digits; "
                f"at most {DECIMAL128_DIGITS} are stored exactly"
            )
        if not low <= exponent <= high:
            raise MessageError(
                f"{name} is out of the exactly storable range "
                f"(exponent {exponent}; allowed {low}..{high})"
            )


def decode(
    value: bytes | None,
    key: bytes | None = None,
    *,
    symbols: frozenset[str] | None = None,
) -> StreamMessage:
    """Parse and validate one message value, raising MessageError with the reason.

    ``symbols``, when given, are the configured symbols; a message for any other is refused.
    """
    if value is None:
        raise MessageError("empty message (tombstone)")
    body = _parse(value)
    if not isinstance(body, dict):
        raise MessageError(f"value must be a JSON object, got {type(body).__name__}")
    version = body.get("v")
    if version not in SUPPORTED_VERSIONS:
        raise MessageError(
            f"unsupported envelope version {version!r}; supported: {SUPPORTED_VERSIONS}"
        )
    if "raw" in body and "event" not in body:
        raise MessageError(f"malformed frame from the exchange: {body.get('reason', 'unknown')}")
    event = body.get("event")
    if not isinstance(event, dict):
        raise MessageError("envelope has no 'event' object")
    received = body.get("received_at")
    if isinstance(received, bool) or not isinstance(received, int):
        raise MessageError(f"received_at must be integer milliseconds, got {received!r}")
    try:
        candle = Candle.from_ws_event(event)
    except ValidationError as exc:
        raise MessageError(f"invalid kline event: {exc}") from None
    if candle.interval is not Interval.M1:
        raise MessageError(f"stream carries 1m klines only, got interval {candle.interval.value}")
    if candle.event_time is None:
        raise MessageError("kline event has no event time E")
    if key is not None and key.decode(errors="replace") != candle.symbol:
        raise MessageError(f"message key {key!r} does not match symbol {candle.symbol}")
    if candle.close_ms != Interval.M1.close_time(candle.open_ms):
        raise MessageError(f"close time {candle.close_ms} does not end the minute {candle.open_ms}")
    if symbols is not None and candle.symbol not in symbols:
        raise MessageError(
            f"symbol {candle.symbol} is not configured; configured: {', '.join(sorted(symbols))}"
        )
    event_ms = dt_to_ms(candle.event_time)
    if candle.open_ms > event_ms:
        raise MessageError(
            f"kline of minute {candle.open_ms} is after its own event time E={event_ms}"
        )
    if event_ms > received + MAX_EVENT_AHEAD_MS:
        raise MessageError(
            f"event time E={event_ms} is more than {MAX_EVENT_AHEAD_MS // 3_600_000} h after "
            f"the producer received it ({received})"
        )
    _check_storable(candle)
    return StreamMessage(candle, received)


def _rank(candle: Candle) -> tuple[bool, datetime]:
    # Same order as the store's guard: closed beats open, then the later event time.
    return (candle.is_closed, candle.event_time or datetime.min.replace(tzinfo=UTC))


def collapse(candles: Iterable[Candle]) -> list[Candle]:
    """Keep only the newest update of each (symbol, open_time), in first-seen order."""
    best: dict[tuple[str, datetime], Candle] = {}
    for candle in candles:
        key = (candle.symbol, candle.open_time)
        held = best.get(key)
        if held is None or _rank(candle) > _rank(held):
            best[key] = candle
    return list(best.values())
