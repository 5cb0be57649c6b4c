"""Binance kline intervals as data: names, durations and calendar alignment."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime
from enum import StrEnum

from cryptobot_core.errors import ValidationError

MINUTE_MS = 60_000
_FIXED_MS = {
    "1s": 1_000,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": 1440 * MINUTE_MS,
    "3d": 3 * 1440 * MINUTE_MS,
    "1w": 7 * 1440 * MINUTE_MS,
}
# Binance weeks open on Monday 00:00 UTC; the epoch (1970-01-01) was a Thursday.
_WEEK_OFFSET_MS = 4 * 1440 * MINUTE_MS


class Interval(StrEnum):
    """A Binance kline interval, e.g. ``Interval("15m")``."""

    S1 = "1s"
    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H6 = "6h"
    H8 = "8h"
    H12 = "12h"
    D1 = "1d"
    D3 = "3d"
    W1 = "1w"
    MO1 = "1M"

    @classmethod
    def parse(cls, value: str | Interval) -> Interval:
        """Parse an interval name, raising ValidationError that lists the allowed ones."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(i.value for i in cls)
            raise ValidationError(f"invalid interval {value!r}; allowed: {allowed}") from None

    @property
    def is_calendar(self) -> bool:
        """True for 1M, whose length varies with the month."""
        return self is Interval.MO1

    @property
    def ms(self) -> int:
        """Fixed length in milliseconds (not defined for 1M)."""
        if self.is_calendar:
            raise ValueError("1M has no fixed length; use open_after()")
        return _FIXED_MS[self.value]

    def floor(self, ts_ms: int) -> int:
        """Open time (ms) of the interval that contains ``ts_ms``."""
        if self is Interval.MO1:
            d = datetime.fromtimestamp(ts_ms / 1000, UTC)
            return int(datetime(d.year, d.month, 1, tzinfo=UTC).timestamp() * 1000)
        if self is Interval.W1:
            return ts_ms - (ts_ms - _WEEK_OFFSET_MS) % self.ms
        return ts_ms - ts_ms % self.ms

    def open_after(self, open_ms: int) -> int:
        """Open time (ms) of the interval that follows the one opening at ``open_ms``."""
        if self is Interval.MO1:
            d = datetime.fromtimestamp(open_ms / 1000, UTC)
            days = calendar.monthrange(d.year, d.month)[1]
            return open_ms + days * 1440 * MINUTE_MS
        return open_ms + self.ms

    @property
    def max_ms(self) -> int:
        """The longest one of these lasts, in ms (31 days for 1M): a bound for sizing work."""
        return 31 * 1440 * MINUTE_MS if self.is_calendar else self.ms

    def shift(self, open_ms: int, n: int) -> int:
        """Open time ``n`` intervals after (before, if negative) the one opening at ``open_ms``."""
        if not self.is_calendar:
            return open_ms + n * self.ms
        d = datetime.fromtimestamp(open_ms / 1000, UTC)
        months = d.year * 12 + d.month - 1 + n
        return int(datetime(months // 12, months % 12 + 1, 1, tzinfo=UTC).timestamp() * 1000)

    def divides(self, whole: Interval) -> bool:
        """True when every ``whole`` interval is made of whole intervals of this one."""
        if whole.is_calendar:
            return self.divides_day
        return not self.is_calendar and whole.ms % self.ms == 0

    def close_time(self, open_ms: int) -> int:
        """Binance close time: next open minus 1 ms."""
        return self.open_after(open_ms) - 1

    @property
    def divides_day(self) -> bool:
        """True when a UTC day holds a whole number of these intervals (1s up to 1d)."""
        return not self.is_calendar and _FIXED_MS["1d"] % self.ms == 0

    def opens_between(self, start_ms: int, end_ms: int) -> list[int]:
        """Open times of every interval whose open is in [start_ms, end_ms)."""
        t = self.floor(start_ms)
        if t < start_ms:
            t = self.open_after(t)
        out = []
        while t < end_ms:
            out.append(t)
            t = self.open_after(t)
        return out


# History is partitioned by UTC day, so it is kept at intervals that tile a day; coarser
# ones (3d, 1w, 1M) are served resampled from these.
HISTORY_INTERVALS = tuple(i for i in Interval if i.divides_day)
