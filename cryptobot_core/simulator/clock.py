"""The simulator's clock: real, frozen, or accelerated simulated time (epoch ms)."""

from __future__ import annotations

import math
import threading
import time
from enum import StrEnum

from cryptobot_core.errors import ValidationError


class ClockMode(StrEnum):
    """How simulated time relates to wall time."""

    REAL = "real"
    FIXED = "fixed"
    ACCELERATED = "accelerated"


class SimClock:
    """Simulated time in epoch milliseconds; thread-safe."""

    def __init__(self, mode: ClockMode, start_ms: int, speed: float) -> None:
        if speed <= 0 or not math.isfinite(speed):
            raise ValidationError(f"clock speed must be a positive number, got {speed!r}")
        if start_ms < 0:
            raise ValidationError(f"clock start must be epoch milliseconds >= 0, got {start_ms!r}")
        self.mode = mode
        self.speed = float(speed)
        self._lock = threading.Lock()
        self._start_ms = int(start_ms)
        # monotonic() so a wall-clock jump on the host never moves simulated time backwards.
        self._anchor = time.monotonic()

    @classmethod
    def real(cls) -> SimClock:
        """Wall-clock time."""
        return cls(ClockMode.REAL, int(time.time() * 1000), 1.0)

    @classmethod
    def fixed(cls, now_ms: int) -> SimClock:
        """A frozen clock; move it with set() or advance()."""
        return cls(ClockMode.FIXED, now_ms, 1.0)

    @classmethod
    def accelerated(cls, start_ms: int, speed: float) -> SimClock:
        """Simulated time = start + real elapsed time * speed."""
        return cls(ClockMode.ACCELERATED, start_ms, speed)

    def now_ms(self) -> int:
        """Current simulated time in epoch milliseconds."""
        with self._lock:
            if self.mode is ClockMode.FIXED:
                return self._start_ms
            if self.mode is ClockMode.REAL:
                return int(time.time() * 1000)
            return self._start_ms + int((time.monotonic() - self._anchor) * 1000 * self.speed)

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (fixed and accelerated clocks)."""
        if self.mode is ClockMode.REAL:
            raise ValidationError("a real clock cannot be set; use SimClock.fixed or accelerated")
        with self._lock:
            self._start_ms = int(now_ms)
            self._anchor = time.monotonic()

    def advance(self, ms: int) -> None:
        """Move simulated time forward by ``ms`` milliseconds."""
        if ms < 0:
            raise ValidationError(f"advance() takes a non-negative number of ms, got {ms!r}")
        self.set(self.now_ms() + int(ms))

    def real_seconds(self, sim_ms: float) -> float:
        """Real seconds that ``sim_ms`` simulated milliseconds take on this clock."""
        # A frozen clock never advances by itself; report simulated seconds so a client
        # still backs off for a sensible time.
        speed = self.speed if self.mode is ClockMode.ACCELERATED else 1.0
        return max(0.0, sim_ms / 1000.0 / speed)

    def __repr__(self) -> str:
        return f"SimClock(mode={self.mode.value}, now_ms={self.now_ms()}, speed={self.speed})"
