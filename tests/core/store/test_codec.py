"""The decimal codec of the storage format: fast Decimal128 decoding equals the exact one."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from bson.decimal128 import Decimal128, create_decimal128_context
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_core.models import dec_str
from cryptobot_core.store.codec import (
    parts_text,
    stored_decimal,
    stored_float,
    stored_parts,
    stored_text,
    to_stored,
)


@settings(max_examples=300, deadline=None)
@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
        lambda d: abs(d.adjusted()) < 60
    )
)
def test_fast_decimal128_decoding_equals_the_exact_one(value: Decimal) -> None:
    with localcontext(create_decimal128_context()) as ctx:
        stored = Decimal128(ctx.create_decimal(value))
    exact = stored.to_decimal()
    assert stored_text(stored) == dec_str(exact)
    decoded = stored_decimal(stored)
    assert decoded == exact and decoded.as_tuple() == exact.as_tuple()
    assert Decimal(parts_text(stored_parts(stored))) == exact
    assert stored_float(stored) == float(exact)


@settings(max_examples=500, deadline=None)
@given(
    st.decimals(allow_nan=False, allow_infinity=False, places=None)
    | st.builds(
        lambda sign, coefficient, exponent: Decimal(
            (sign, tuple(map(int, str(coefficient))), exponent)
        ),
        st.integers(0, 1),
        st.integers(0, 10**34 - 1),
        st.integers(-6200, 6150),
    )
)
def test_fast_decimal128_encoding_equals_bsons(value: Decimal) -> None:
    """The same BID bits as bson's own encoder, or the same error where it refuses."""
    try:
        expected = Decimal128(value).bid
    except Exception as error:  # noqa: BLE001 - whatever bson raises, to_stored must too
        with pytest.raises(type(error)):
            to_stored(value)
        return
    assert to_stored(value).bid == expected


@pytest.mark.parametrize(
    "text", ["0", "-0", "0E-8", "-0E+3", "1E+6111", "9" * 34, "NaN", "-Infinity"]
)
def test_fast_decimal128_encoding_on_edge_values(text: str) -> None:
    assert to_stored(Decimal(text)).bid == Decimal128(Decimal(text)).bid


@pytest.mark.parametrize(
    "text",
    [
        "0",
        "-0",
        "0E-8",
        "0.00000000",
        "60123.45000000",
        "1E+3",
        "-42.5",
        "0.00000001",
        "NaN",
        "Infinity",
        "-Infinity",
    ],
)
def test_fast_decimal128_text_on_edge_values(text: str) -> None:
    stored = Decimal128(text)
    assert stored_text(stored) == dec_str(stored.to_decimal())
