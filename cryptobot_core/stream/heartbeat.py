"""Heartbeats of the stream processes in ``stream_heartbeats`` (one doc per role).

Each doc is ``{_id: "producer"|"consumer", run_id, pid, host, started_at, updated_at,
stats: {...}}``. The supervisor treats a heartbeat older than ``STALE_AFTER_S`` as a hung
process. Writing a heartbeat never stops the loop: a store outage is logged and retried on
the next beat.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptobot_core.errors import StoreError
from cryptobot_core.store import HeartbeatStore

log = logging.getLogger(__name__)

BEAT_EVERY_S = 3.0
STALE_AFTER_S = 60.0
ROLES = ("producer", "consumer")


class Heartbeat:
    """Writes the heartbeat of one process role at most every ``every_s`` seconds."""

    def __init__(
        self,
        store: HeartbeatStore,
        role: str,
        run_id: str | None = None,
        every_s: float = BEAT_EVERY_S,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.store = store
        self.role = role
        self.run_id = run_id or f"pid-{os.getpid()}"
        self.every_s = every_s
        self.started_at = datetime.now(UTC)
        self._last = 0.0

    def due(self) -> bool:
        """True when the next heartbeat should be written."""
        return time.monotonic() - self._last >= self.every_s

    def beat(self, stats: dict[str, Any], *, force: bool = False) -> bool:
        """Write the heartbeat if due (or forced); False when the store was unreachable."""
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return True
        doc = {
            "run_id": self.run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": self.started_at,
            "updated_at": datetime.now(UTC),
            "stats": stats,
        }
        try:
            self.store.write(self.role, doc)
        except StoreError as exc:
            log.warning("heartbeat not written: %s", exc)
            return False
        self._last = now
        return True


def read_heartbeats(heartbeats: HeartbeatStore) -> dict[str, dict[str, Any]]:
    """The latest heartbeat doc of each role that has one."""
    return heartbeats.read(ROLES)


def is_stale(
    doc: dict[str, Any] | None, now: datetime, stale_after_s: float = STALE_AFTER_S
) -> bool:
    """True when there is no heartbeat or it is older than ``stale_after_s``."""
    if doc is None:
        return True
    updated = doc["updated_at"]
    if updated.tzinfo is None:
        updated = updated.replace(tzinfo=UTC)
    return now - updated > timedelta(seconds=stale_after_s)
