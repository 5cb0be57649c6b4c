"""Fault injection, changeable at runtime from any thread, plus the server's counters."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptobot_core.errors import ValidationError

_RATES = ("error_5xx_rate", "rate_429", "rate_418", "malformed_frame_rate")


class Faults:
    """What goes wrong on purpose; every field may be changed while the server runs."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        error_5xx_rate: float = 0.0,
        rate_429: float = 0.0,
        rate_418: float = 0.0,
        malformed_frame_rate: float = 0.0,
        stall: bool = False,
        retry_after_s: int = 1,
        seed: int = 0,
    ) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._drop_hooks: list[Callable[[], int]] = []
        self.latency_s = latency_s
        self.error_5xx_rate = error_5xx_rate
        self.rate_429 = rate_429
        self.rate_418 = rate_418
        self.malformed_frame_rate = malformed_frame_rate
        self.stall = stall
        self.retry_after_s = retry_after_s
        self.seed = seed

    def __setattr__(self, name: str, value: Any) -> None:
        # Validate on every assignment so a typo in a test fails loudly, not silently.
        if name in _RATES and not (isinstance(value, int | float) and 0 <= value <= 1):
            raise ValidationError(f"{name} must be a probability in [0, 1], got {value!r}")
        if name == "latency_s" and not (isinstance(value, int | float) and 0 <= value <= 60):
            raise ValidationError(f"latency_s must be in [0, 60] seconds, got {value!r}")
        if name == "retry_after_s" and not (isinstance(value, int) and value >= 0):
            raise ValidationError(f"retry_after_s must be a whole number >= 0, got {value!r}")
        if name == "seed" and "_rng" in self.__dict__:
            with self._lock:
                self._rng.seed(value)
        object.__setattr__(self, name, value)

    def chance(self, rate: float) -> bool:
        """One seeded draw: True with probability ``rate``."""
        if rate <= 0:
            return False
        with self._lock:
            return self._rng.random() < rate

    def choice(self, options: list[Any]) -> Any:
        """One seeded pick among ``options``."""
        with self._lock:
            return self._rng.choice(options)

    def reset(self) -> None:
        """Back to no faults at all."""
        self.latency_s = 0.0
        for name in _RATES:
            setattr(self, name, 0.0)
        self.stall = False

    def on_drop(self, hook: Callable[[], int]) -> None:
        """Register the server's hook that closes every WebSocket (internal)."""
        self._drop_hooks.append(hook)

    def drop_connections(self) -> int:
        """Cut every open WebSocket connection now; returns how many were cut."""
        return sum(hook() for hook in list(self._drop_hooks))


@dataclass
class Stats:
    """Server counters, updated from the server thread and read from any thread."""

    requests: int = 0
    responses: Counter[int] = field(default_factory=Counter)
    weight_by_minute: dict[int, int] = field(default_factory=dict)
    requests_by_path: Counter[str] = field(default_factory=Counter)
    ws_connections_opened: int = 0
    ws_connections_open: int = 0
    ws_messages_sent: int = 0
    ws_finals_sent: int = 0
    ws_malformed_sent: int = 0
    ws_disconnects_rate_limit: int = 0
    ws_disconnects_pong_timeout: int = 0
    ws_disconnects_lifetime: int = 0
    bans: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increment a plain counter."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def record(self, path: str, status: int) -> None:
        """Count one HTTP response."""
        with self._lock:
            self.requests += 1
            self.responses[status] += 1
            self.requests_by_path[path] += 1

    def add_weight(self, minute_ms: int, weight: int) -> int:
        """Add request weight to a minute's window; returns the window's new total."""
        with self._lock:
            total = self.weight_by_minute.get(minute_ms, 0) + weight
            self.weight_by_minute[minute_ms] = total
            return total

    def used_weight(self, minute_ms: int) -> int:
        """Weight used in the window of ``minute_ms``."""
        with self._lock:
            return self.weight_by_minute.get(minute_ms, 0)

    @property
    def count_429(self) -> int:
        """How many 429 responses were sent."""
        return self.responses[429]

    @property
    def count_418(self) -> int:
        """How many 418 responses were sent."""
        return self.responses[418]

    @property
    def max_weight_per_minute(self) -> int:
        """The largest weight used in any one-minute window."""
        with self._lock:
            return max(self.weight_by_minute.values(), default=0)

    def snapshot(self) -> dict[str, Any]:
        """A consistent plain-dict copy of every counter."""
        with self._lock:
            return {
                "requests": self.requests,
                "responses": dict(self.responses),
                "weight_by_minute": dict(self.weight_by_minute),
                "requests_by_path": dict(self.requests_by_path),
                "ws_connections_opened": self.ws_connections_opened,
                "ws_connections_open": self.ws_connections_open,
                "ws_messages_sent": self.ws_messages_sent,
                "ws_finals_sent": self.ws_finals_sent,
                "ws_malformed_sent": self.ws_malformed_sent,
                "ws_disconnects_rate_limit": self.ws_disconnects_rate_limit,
                "ws_disconnects_pong_timeout": self.ws_disconnects_pong_timeout,
                "ws_disconnects_lifetime": self.ws_disconnects_lifetime,
                "bans": self.bans,
            }
