"""The supervisor through a real dagster-daemon: a killed consumer run is relaunched."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cryptobot_core import services
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimulatorServer, default_symbols
from cryptobot_core.store import HEARTBEATS
from tests.core.stream.conftest import subprocess_env, wait_until

pytestmark = pytest.mark.slow

DEFS = """
from cryptobot_assets.stream.definitions import build_defs
from cryptobot_core.settings import load_settings

defs = build_defs(load_settings())
"""


def _runs(instance: dg.DagsterInstance, job: str, status: dg.DagsterRunStatus) -> list[str]:
    return [
        r.run_id for r in instance.get_runs(filters=dg.RunsFilter(job_name=job, statuses=[status]))
    ]


def _heartbeat(mongo_db: Any, role: str) -> dict[str, Any]:
    return mongo_db[HEARTBEATS].find_one({"_id": role}) or {}


def test_daemon_relaunches_a_killed_consumer_run(
    stream_settings: Settings,
    mongo_db: Any,
    make_simulator: Callable[..., SimulatorServer],
    tmp_path: Path,
) -> None:
    sim = make_simulator(
        symbols=default_symbols()[:2], clock=SimClock.accelerated(1_767_225_600_000, 60.0)
    )
    settings = stream_settings.model_copy(
        update={"sim_port": sim.port, "symbols": ["BTCUSDT", "ETHUSDT"]}
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "defs.py").write_text(DEFS)
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - python_file:\n      relative_path: defs.py\n"
        f"      working_directory: {Path.cwd().resolve()}\n"
    )
    env = {
        **subprocess_env(settings),
        "DAGSTER_HOME": str(home),
        "CRYPTOBOT_STREAM_HEARTBEAT_STALE_S": "6",
        "CRYPTOBOT_STREAM_START_GRACE_S": "30",
        "CRYPTOBOT_STREAM_SUPERVISOR_INTERVAL_S": "3",
        "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
    }
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [
            str(bin_dir / "dagster"),
            "sensor",
            "start",
            "stream_supervisor",
            "-w",
            str(tmp_path / "workspace.yaml"),
        ],
        env={**os.environ, **env},
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=120,
    )
    daemon = services.ManagedProcess(
        name="dagster-daemon",
        argv=[str(bin_dir / "dagster-daemon"), "run", "-w", str(tmp_path / "workspace.yaml")],
        log_path=tmp_path / "daemon.log",
        healthy=lambda: True,
        env=env,
        cwd=tmp_path,
    ).start()
    pids: set[int] = set()
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:

            def both_beating() -> bool:
                for role in ("producer", "consumer"):
                    hb = _heartbeat(mongo_db, role)
                    if not hb or hb["run_id"] not in _runs(
                        instance, f"stream_{role}_job", dg.DagsterRunStatus.STARTED
                    ):
                        return False
                    pids.add(hb["pid"])
                return True

            wait_until(both_beating, 180, "one producer and one consumer run with heartbeats")
            first = _heartbeat(mongo_db, "consumer")
            os.kill(first["pid"], signal.SIGKILL)  # the run worker dies without a word

            def relaunched() -> bool:
                hb = _heartbeat(mongo_db, "consumer")
                if hb.get("run_id") in (None, first["run_id"]):
                    return False
                pids.add(hb["pid"])
                return hb["run_id"] in _runs(
                    instance, "stream_consumer_job", dg.DagsterRunStatus.STARTED
                )

            wait_until(relaunched, 180, "a new consumer run after the kill")
            old = instance.get_run_by_id(first["run_id"])
            assert old is not None and old.status in (
                dg.DagsterRunStatus.CANCELED,
                dg.DagsterRunStatus.CANCELING,
                dg.DagsterRunStatus.FAILURE,
            )
            # Exactly one of each is alive.
            assert len(_runs(instance, "stream_consumer_job", dg.DagsterRunStatus.STARTED)) == 1
            assert len(_runs(instance, "stream_producer_job", dg.DagsterRunStatus.STARTED)) == 1
            obs = instance.fetch_observations(dg.AssetKey("streaming_data_1m"), limit=1)
            assert obs.records, "the supervisor recorded no observation"
    finally:
        daemon.stop()
        for pid in pids:  # run workers the daemon spawned for this test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
