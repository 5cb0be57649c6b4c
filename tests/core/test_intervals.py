"""Binance intervals: parsing, lengths and calendar alignment (weeks on Monday, months)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import MINUTE_MS, Interval
from cryptobot_core.models import ms_to_dt

# 1970 .. 2100: the epoch's Thursday and the leap years in between are covered.
times = st.integers(0, 4_102_444_800_000)


def test_parse_accepts_every_binance_name_and_lists_them_when_refusing() -> None:
    assert [Interval.parse(i.value) for i in Interval] == list(Interval)
    assert Interval.parse(Interval.H4) is Interval.H4
    with pytest.raises(
        ValidationError, match=r"invalid interval '2m'; allowed: 1s, 1m, 3m.*1w, 1M"
    ):
        Interval.parse("2m")
    # Case matters on Binance: 1m is a minute, 1M a month.
    assert Interval.parse("1m") is Interval.M1 and Interval.parse("1M") is Interval.MO1


def test_fixed_lengths_and_the_month_has_none() -> None:
    assert Interval.M1.ms == MINUTE_MS and Interval.M15.ms == 900_000
    assert Interval.D1.ms == 86_400_000 and Interval.W1.ms == 7 * 86_400_000
    assert not Interval.D1.is_calendar and Interval.MO1.is_calendar
    with pytest.raises(ValueError, match="1M has no fixed length"):
        _ = Interval.MO1.ms


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(Interval)), times)
def test_floor_contains_the_time_and_the_next_open_follows(interval: Interval, t: int) -> None:
    start = interval.floor(t)
    end = interval.open_after(start)
    assert start <= t < end
    assert interval.floor(start) == start and interval.floor(end) == end
    assert interval.close_time(start) == end - 1
    if not interval.is_calendar:
        assert end - start == interval.ms


@settings(max_examples=200, deadline=None)
@given(times)
def test_weeks_open_on_monday_and_months_on_the_first(t: int) -> None:
    week = ms_to_dt(Interval.W1.floor(t))
    assert week.weekday() == 0 and (week.hour, week.minute) == (0, 0)
    month = ms_to_dt(Interval.MO1.floor(t))
    assert (month.day, month.hour, month.minute) == (1, 0, 0)
    after = ms_to_dt(Interval.MO1.open_after(Interval.MO1.floor(t)))
    assert after.day == 1 and (after.year * 12 + after.month) == month.year * 12 + month.month + 1


def test_month_lengths_follow_the_calendar() -> None:
    feb_2024 = int(datetime(2024, 2, 1, tzinfo=UTC).timestamp() * 1000)
    assert Interval.MO1.open_after(feb_2024) - feb_2024 == 29 * 86_400_000
    feb_2023 = int(datetime(2023, 2, 1, tzinfo=UTC).timestamp() * 1000)
    assert Interval.MO1.open_after(feb_2023) - feb_2023 == 28 * 86_400_000


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([Interval.M1, Interval.M15, Interval.H4, Interval.W1]), times, times)
def test_opens_between_lists_every_open_in_the_half_open_range(
    interval: Interval, a: int, b: int
) -> None:
    start, end = min(a, b), min(max(a, b), min(a, b) + 2000 * interval.ms)
    opens = interval.opens_between(start, end)
    assert all(start <= t < end and interval.floor(t) == t for t in opens)
    assert all(nxt - t == interval.ms for t, nxt in zip(opens, opens[1:], strict=False))
    # Nothing is left out at either end.
    first = interval.floor(start)
    expected_first = first if first >= start else interval.open_after(first)
    assert (opens[0] if opens else None) == (expected_first if expected_first < end else None)
    if opens:
        assert interval.open_after(opens[-1]) >= end
