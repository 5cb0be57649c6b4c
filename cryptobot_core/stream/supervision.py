"""What the stream supervisor should do for one role, decided without any framework.

The Dagster sensor gathers the facts (active runs, heartbeats) and carries out the
decision; keeping the rule here makes it testable and reusable by another orchestrator.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from cryptobot_core.stream.heartbeat import STALE_AFTER_S, is_stale

# A fresh run needs time to start, join the consumer group (~5 s on Tansu) and beat once.
START_GRACE_S = 120.0
# A run that beats but has made no progress for this long is hung (see ``track``).
STALL_AFTER_S = 180.0


class Action(StrEnum):
    """The supervisor's verdict for one role."""

    KEEP = "keep"
    LAUNCH = "launch"
    RELAUNCH = "relaunch"  # terminate the hung run(s), then launch a new one


@dataclass(frozen=True)
class ActiveRun:
    """A run of the role's job that is queued, starting or started."""

    run_id: str
    started_at: datetime | None  # None while queued / not started yet


@dataclass(frozen=True)
class Decision:
    """The action and which runs to terminate first."""

    action: Action
    terminate: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class Progress:
    """A run's progress counters and, for each, when it last moved (kept between ticks)."""

    run_id: str
    counters: tuple[int, ...]
    moved_at: tuple[datetime, ...]

    def to_json(self) -> dict[str, Any]:
        """For the sensor's cursor."""
        return {
            "run_id": self.run_id,
            "counters": list(self.counters),
            "moved_at": [t.isoformat() for t in self.moved_at],
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any] | None) -> Progress | None:
        """Back from the cursor; None when absent or unreadable."""
        if not isinstance(doc, dict):
            return None
        try:
            return cls(
                str(doc["run_id"]),
                tuple(int(c) for c in doc["counters"]),
                tuple(datetime.fromisoformat(t) for t in doc["moved_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def counters(role: str, stats: dict[str, Any]) -> tuple[int, ...]:
    """What must keep moving for a run of ``role`` to be making progress.

    - producer: klines received; and records handed on (sent to the broker or spooled).
      Received but neither sent nor spooled means the sender thread is dead.
    - consumer: records consumed (only required while there is lag, see ``stall``).
    """
    if role == "producer":
        return (
            int(stats.get("messages", 0)),
            int(stats.get("sent", 0)) + int(stats.get("spooled", 0)),
        )
    return (int(stats.get("messages", 0)),)


def track(
    previous: Progress | None, role: str, heartbeat: dict[str, Any] | None, now: datetime
) -> Progress | None:
    """This tick's progress record of the run that wrote ``heartbeat``."""
    if heartbeat is None or not heartbeat.get("run_id"):
        return None
    run_id = str(heartbeat["run_id"])
    current = counters(role, heartbeat.get("stats") or {})
    if previous is None or previous.run_id != run_id or len(previous.counters) != len(current):
        return Progress(run_id, current, tuple(now for _ in current))
    moved = tuple(
        now if c != p else since
        for c, p, since in zip(current, previous.counters, previous.moved_at, strict=True)
    )
    return Progress(run_id, current, moved)


def stall(
    role: str,
    progress: Progress | None,
    heartbeat: dict[str, Any] | None,
    now: datetime,
    stall_after_s: float = STALL_AFTER_S,
) -> str | None:
    """Why the run is alive but not progressing, or None when it is (or cannot be judged)."""
    if progress is None or heartbeat is None or progress.run_id != heartbeat.get("run_id"):
        return None
    limit = timedelta(seconds=stall_after_s)
    idle = [now - t >= limit for t in progress.moved_at]
    if role == "producer":
        if idle[0]:
            return f"no kline received for {stall_after_s:.0f}s"
        if idle[1]:
            return f"klines received but none sent or spooled for {stall_after_s:.0f}s"
        return None
    lag = (heartbeat.get("stats") or {}).get("lag")
    if idle[0] and isinstance(lag, int) and lag > 0:
        return f"{lag} records waiting but none consumed for {stall_after_s:.0f}s"
    return None


def decide(
    runs: list[ActiveRun],
    heartbeat: dict[str, Any] | None,
    now: datetime,
    *,
    stale_after_s: float = STALE_AFTER_S,
    grace_s: float = START_GRACE_S,
    stalled: str | None = None,
) -> Decision:
    """Keep exactly one healthy run: launch when none, relaunch when its heartbeat is stale
    or when it beats without progress (``stalled``: the reason, from ``stall``)."""
    if not runs:
        return Decision(Action.LAUNCH, reason="no active run")
    # Newest first; extra runs beyond one are terminated (exactly one of each).
    ordered = sorted(runs, key=lambda r: r.started_at or now, reverse=True)
    keep, extra = ordered[0], tuple(r.run_id for r in ordered[1:])
    if keep.started_at is None or now - keep.started_at < timedelta(seconds=grace_s):
        return Decision(
            Action.KEEP, extra, "run starting" + (", extra runs terminated" if extra else "")
        )
    own = heartbeat is not None and heartbeat.get("run_id") == keep.run_id
    if not own:
        return Decision(
            Action.RELAUNCH,
            (keep.run_id, *extra),
            f"run {keep.run_id} never wrote a heartbeat within {grace_s:.0f}s",
        )
    if is_stale(heartbeat, now, stale_after_s):
        return Decision(
            Action.RELAUNCH,
            (keep.run_id, *extra),
            f"heartbeat of run {keep.run_id} older than {stale_after_s:.0f}s",
        )
    if stalled:
        return Decision(Action.RELAUNCH, (keep.run_id, *extra), f"run {keep.run_id}: {stalled}")
    return Decision(Action.KEEP, extra, "healthy")
