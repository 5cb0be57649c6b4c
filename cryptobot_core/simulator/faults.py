"""Fault injection, changeable at runtime from any thread, plus the server's counters.

Every fault is switched on a running server through its ``Faults`` (``server.faults``):

* REST: ``latency_s``, ``error_5xx_rate``, ``rate_429``, ``rate_418`` (random, per request,
  ``Retry-After: retry_after_s``); ``ban_ip(s)`` (418 to every REST request and WebSocket
  handshake until ``s`` simulated seconds have passed) and ``throttle(s)`` (429 likewise).
* WebSocket: ``stall`` (every frame), ``stall_streams(...)`` (some streams only),
  ``malformed_frame_rate``, ``drop_connections()``, ``announce_shutdown(grace_s)``,
  ``send_raw(frame, stream)`` (any text or binary frame, for poison-frame tests).
* Archives: ``break_archive(kind, symbol, interval, period)`` for named files, and per-file
  rates ``archive_missing_rate`` ... (a stable choice per file name), ``archive_error_rate``
  (a 503 per request). ``latency_s`` delays archive requests too (the bucket is far away as
  well).
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptobot_core.errors import ValidationError

_RATES = (
    "error_5xx_rate",
    "rate_429",
    "rate_418",
    "malformed_frame_rate",
    "archive_missing_rate",
    "archive_bad_checksum_rate",
    "archive_truncated_rate",
    "archive_partial_rate",
    "archive_error_rate",
)
# What can be wrong with an archive file, in the order it is decided (first wins).
ARCHIVE_FAULTS = ("missing", "truncated", "bad_checksum", "partial")
_PERIOD_RE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


class FaultTarget(Protocol):
    """What a running server does on behalf of ``Faults`` (implemented by SimulatorServer)."""

    def drop_connections(self) -> int:
        """Abort every WebSocket; how many."""
        ...

    def announce_shutdown(self, grace_s: float) -> int:
        """Send serverShutdown, close after ``grace_s``; how many connections."""
        ...

    def send_raw(self, frame: str | bytes, stream: str | None) -> int:
        """Send one raw frame; how many connections got it."""
        ...

    def refuse_rest(self, status: int, seconds: float) -> None:
        """Answer every REST request with ``status`` for ``seconds`` simulated seconds."""
        ...


@dataclass(frozen=True)
class ArchiveFault:
    """A fault on the archive files matching (symbol, interval, period); None matches any."""

    kind: str
    symbol: str | None = None
    interval: str | None = None
    period: str | None = None

    def __post_init__(self) -> None:
        if self.interval == "1M":  # archive paths spell the month interval 1mo
            object.__setattr__(self, "interval", "1mo")
        if self.kind not in ARCHIVE_FAULTS:
            raise ValidationError(
                f"archive fault kind must be one of {', '.join(ARCHIVE_FAULTS)}, got {self.kind!r}"
            )
        if self.period is not None and not _PERIOD_RE.match(self.period):
            raise ValidationError(
                f"period must be YYYY-MM (a monthly file) or YYYY-MM-DD (a daily file), "
                f"got {self.period!r}"
            )

    def matches(self, symbol: str, interval: str, period: str) -> bool:
        """True if this fault applies to the file of (symbol, interval, period)."""
        return (
            (self.symbol is None or self.symbol == symbol)
            and (self.interval is None or self.interval == interval)
            and (self.period is None or self.period == period)
        )


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
        archive_missing_rate: float = 0.0,
        archive_bad_checksum_rate: float = 0.0,
        archive_truncated_rate: float = 0.0,
        archive_partial_rate: float = 0.0,
        archive_error_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._targets: list[FaultTarget] = []
        self._archive_faults: tuple[ArchiveFault, ...] = ()
        self._stalled: frozenset[str] = frozenset()
        self.latency_s = latency_s
        self.error_5xx_rate = error_5xx_rate
        self.rate_429 = rate_429
        self.rate_418 = rate_418
        self.malformed_frame_rate = malformed_frame_rate
        self.stall = stall
        self.retry_after_s = retry_after_s
        self.archive_missing_rate = archive_missing_rate
        self.archive_bad_checksum_rate = archive_bad_checksum_rate
        self.archive_truncated_rate = archive_truncated_rate
        self.archive_partial_rate = archive_partial_rate
        self.archive_error_rate = archive_error_rate
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
        """Back to no faults at all (bans and throttles lifted, streams resumed)."""
        self.latency_s = 0.0
        for name in _RATES:
            setattr(self, name, 0.0)
        self.stall = False
        self._stalled = frozenset()
        self._archive_faults = ()
        self.lift_bans()

    # ---- server actions --------------------------------------------------------------------

    def attach(self, target: FaultTarget) -> None:
        """Register a server that carries out the actions below (done by SimulatorServer)."""
        self._targets.append(target)

    def detach(self, target: FaultTarget) -> None:
        """Forget a stopped server."""
        if target in self._targets:
            self._targets.remove(target)

    def drop_connections(self) -> int:
        """Cut every open WebSocket connection now (no close frame); returns how many."""
        return sum(t.drop_connections() for t in list(self._targets))

    def announce_shutdown(self, grace_s: float = 5.0) -> int:
        """Send ``serverShutdown`` to every open WebSocket and close them ``grace_s`` later.

        The server keeps running and accepts new connections at once, so a client can open
        its replacement before the old one closes. Returns how many connections were told.
        """
        if not (isinstance(grace_s, int | float) and 0 <= grace_s <= 3600):
            raise ValidationError(f"grace_s must be in [0, 3600] seconds, got {grace_s!r}")
        return sum(t.announce_shutdown(float(grace_s)) for t in list(self._targets))

    def send_raw(self, frame: str | bytes, stream: str | None = None) -> int:
        """Send ``frame`` as is (text for str, binary for bytes) on the connections that
        carry ``stream`` (a stream name like ``btcusdt@kline_1m`` or a symbol like
        ``BTCUSDT``), or on every connection when ``stream`` is None; returns how many."""
        if not isinstance(frame, str | bytes):
            raise ValidationError(f"frame must be str (text) or bytes (binary), got {frame!r}")
        return sum(t.send_raw(frame, stream) for t in list(self._targets))

    def ban_ip(self, seconds: float = 600.0) -> None:
        """Ban the client: 418 with ``Retry-After`` on every REST request and WebSocket
        handshake until ``seconds`` of simulated time have passed."""
        self._refuse(418, seconds)

    def throttle(self, seconds: float = 60.0) -> None:
        """429 with ``Retry-After`` on every REST request for ``seconds`` of simulated time."""
        self._refuse(429, seconds)

    def lift_bans(self) -> None:
        """End an on-demand or earned ban and any throttle now."""
        for t in list(self._targets):
            t.refuse_rest(418, 0)
            t.refuse_rest(429, 0)

    def _refuse(self, status: int, seconds: float) -> None:
        if not (isinstance(seconds, int | float) and 0 < seconds <= 3 * 86_400):
            raise ValidationError(
                f"seconds must be > 0 and at most 3 days (259200), got {seconds!r}"
            )
        for t in list(self._targets):
            t.refuse_rest(status, float(seconds))

    # ---- per-stream stall ------------------------------------------------------------------

    def stall_streams(self, *streams: str) -> None:
        """Silence these streams (names like ``btcusdt@kline_1m``, or symbols like ``BTCUSDT``
        for all of a symbol's streams) on every connection; other streams keep flowing.
        What they would have sent is lost, finals included."""
        for name in streams:
            if not isinstance(name, str) or not name:
                raise ValidationError(f"a stream name or symbol is a non-empty str, got {name!r}")
        with self._lock:
            self._stalled = self._stalled | frozenset(streams)

    def resume_streams(self, *streams: str) -> None:
        """Let these streams (or, with no argument, every stalled stream) flow again."""
        with self._lock:
            self._stalled = self._stalled - frozenset(streams) if streams else frozenset()

    @property
    def stalled_streams(self) -> frozenset[str]:
        """The stream names and symbols currently stalled."""
        return self._stalled

    def is_stalled(self, stream: str, symbol: str) -> bool:
        """True if ``stream`` (of ``symbol``) is silenced."""
        stalled = self._stalled
        return bool(stalled) and (stream in stalled or symbol in stalled)

    # ---- archive files ---------------------------------------------------------------------

    def break_archive(
        self,
        kind: str,
        symbol: str | None = None,
        interval: str | None = None,
        period: str | None = None,
    ) -> ArchiveFault:
        """Make the archive files matching (symbol, interval, period) faulty.

        ``kind``: ``missing`` (404), ``truncated`` (the zip is cut in half, its CHECKSUM is
        the full file's), ``bad_checksum`` (the CHECKSUM names another digest), ``partial``
        (a valid zip and CHECKSUM holding only the first half of the rows, like a file
        uploaded early). ``period`` is ``YYYY-MM`` for a monthly file, ``YYYY-MM-DD`` for a
        daily one; None matches any. Returns the fault, for ``repair_archive``.
        """
        fault = ArchiveFault(kind, symbol, interval, period)
        with self._lock:
            self._archive_faults = (*self._archive_faults, fault)
        return fault

    def repair_archive(self, fault: ArchiveFault | None = None) -> None:
        """Remove one fault from ``break_archive``, or all of them."""
        with self._lock:
            self._archive_faults = (
                tuple(f for f in self._archive_faults if f != fault) if fault else ()
            )

    def archive_fault(self, symbol: str, interval: str, period: str, file_name: str) -> str | None:
        """The fault of one archive file: a targeted one first, then the per-file rates.

        A rate picks files by a hash of (seed, kind, file name), so the same file stays faulty
        on every request, like a broken file on the real bucket.
        """
        for fault in self._archive_faults:
            if fault.matches(symbol, interval, period):
                return fault.kind
        for kind in ARCHIVE_FAULTS:
            rate = getattr(self, f"archive_{kind}_rate")
            if rate > 0 and _stable_draw(f"{self.seed}|{kind}|{file_name}") < rate:
                return kind
        return None


def _stable_draw(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


@dataclass
class Stats:
    """Server counters, updated from the server thread and read from any thread."""

    requests: int = 0
    responses: Counter[int] = field(default_factory=Counter)
    weight_by_minute: dict[int, int] = field(default_factory=dict)
    requests_by_path: Counter[str] = field(default_factory=Counter)
    requests_during_ban: int = 0
    requests_during_throttle: int = 0
    ws_connections_opened: int = 0
    ws_connections_open: int = 0
    ws_handshakes_refused: int = 0
    ws_messages_sent: int = 0
    ws_finals_sent: int = 0
    ws_malformed_sent: int = 0
    ws_raw_frames_sent: int = 0
    ws_frames_stalled: int = 0
    ws_shutdowns_announced: int = 0
    ws_disconnects_rate_limit: int = 0
    ws_disconnects_pong_timeout: int = 0
    ws_disconnects_lifetime: int = 0
    ws_disconnects_shutdown: int = 0
    bans: int = 0
    archive_requests: int = 0
    archive_responses: Counter[int] = field(default_factory=Counter)
    archive_bytes_sent: int = 0
    archive_builds: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        """Increment a plain counter."""
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def record(self, path: str, status: int) -> None:
        """Count one REST response."""
        with self._lock:
            self.requests += 1
            self.responses[status] += 1
            self.requests_by_path[path] += 1

    def record_archive(self, status: int, size: int) -> None:
        """Count one archive response of ``size`` body bytes."""
        with self._lock:
            self.archive_requests += 1
            self.archive_responses[status] += 1
            self.archive_bytes_sent += size

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
            out: dict[str, Any] = {}
            for name in self.__dataclass_fields__:
                if name.startswith("_"):
                    continue
                value = getattr(self, name)
                out[name] = dict(value) if isinstance(value, dict) else value
            return out
