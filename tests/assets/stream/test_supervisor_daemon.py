"""The supervisor through a real dagster-daemon: killed runs are relaunched, and the minutes a
killed producer missed are exact again within 2 minutes of the stream resuming."""

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

from cryptobot_core.intervals import Interval
from cryptobot_core.models import ms_to_dt
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimulatorServer, default_symbols
from cryptobot_core.store import STREAMING_1M, CandleStore
from tests.assets.stream.conftest import both_beating, heartbeat, relaunched, runs, start_daemon
from tests.core.stream.conftest import subprocess_env, wait_until

pytestmark = pytest.mark.slow
M1 = Interval.M1

DEFS = """
from cryptobot_assets.stream.definitions import build_defs
from cryptobot_core.settings import load_settings

defs = build_defs(load_settings())
"""


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
    daemon = start_daemon(tmp_path / "workspace.yaml", env, tmp_path)
    pids: set[int] = set()
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_until(
                lambda: both_beating(instance, mongo_db, pids),
                180,
                "one producer and one consumer run with heartbeats",
            )
            first = heartbeat(mongo_db, "consumer")
            os.kill(first["pid"], signal.SIGKILL)  # the run worker dies without a word

            wait_until(
                lambda: relaunched(instance, mongo_db, "consumer", first["run_id"], pids),
                180,
                "a new consumer run after the kill",
            )
            old = instance.get_run_by_id(first["run_id"])
            assert old is not None and old.status in (
                dg.DagsterRunStatus.CANCELED,
                dg.DagsterRunStatus.CANCELING,
                dg.DagsterRunStatus.FAILURE,
            )
            # Exactly one of each is alive.
            assert len(runs(instance, "stream_consumer_job", dg.DagsterRunStatus.STARTED)) == 1
            assert len(runs(instance, "stream_producer_job", dg.DagsterRunStatus.STARTED)) == 1
            obs = instance.fetch_observations(dg.AssetKey("streaming_data_1m"), limit=1)
            assert obs.records, "the supervisor recorded no observation"

            # Then the producer dies: the minutes it missed are exact again within 2 minutes
            # of the stream resuming, through the repair run the supervisor requests.
            victim = heartbeat(mongo_db, "producer")
            killed_ms = sim.clock.now_ms()
            os.kill(victim["pid"], signal.SIGKILL)

            def streaming_again() -> bool:
                hb = heartbeat(mongo_db, "producer")
                if hb.get("run_id") in (None, victim["run_id"]):
                    return False
                pids.add(hb["pid"])
                return (hb.get("stats") or {}).get("messages", 0) > 0

            wait_until(streaming_again, 180, "a new producer run streaming")
            resumed, resumed_ms = time.monotonic(), sim.clock.now_ms()
            lo = M1.floor(killed_ms) - 3 * M1.ms  # stored before the kill, and what it missed
            hi = M1.floor(resumed_ms)  # every minute closed when the stream resumed
            store = CandleStore(mongo_db, STREAMING_1M)

            def exact() -> bool:
                for symbol in settings.symbols:
                    stored = store.find(symbol, ms_to_dt(lo), ms_to_dt(hi))
                    if [c.open_ms for c in stored] != M1.opens_between(lo, hi):
                        return False
                    for c in stored:
                        truth = sim.market.candle_at(symbol, "1m", c.open_ms)
                        if not c.is_closed or truth is None:
                            return False
                        if c.to_rest_row() != truth.to_rest_row():
                            return False
                return True

            wait_until(exact, 150, "the producer's missed minutes stored exactly")
            took = time.monotonic() - resumed
            assert took <= 120, f"exact again {took:.0f} s after the stream resumed"
            # The producer was down for at least two closed minutes: the WebSocket never
            # replays them, so only repair can have stored them.
            assert hi - M1.floor(killed_ms) >= 2 * M1.ms, "the kill must have cost minutes"
    finally:
        daemon.stop()
        for pid in pids:  # run workers the daemon spawned for this test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
