"""End to end: `dagster dev` + SecantusDB + simulator; a backfill launched over GraphQL."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from cryptobot_core.cli import app
from cryptobot_core.dagster_client import DagsterClient
from cryptobot_core.intervals import Interval
from cryptobot_core.services import ManagedProcess, free_port
from cryptobot_core.settings import get_settings
from cryptobot_core.simulator import SimClock, SimulatorServer
from cryptobot_core.store import HISTORICAL_15M, candle_from_document, history_collection
from tests.assets.history.conftest import TODAY
from tests.fixtures.simulator import MakeSimulator

REPO = Path(__file__).resolve().parents[3]
DAGSTER_YAML = """\
telemetry:
  enabled: false
concurrency:
  pools:
    default_limit: 2
"""


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/server_info", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def stack(
    tmp_path: Path,
    mongo_uri: str,
    db_name: str,
    make_simulator: MakeSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, Any]]:
    """`dagster dev` on a free port, its env pointing at the test store and a simulator."""
    sim: SimulatorServer = make_simulator(clock=SimClock.real())
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    port = free_port()
    env = {
        "DAGSTER_HOME": str(home),
        "CRYPTOBOT_MONGO_URI": mongo_uri,
        "CRYPTOBOT_MONGO_DB": db_name,
        "CRYPTOBOT_EXCHANGE": "sim",
        "CRYPTOBOT_SIM_HOST": "127.0.0.1",
        "CRYPTOBOT_SIM_PORT": str(sim.port),
        "CRYPTOBOT_SYMBOLS": "BTCUSDT,ETHUSDT",
        "CRYPTOBOT_HISTORY_INTERVALS": "15m,1h",
        # A short history keeps the automatic catch-up (which also starts) small.
        "CRYPTOBOT_HISTORY_START_DATE": (TODAY - timedelta(days=2)).isoformat(),
        "CRYPTOBOT_DAGSTER_URL": f"http://127.0.0.1:{port}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    url = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(
        name="dagster dev",
        argv=[
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-m",
            "cryptobot_assets.definitions",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        log_path=tmp_path / "dagster.log",
        healthy=lambda: _healthy(url),
        env={**os.environ, **env},
        cwd=REPO,
        startup_timeout=120,
        port=port,
    ).start()
    try:
        yield {"url": url, "sim": sim, "db": f"{db_name}_sim", "log": tmp_path / "dagster.log"}
    finally:
        proc.stop(timeout=5)  # then SIGKILL: a test stack need not shut down gracefully
        get_settings.cache_clear()
        assert not proc.alive


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_cli_backfill_through_dagster_fills_the_collection(
    stack: dict[str, Any], mongo_uri: str
) -> None:
    result = CliRunner().invoke(app, ["backfill", "--days", "2", "--poll", "2"])
    log_tail = stack["log"].read_text(errors="replace")[-3000:]
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}\n{log_tail}"
    assert "done: 4 partitions materialized" in result.output
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, tz_aware=True)
    try:
        coll = client[stack["db"]][HISTORICAL_15M]
        for symbol in ("BTCUSDT", "ETHUSDT"):
            days = {d["open_time"].date() for d in coll.find({"symbol": symbol}, {"open_time": 1})}
            assert days == {TODAY - timedelta(days=2), TODAY - timedelta(days=1)}
            assert coll.count_documents({"symbol": symbol}) == 2 * 96
    finally:
        client.close()
    # The runs are Dagster's: the webserver knows the asset's partitions as materialized.
    with DagsterClient(stack["url"]) as dagster:
        data = dagster.query(
            'query { assetNodeOrError(assetKey: {path: ["klines_15m"]}) { ... on AssetNode {'
            " partitionStats { numMaterialized numPartitions } } } }"
        )
    stats = data["assetNodeOrError"]["partitionStats"]
    assert stats["numMaterialized"] == stats["numPartitions"] == 4
    # Another history interval, its own asset and collection, from the same command.
    result = CliRunner().invoke(
        app, ["backfill", "--days", "1", "--interval", "1h", "--symbols", "ETHUSDT", "--poll", "2"]
    )
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    assert "partitions of klines_1h" in result.output
    sim: SimulatorServer = stack["sim"]
    yesterday = TODAY - timedelta(days=1)
    lo = int(datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=UTC).timestamp())
    want = sim.market.klines("ETHUSDT", Interval.H1, lo * 1000, (lo + 86_400) * 1000 - 1, 100)
    client = MongoClient(mongo_uri, tz_aware=True)
    try:
        coll = client[stack["db"]][history_collection(Interval.H1)]
        start = datetime.fromtimestamp(lo, UTC)
        stored = list(
            coll.find({"symbol": "ETHUSDT", "open_time": {"$gte": start}}).sort("open_time", 1)
        )
    finally:
        client.close()
    assert [candle_from_document(d).to_rest_row() for d in stored] == [
        c.to_rest_row() for c in want
    ]
    assert len(want) == 24
