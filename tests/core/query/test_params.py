"""Request parameters: times, symbols, intervals, ranges and cursors."""

from __future__ import annotations

import pytest

from cryptobot_core.errors import ValidationError
from cryptobot_core.exchange.exchange_info import normalize_symbol
from cryptobot_core.intervals import Interval
from cryptobot_core.query.params import (
    MAX_MS,
    MIN_MS,
    decode_cursor,
    encode_cursor,
    is_empty_range,
    parse_interval,
    parse_time,
)

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-01T00:00:00Z", T0),
        ("2024-01-01T00:00:00.000Z", T0),
        ("2024-01-01", T0),
        ("2024-01-01T02:00:00+02:00", T0),
        ("2024-01-01T00:00:00", T0),
        (str(T0), T0),
        (" 1704067200000 ", T0),
        ("0", 0),
        # Outside the stored range: clamped to its bounds, not refused.
        ("1969-12-31T23:59:59.999Z", MIN_MS),
        ("0001-01-01T00:00:00+01:00", MIN_MS),
        ("3000-01-01", MAX_MS),
        ("9999-12-31T23:00:00-05:00", MAX_MS),
        ("99999999999999999999", MAX_MS),
    ],
)
def test_parse_time_accepts_iso_and_epoch_ms(text: str, expected: int) -> None:
    assert parse_time(text, "start") == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "2024-02-30", "1e12", "-5", "+5", "2024-01-01T00:00:60Z"]
)
def test_parse_time_refuses_with_what_is_allowed(text: str) -> None:
    with pytest.raises(ValidationError, match="start must be ISO-8601 .* or epoch milliseconds"):
        parse_time(text, "start")


def test_parse_time_none_and_empty_mean_unset() -> None:
    assert parse_time(None, "end") is None and parse_time("", "end") is None


def test_symbols_and_intervals() -> None:
    assert normalize_symbol("btcusdt") == "BTCUSDT"
    with pytest.raises(ValidationError, match="2-20 letters or digits"):
        normalize_symbol("BTC/USDT")
    assert parse_interval("4h") is Interval.H4
    with pytest.raises(
        ValidationError, match="allowed: 1m, 3m, 5m, 15m, 30m, 1h, 2h, 4h, 6h, 8h, 12h, 1d, 3d, 1w"
    ):
        parse_interval("1s")
    assert is_empty_range(T0, T0) and is_empty_range(T0 + 1, T0)
    assert not is_empty_range(T0, T0 + 1) and not is_empty_range(None, T0)


def test_cursor_round_trip_and_refusals() -> None:
    assert encode_cursor(T0) == str(T0) and decode_cursor(encode_cursor(T0)) == T0
    assert decode_cursor("99999999999999999999") == MAX_MS
    for bad in ("", "x", "-1", "djF8QlRDVVNEVHwxaHwxNzA0MDY3MjAwMDAw"):
        with pytest.raises(ValidationError, match="cursor must be the next_cursor"):
            decode_cursor(bad)


def test_a_blank_time_is_refused_and_an_empty_one_means_not_given() -> None:
    assert parse_time("", "end") is None
    for blank in ("\r", " ", "\t\n"):
        with pytest.raises(ValidationError, match="end must be .* or empty; got only whitespace"):
            parse_time(blank, "end")
