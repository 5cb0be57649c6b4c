"""The production Dagster topology, run here: dagster-webserver and dagster-daemon as separate
processes on deploy/dagster.yaml (Postgres storage, the queued run coordinator, the pools),
against a real PostgreSQL. A history backfill from the CLI completes and stores exactly the
exchange's candles; the stream supervisor keeps one producer and one consumer run alive and
relaunches a killed one."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cryptobot_core import services
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimulatorServer, default_symbols
from cryptobot_core.store import HISTORICAL_15M
from tests.assets.stream.conftest import both_beating, heartbeat, relaunched, runs, start_daemon
from tests.core.stream.conftest import subprocess_env, wait_until
from tests.fixtures.postgres import Postgres

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
STARTED = dg.DagsterRunStatus.STARTED
WORKSPACE = """load_from:
  - python_module:
      module_name: cryptobot_assets.definitions
      attribute: defs
      working_directory: {repo}
"""


def test_webserver_and_daemon_on_postgres_backfill_and_supervise_the_stream(
    stream_settings: Settings,
    mongo_db: Any,
    make_simulator: Callable[..., SimulatorServer],
    postgres: Postgres,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = make_simulator(symbols=default_symbols()[:2], clock=SimClock.real())
    settings = stream_settings.model_copy(
        update={"sim_port": sim.port, "symbols": ["BTCUSDT", "ETHUSDT"]}
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    # deploy/dagster.yaml as compose mounts it; only its container paths point here instead.
    instance_yaml = (REPO / "deploy" / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(instance_yaml.replace("/opt/dagster/home", str(home)))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(WORKSPACE.format(repo=REPO))
    env = {
        **subprocess_env(settings),
        **postgres.env(),
        "DAGSTER_HOME": str(home),
        "CRYPTOBOT_HISTORY_DAYS": "1",
        "CRYPTOBOT_STREAM_SUPERVISOR_AUTOSTART": "true",
        "CRYPTOBOT_STREAM_HEARTBEAT_STALE_S": "6",
        "CRYPTOBOT_STREAM_START_GRACE_S": "30",
        "CRYPTOBOT_STREAM_SUPERVISOR_INTERVAL_S": "3",
        "PYTHONPATH": str(REPO),
    }
    for name, value in postgres.env().items():  # this process reads the instance too
        monkeypatch.setenv(name, value)
    port = services.free_port()
    url = f"http://127.0.0.1:{port}"
    webserver = services.ManagedProcess(
        name="dagster-webserver",
        argv=[str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
        + ["-w", str(workspace)],
        log_path=tmp_path / "webserver.log",
        healthy=lambda: services.port_open(port),
        env=env,
        cwd=tmp_path,
        startup_timeout=180,
    ).start()
    daemon = start_daemon(workspace, env, tmp_path)
    pids: set[int] = set()
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert "Postgres" in type(instance.run_storage).__name__
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

            # A history backfill, launched from the CLI through the webserver and run by
            # the daemon's queue, stores exactly the exchange's candles.
            backfill = subprocess.run(
                [str(BIN / "cryptobot"), "backfill", "--days", "1", "--symbols", "BTCUSDT"]
                + ["--dagster-url", url],
                env={**os.environ, **env},
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            logs = (tmp_path / "daemon.log").read_text()[-3000:]
            assert backfill.returncode == 0, f"{backfill.stdout}\n{backfill.stderr}\n{logs}"
            assert "done: 1 partitions materialized" in backfill.stdout
            today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            start_ms = int((today - timedelta(days=1)).timestamp() * 1000)
            truth = [
                k.to_rest_row()
                for k in sim.market.klines("BTCUSDT", "15m", start_ms, start_ms + 86_400_000 - 1)
            ]
            stored = list(
                mongo_db[HISTORICAL_15M]
                .find(
                    {
                        "symbol": "BTCUSDT",
                        "open_time": {"$gte": today - timedelta(days=1), "$lt": today},
                    }
                )
                .sort("open_time", 1)
            )
            assert len(truth) == 96
            assert [
                [
                    int(d["open_time"].timestamp() * 1000),
                    *(str(d[k]) for k in ("open", "high", "low", "close", "volume")),
                ]
                for d in stored
            ] == [row[:6] for row in truth]

            # The supervisor (on by default here, as in compose) keeps both runs alive.
            wait_until(
                lambda: both_beating(instance, mongo_db, pids),
                240,
                "one producer and one consumer run with heartbeats",
            )
            first = heartbeat(mongo_db, "consumer")
            os.kill(first["pid"], signal.SIGKILL)

            wait_until(
                lambda: relaunched(instance, mongo_db, "consumer", first["run_id"], pids),
                180,
                "a new consumer run after the kill",
            )
            assert len(runs(instance, "stream_consumer_job", STARTED)) == 1
            assert len(runs(instance, "stream_producer_job", STARTED)) == 1
    finally:
        daemon.stop()
        webserver.stop()
        for pid in pids:  # run workers the daemon spawned for this test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
