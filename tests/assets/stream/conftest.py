"""Reuse the stream fixtures (per-test topics and groups); helpers of the daemon tests."""

import sys
from pathlib import Path
from typing import Any

import dagster as dg

from cryptobot_core import services
from cryptobot_core.store import HEARTBEATS
from tests.core.stream.conftest import consumer_thread, stream_settings  # noqa: F401


def start_daemon(workspace: Path, env: dict[str, str], cwd: Path) -> services.ManagedProcess:
    """``dagster-daemon run`` on ``workspace`` as its own process, logging into ``cwd``."""
    return services.ManagedProcess(
        name="dagster-daemon",
        argv=[str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(workspace)],
        log_path=cwd / "daemon.log",
        healthy=lambda: True,
        env=env,
        cwd=cwd,
    ).start()


def runs(instance: dg.DagsterInstance, job: str, status: dg.DagsterRunStatus) -> list[str]:
    """Ids of the runs of ``job`` in ``status``."""
    found = instance.get_runs(filters=dg.RunsFilter(job_name=job, statuses=[status]))
    return [r.run_id for r in found]


def heartbeat(mongo_db: Any, role: str) -> dict[str, Any]:
    """The stored heartbeat of the stream's producer or consumer ({} if none)."""
    return mongo_db[HEARTBEATS].find_one({"_id": role}) or {}


def both_beating(instance: dg.DagsterInstance, mongo_db: Any, pids: set[int]) -> bool:
    """One producer and one consumer run started, each with its heartbeat (pids collected)."""
    for role in ("producer", "consumer"):
        hb = heartbeat(mongo_db, role)
        if not hb or hb["run_id"] not in runs(
            instance, f"stream_{role}_job", dg.DagsterRunStatus.STARTED
        ):
            return False
        pids.add(hb["pid"])
    return True


def relaunched(
    instance: dg.DagsterInstance, mongo_db: Any, role: str, old_run_id: str, pids: set[int]
) -> bool:
    """A new, started run of ``role`` beats in place of ``old_run_id`` (pids collected)."""
    hb = heartbeat(mongo_db, role)
    if hb.get("run_id") in (None, old_run_id):
        return False
    pids.add(hb["pid"])
    return hb["run_id"] in runs(instance, f"stream_{role}_job", dg.DagsterRunStatus.STARTED)
