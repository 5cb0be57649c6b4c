"""History fixtures: settings pointing at a real-clock simulator and the test store."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cryptobot_assets.definitions import build_defs
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimClock, SimulatorServer
from tests.fixtures.simulator import MakeSimulator

TODAY = datetime.now(UTC).date()
START = TODAY - timedelta(days=10)


def day_ms(day: date) -> int:
    """00:00 UTC of ``day`` in epoch ms."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def point_at(settings: Settings, sim: SimulatorServer, **extra: Any) -> Settings:
    """Settings for ``sim``, with history starting 10 days back."""
    return settings.model_copy(
        update={"sim_host": "127.0.0.1", "sim_port": sim.port, "history_start_date": START, **extra}
    )


@pytest.fixture
def real_sim(make_simulator: MakeSimulator) -> SimulatorServer:
    """A simulator on the real clock, so its "yesterday" is Dagster's yesterday."""
    return make_simulator(clock=SimClock.real())


@pytest.fixture
def hist_settings(settings: Settings, real_sim: SimulatorServer) -> Settings:
    """Settings for the test store and the real-clock simulator."""
    return point_at(settings, real_sim)


@pytest.fixture
def defs(hist_settings: Settings) -> dg.Definitions:
    """The whole code location for these settings."""
    return build_defs(hist_settings)


def temp_instance(path: Path) -> dg.DagsterInstance:
    """A Dagster instance stored under ``path``.

    Not ``instance_for_test()``: entering an instance sets a process-wide context variable
    that, left behind, breaks later ``Definitions`` loads in the same pytest process.
    """
    path.mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.local_temp(str(path))


@pytest.fixture
def instance(tmp_path: Path) -> Any:
    """A temporary Dagster instance with BTCUSDT and ETHUSDT partitions."""
    inst = temp_instance(tmp_path / "dagster")
    inst.add_dynamic_partitions("symbols", ["BTCUSDT", "ETHUSDT"])
    yield inst
    inst.dispose()


@pytest.fixture
def empty_instance(tmp_path: Path) -> Any:
    """A temporary Dagster instance with no symbol partitions."""
    inst = temp_instance(tmp_path / "dagster-empty")
    yield inst
    inst.dispose()
