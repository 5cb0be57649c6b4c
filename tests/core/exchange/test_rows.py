"""Candle.from_rest_rows (the page parser the client uses) agrees with from_rest_row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_core.errors import ValidationError
from cryptobot_core.models import Candle

decimal_str = st.decimals(min_value=0, max_value=10**9, places=8, allow_nan=False).map(str)


@st.composite
def rows(draw: st.DrawFn) -> list[Any]:
    open_ms = draw(st.integers(0, 2_000_000_000_000)) // 60_000 * 60_000
    return [
        open_ms,
        draw(decimal_str),
        draw(decimal_str),
        draw(decimal_str),
        draw(decimal_str),
        draw(decimal_str),
        open_ms + 59_999,
        draw(decimal_str),
        draw(st.integers(0, 10**6)),
        draw(decimal_str),
        draw(decimal_str),
        "0",
    ]


@settings(max_examples=100, deadline=None)
@given(
    page=st.lists(rows(), min_size=1, max_size=20),
    now=st.none() | st.integers(0, 2_100_000_000_000),
)
def test_page_parser_equals_row_parser(page: list[list[Any]], now: int | None) -> None:
    fast = Candle.from_rest_rows("BTCUSDT", "1m", page, now_ms=now)
    slow = [Candle.from_rest_row("BTCUSDT", "1m", r, now_ms=now) for r in page]
    assert fast == slow
    assert [c.to_rest_row() for c in fast] == [c.to_rest_row() for c in slow]


GOOD = [
    1_700_000_040_000,
    "1.10",
    "2.00",
    "0.50",
    "1.50",
    "10",
    1_700_000_099_999,
    "15",
    3,
    "5",
    "7.5",
    "0",
]


@pytest.mark.parametrize(
    ("index", "value", "match"),
    [
        (1, 1.1, "float"),
        (2, "abc", "decimal string"),
        (3, "NaN", "finite"),
        (8, -1, "non-negative"),
        (6, 1_700_000_040_000, "close_time"),
    ],
)
def test_a_bad_row_after_the_first_raises_the_same_error(
    index: int, value: Any, match: str
) -> None:
    bad = list(GOOD)
    bad[index] = value
    with pytest.raises(ValidationError, match=match):
        Candle.from_rest_rows("BTCUSDT", "1m", [GOOD, bad])


def test_symbol_and_interval_are_validated() -> None:
    with pytest.raises(ValidationError, match="symbol"):
        Candle.from_rest_rows("btc-usdt", "1m", [GOOD])
    with pytest.raises(ValidationError, match="allowed"):
        Candle.from_rest_rows("BTCUSDT", "7m", [GOOD])
    assert Candle.from_rest_rows("BTCUSDT", "1m", []) == []
    assert Candle.from_rest_rows("BTCUSDT", "1m", [GOOD, GOOD])[1].open == Decimal("1.10")
