"""A shared, thread-safe request-weight budget that paces calls under Binance's limit.

Binance counts request weight per IP in fixed one-minute windows and reports the count so
far in ``X-MBX-USED-WEIGHT-1M``. The budget reserves weight *before* a request is sent (so
concurrent threads cannot overshoot together), waits for the next window when the next
request would not fit under ``limit * (1 - safety_margin)``, and adopts the server's count
whenever it is higher than ours (other processes on the same IP, or clock skew).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptobot_core.errors import ValidationError

log = logging.getLogger(__name__)

DEFAULT_WEIGHT_LIMIT = 6000
DEFAULT_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Reservation:
    """Weight taken from the budget for one request, tagged with the window it counts in."""

    weight: int
    window: int


@dataclass(slots=True)
class BudgetStats:
    """Counters for reports and benchmarks."""

    reserved: int = 0
    requests: int = 0
    waits: int = 0
    waited_s: float = 0.0
    max_used: int = 0
    server_max_used: int = 0
    pauses: int = 0


class WeightBudget:
    """Paces requests so the weight used per window stays under the exchange's limit."""

    def __init__(
        self,
        limit: int = DEFAULT_WEIGHT_LIMIT,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        safety_margin: float = 0.1,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit <= 0:
            raise ValidationError(f"weight limit must be positive, got {limit}")
        if not 0 <= safety_margin < 1:
            raise ValidationError(f"safety_margin must be in [0, 1), got {safety_margin}")
        if window_s <= 0:
            raise ValidationError(f"window_s must be positive, got {window_s}")
        self._limit = limit
        self._window_s = window_s
        self._margin = safety_margin
        self._clock = clock
        self._sleep = sleep
        self._cond = threading.Condition()
        self._window = self._window_of(clock())
        self._used = 0
        self._in_flight = 0
        self._paused_until = 0.0
        self.limit_known = False  # True once the exchange told us its limit
        self.stats = BudgetStats()

    # -- configuration -------------------------------------------------------------------

    @property
    def limit(self) -> int:
        """The exchange's weight limit per window."""
        return self._limit

    @property
    def window_s(self) -> float:
        """Length of one weight window in seconds."""
        return self._window_s

    @property
    def capacity(self) -> int:
        """Weight usable per window: the limit minus the safety margin (at least 1)."""
        return max(1, int(self._limit * (1 - self._margin)))

    def set_limit(self, limit: int, window_s: float | None = None) -> None:
        """Adopt the limit (and window length) the exchange announced in ``rateLimits``."""
        if limit <= 0:
            raise ValidationError(f"weight limit must be positive, got {limit}")
        with self._cond:
            self._limit = limit
            if window_s is not None and window_s > 0 and window_s != self._window_s:
                self._window_s = window_s
                self._window = self._window_of(self._clock())
            self.limit_known = True
            self._cond.notify_all()

    # -- pacing --------------------------------------------------------------------------

    def _window_of(self, now: float) -> int:
        return int(now // self._window_s)

    def _roll(self, now: float) -> None:
        window = self._window_of(now)
        if window != self._window:
            self._window = window
            # Requests still in flight may reach the server after its minute ticked over and
            # be counted in the new window: start the new window with them.
            self._used = self._in_flight

    def used(self) -> int:
        """Weight counted in the current window (ours or the server's, whichever is higher)."""
        with self._cond:
            self._roll(self._clock())
            return self._used

    def acquire(self, weight: int) -> Reservation:
        """Reserve ``weight`` in the current window, waiting for a later window if it does not fit."""
        if weight <= 0:
            raise ValidationError(f"request weight must be positive, got {weight}")
        weight = min(weight, self.capacity)  # a single request heavier than the budget still runs
        waited = 0.0
        with self._cond:
            while True:
                now = self._clock()
                self._roll(now)
                if now < self._paused_until:
                    delay = self._paused_until - now
                elif self._used + weight <= self.capacity:
                    self._used += weight
                    self._in_flight += weight
                    self.stats.reserved += weight
                    self.stats.requests += 1
                    self.stats.max_used = max(self.stats.max_used, self._used)
                    if waited:
                        self.stats.waits += 1
                        self.stats.waited_s += waited
                    return Reservation(weight, self._window)
                else:
                    # Small slack past the boundary: the server's minute may tick a little later.
                    delay = (self._window + 1) * self._window_s - now + 0.01 * self._window_s
                delay = max(delay, 0.001)
                # Sleep outside the lock so other threads can record responses meanwhile.
                self._cond.release()
                try:
                    self._sleep(delay)
                finally:
                    self._cond.acquire()
                waited += delay

    def release(self, reservation: Reservation, used_by_server: int | None = None) -> None:
        """The request is done (answered or failed); sync with the server's count if given."""
        with self._cond:
            self._roll(self._clock())  # a window that ticked over while in flight counts it
            self._in_flight = max(0, self._in_flight - reservation.weight)
        self.observe(reservation, used_by_server)

    def observe(self, reservation: Reservation | None, used_by_server: int | None) -> None:
        """Sync with the server's ``X-MBX-USED-WEIGHT-1M`` value from a response."""
        if used_by_server is None:
            return
        with self._cond:
            self.stats.server_max_used = max(self.stats.server_max_used, used_by_server)
            self._roll(self._clock())
            # A header for a request counted in an earlier window says nothing about this one.
            if reservation is not None and reservation.window != self._window:
                return
            if used_by_server > self._used:
                self._used = used_by_server
                self.stats.max_used = max(self.stats.max_used, self._used)

    def pause(self, seconds: float) -> None:
        """Stop every caller for ``seconds`` (Retry-After of a 429/418), counted from now."""
        with self._cond:
            until = self._clock() + max(0.0, seconds)
            if until > self._paused_until:
                self._paused_until = until
                self.stats.pauses += 1
                log.warning("weight budget paused for %.1f s (exchange asked to back off)", seconds)
