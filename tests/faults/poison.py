"""Poison values for the stream topic: each must become a dead letter with its reason."""

from __future__ import annotations

import json
from typing import Any

from cryptobot_core.stream.messages import encode_event
from tests.core.stream.conftest import T0, make_candle

NEVER_MS = 32_472_144_000_000  # 2999-01-01 UTC


def _event(**kline: Any) -> dict[str, Any]:
    event = make_candle("BTCUSDT", T0).to_ws_event()
    event["k"].update(kline)
    return event


def _raw_event(field: str, number_text: str) -> bytes:
    """An envelope whose kline ``field`` is the bare JSON number ``number_text``."""
    marker = "__NUMBER__"
    text = encode_event(_event(**{field: marker})).decode()
    return text.replace(json.dumps(marker), number_text).encode()


def _nested(depth: int) -> bytes:
    return b'{"v":1,"event":' + b"[" * depth + b"]" * depth + b',"received_at":1}'


def _future() -> bytes:
    candle = make_candle("BTCUSDT", NEVER_MS, event_ms=NEVER_MS + 59_999)
    return encode_event(candle.to_ws_event())


# (key, value, a fragment of the reason the dead letter must give)
POISON: list[tuple[bytes, bytes, str]] = [
    (b"BTCUSDT", encode_event(_event(o="1." + "7" * 40)), "significant digits"),
    (b"BTCUSDT", encode_event(_event(h="1e999999")), "exactly storable range"),
    (b"BTCUSDT", encode_event(_event(c="NaN")), "must be finite"),
    (b"BTCUSDT", encode_event(_event(l="-Infinity")), "must be finite"),
    (b"BTCUSDT", _raw_event("v", "1e999999"), "not a float"),
    (b"BTCUSDT", encode_event(_event(x="false")), "x must be JSON true or false"),
    (b"BTCUSDT", _nested(20_000), "nested deeper than"),
    (b"BTCUSDT", b'{"v":1,"pad":"' + b"a" * 2_000_000 + b'"}', "at most 65536 bytes"),
    (b"BTCUSDT", b"\xc3\x28\xa0\xa1 not utf-8", "not UTF-8 JSON"),
    (b"BTCUSDT", b'{"v":7,"event":{},"received_at":1}', "unsupported envelope version 7"),
    (b"XRPUSDT", encode_event(make_candle("XRPUSDT", T0).to_ws_event()), "not configured"),
    (b"BTCUSDT", _future(), "after the producer received it"),
]
