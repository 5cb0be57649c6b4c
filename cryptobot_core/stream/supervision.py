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


def decide(
    runs: list[ActiveRun],
    heartbeat: dict[str, Any] | None,
    now: datetime,
    *,
    stale_after_s: float = STALE_AFTER_S,
    grace_s: float = START_GRACE_S,
) -> Decision:
    """Keep exactly one healthy run: launch when none, relaunch when its heartbeat is stale."""
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
    return Decision(Action.KEEP, extra, "healthy")
